"""A show's change messages reach only the service processes that serve a stream of it:
each process subscribes to a show's channel while it has a listener there, and only then.
Counted by Redis itself: PUBLISH answers how many subscribers received a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from boxoffice.engine.redis.pubsub import ShowChange
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH
from tests.support.shows import ShowRef

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)


@pytest.fixture
async def two_workers(ctx: Engine) -> AsyncIterator[tuple[Engine, Engine]]:
    """Two service processes' hubs on the same Redis (the second a context of its own)."""
    other = await open_engine(ctx.settings, background=False)
    for context in (ctx, other):
        context.events.start()
        await asyncio.wait_for(context.events.connected.wait(), 10)
    try:
        yield ctx, other
    finally:
        await other.close()


async def receivers(ctx: Engine, show_id: int) -> int:
    """How many subscribers Redis delivered one (harmless, empty) change message of the show to."""
    return int(await ctx.redis.publish(ctx.keys.changes_channel(show_id), "0;;;"))


async def test_a_change_reaches_no_process_without_a_listener_of_its_show(
        two_workers: tuple[Engine, Engine], show: ShowRef) -> None:
    here, there = two_workers
    other_show = show.show_id + 1_000_000  # a show nobody listens to
    assert await receivers(here, show.show_id) == 0, "no listener anywhere: no subscriber at all"
    async with here.events.listen(show.show_id) as queue:
        assert here.events.subscribed_shows() == {show.show_id}
        assert there.events.subscribed_shows() == set()
        assert await receivers(here, show.show_id) == 1, "only the process with the listener"
        assert await receivers(here, other_show) == 0
        # A real change, made by the other process: it reaches the listener here.
        await there.holds.hold(show.show_id, show.seat_ids[:1], "buyer@example.org")
        change = await asyncio.wait_for(queue.get(), 5)
        while isinstance(change, ShowChange) and not change.seats:
            change = await asyncio.wait_for(queue.get(), 5)  # the empty messages sent above
        assert isinstance(change, ShowChange) and change.seats == {show.seat_ids[0]: "held"}
        async with there.events.watch_entry(show.show_id, "W-none"):
            assert await receivers(here, show.show_id) == 2, "a waitlist stream listens too"
        assert await receivers(here, show.show_id) == 1, "its subscription left with the stream"
    assert here.events.subscribed_shows() == set()
    assert await receivers(here, show.show_id) == 0, "dropped with the last listener"


async def test_listening_again_at_once_misses_nothing(ctx: Engine, show: ShowRef) -> None:
    """Leave and come back before Redis answered the UNSUBSCRIBE: the new listener is handed
    its queue only after the new SUBSCRIBE was confirmed, so a change right after reaches it."""
    ctx.events.start()
    await asyncio.wait_for(ctx.events.connected.wait(), 10)
    for round_number in range(20):
        async with ctx.events.listen(show.show_id):
            pass
        async with ctx.events.listen(show.show_id) as queue:
            seat = show.seat_ids[round_number]
            await ctx.holds.hold(show.show_id, [seat], f"c{round_number}@example.org")
            change = await asyncio.wait_for(queue.get(), 5)
            assert isinstance(change, ShowChange) and change.seats == {seat: "held"}
    assert await receivers(ctx, show.show_id) == 0

