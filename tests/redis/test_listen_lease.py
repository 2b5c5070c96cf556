"""The scripts publish a show's change messages only while some process serves a live
stream of it: a process takes a lease on them with its subscription (lua/listen-1.lua) and
renews it while it listens (engine/redis/pubsub.py); a renewal that finds the lease began
anew since its last one (it ran out, the show was loaded again) makes the show's listeners
resync, since a change may have gone unpublished in between."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from boxoffice.engine.redis.gateway import NO_LIMITS, ShowLoad
from boxoffice.engine.redis.pubsub import LEASE_MS, ShowChange
from boxoffice.engine.wiring import Engine, open_engine
from tests.redis.test_change_message import FAR_FUTURE_MS, LAYOUT, next_message
from tests.support.backends import BOTH
from tests.support.services import RedisServer
from tests.support.shows import ShowRef

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)
_shows = itertools.count(915_000_001)


async def redis_now_ms(ctx: Engine) -> int:
    seconds, micros = await ctx.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def loaded_show(ctx: Engine) -> int:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    return show_id


async def hold(ctx: Engine, show_id: int, hold_id: str, seats: list[str], at: int) -> None:
    keys, base = ctx.keys.script_keys(show_id), ctx.keys.show_base(show_id)
    answer = await ctx.gateway.runner.run("hold_seats", keys, [base, at, ctx.gateway.hold_ttl_ms, hold_id,
                                                               f"{hold_id}@example.org", 10, NO_LIMITS.arg(), "",
                                                               *seats])
    assert int(answer[0][0]) == 1


@pytest.fixture
async def subscriber(ctx: Engine) -> AsyncIterator[Any]:
    pubsub = ctx.redis.pubsub()
    try:
        yield pubsub
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


async def test_a_change_is_published_only_while_a_lease_runs(ctx: Engine, subscriber: Any) -> None:
    show_id = await loaded_show(ctx)
    await subscriber.subscribe(ctx.keys.changes_channel(show_id))
    now = await redis_now_ms(ctx)
    await hold(ctx, show_id, "HA", ["A1"], now)  # no lease: not published
    await ctx.gateway.listen(show_id, 1000, now_ms=now)
    await hold(ctx, show_id, "HB", ["A2"], now + 1000)  # the lease's last millisecond
    await hold(ctx, show_id, "HC", ["A3"], now + 1001)  # it ran out: not published
    await ctx.gateway.listen(show_id, 1000, now_ms=now + 1002)
    await hold(ctx, show_id, "HD", ["A4"], now + 1002)
    assert await next_message(subscriber) == "0;A2=held;;"
    assert await next_message(subscriber) == "0;A4=held;;"


async def test_the_lease_answers_when_it_began(ctx: Engine) -> None:
    show_id = await loaded_show(ctx)
    now = await redis_now_ms(ctx)
    assert await ctx.gateway.listen(show_id, 1000, now_ms=now) == now
    # Renewed while it runs: the same lease (renewals from several processes too).
    assert await ctx.gateway.listen(show_id, 1000, now_ms=now + 600) == now
    assert await ctx.gateway.listen(show_id, 1000, now_ms=now + 1600) == now
    meta = ctx.keys.script_keys(show_id)[0]
    assert await ctx.redis.hget(meta, "listened_until") == str(now + 2600)
    # A shorter lease never shortens the running one.
    assert await ctx.gateway.listen(show_id, 10, now_ms=now + 1700) == now
    assert await ctx.redis.hget(meta, "listened_until") == str(now + 2600)
    # Run out: a new lease.
    assert await ctx.gateway.listen(show_id, 1000, now_ms=now + 2601) == now + 2601
    # The show loaded again (its meta hash made anew): a new lease too.
    await ctx.redis.hdel(meta, "listened_until", "listened_since")
    assert await ctx.gateway.listen(show_id, 1000, now_ms=now + 2700) == now + 2700
    # A show Redis does not hold: nothing leased unless the call may load it.
    assert await ctx.gateway.listen(next(_shows) + 5_000_000, 1000, load=False) is None


@pytest.fixture
async def hub(ctx: Engine) -> AsyncIterator[Engine]:
    ctx.events.start()
    await asyncio.wait_for(ctx.events.connected.wait(), 10)
    yield ctx


async def test_a_listener_resyncs_when_its_lease_began_anew(hub: Engine, show: ShowRef) -> None:
    ctx = hub
    meta = ctx.keys.script_keys(show.show_id)[0]
    async with ctx.events.listen(show.show_id) as queue:
        # The lease was taken before the listener got its queue.
        assert int(await ctx.redis.hget(meta, "listened_until")) > await redis_now_ms(ctx) + LEASE_MS // 2
        await ctx.events.renew_all()
        assert queue.empty(), "a renewal of the running lease changes nothing for the listener"
        # The lease runs out and another process begins a new one (told a later clock).
        later = await redis_now_ms(ctx) + LEASE_MS + 1
        await ctx.gateway.listen(show.show_id, LEASE_MS, now_ms=later)
        await ctx.events.renew_all()
        assert queue.get_nowait() is None, "the listener reads the show afresh"
        await ctx.events.renew_all()
        assert queue.empty()


async def test_after_redis_lost_everything_the_lease_is_taken_again(ctx: Engine, show: ShowRef) -> None:
    """Redis restarted empty while a stream listens: the show is gone, and with it the lease.
    Once the subscription is back the process loads the show, takes the lease again and only
    then has the stream resync, so a change made after that reaches it."""
    server = RedisServer.start()
    engine = await open_engine(ctx.settings.with_changes(redis_url=server.url), background=False)
    try:
        engine.events.start()
        await asyncio.wait_for(engine.events.connected.wait(), 10)
        meta = engine.keys.script_keys(show.show_id)[0]
        async with engine.events.listen(show.show_id) as queue:
            assert await engine.redis.hget(meta, "listened_until") is not None
            server.restart_empty()
            assert await asyncio.wait_for(queue.get(), 15) is None, "told to resync after the reconnect"
            assert await engine.redis.hget(meta, "listened_until") is not None, "the lease was taken again first"
            await engine.holds.hold(show.show_id, show.seat_ids[:1], "after@example.org")
            change = await asyncio.wait_for(queue.get(), 5)
            while change is None:  # a second resync (the main connection came back later)
                change = await asyncio.wait_for(queue.get(), 5)
            assert isinstance(change, ShowChange) and change.seats == {show.seat_ids[0]: "held"}
    finally:
        await engine.close()
        server.stop()
