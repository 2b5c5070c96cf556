"""Shows leave Redis after they played: the sweeper's full pass unloads a show once it
started more than `unload_after_s` ago (boxoffice/lua/unload_show-1.lua), every key of it with its
hold and waitlist entry hashes, and nothing of another show. PostgreSQL keeps the sales:
the seat map of an unloaded show reloads it with its bookings, and old hold and entry ids
answer as for any hold Redis lost.

Time moves with the scripts' now-ms override (the show's start stays in the future), and
in the API test by moving the show's start in PostgreSQL and Redis into the past."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from boxoffice.engine.db import db_time
from boxoffice.engine.redis.pubsub import LEASE_MS
from boxoffice.engine.settings import Settings
from boxoffice.engine.statuses import HoldStatus, SeatStatus
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH, SALES_TABLES
from tests.support.cluster import LocalCluster, shows_on_every_shard
from tests.support.shows import ShowRef, pick_show
from tests.support.state import show_state


def starts_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def show_pattern(ctx: Engine, show_id: int) -> str:
    return f"{ctx.keys.show_base(show_id)}*"


async def keys_of(ctx: Engine, show_id: int) -> set[str]:
    return {k async for k in ctx.redis.scan_iter(match=show_pattern(ctx, show_id), count=1000)}


async def later_show(ctx: Engine, after: datetime, not_hall: int | None = None) -> ShowRef:
    """An open show starting after `after` (another hall than `not_hall` when given)."""
    async with ctx.sql.connect() as conn:
        row = (await conn.execute(text(
            "SELECT id, hall_id FROM shows WHERE starts_at > :after AND hall_id <> :hall"
            " AND status = 'open' ORDER BY starts_at DESC, id LIMIT 1"),
            {"after": db_time(conn, after), "hall": -1 if not_hall is None else not_hall},
        )).first()
    assert row is not None, "the demo catalog has no show that late"
    plan = await ctx.catalog.hall_plan(int(row[1]))
    return ShowRef(int(row[0]), int(row[1]), [s.id for s in plan.seats])


def expiries() -> float:
    return REGISTRY.get_sample_value("boxoffice_hold_expiries_total") or 0.0


async def next_message(pubsub: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            return message
        await asyncio.sleep(0.01)
    raise AssertionError("no change was published")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_the_full_pass_unloads_a_show_past_its_grace_and_nothing_else(ctx: Engine) -> None:
    show = await pick_show(ctx, 60, 200)
    info = await ctx.catalog.show(show.show_id)
    other = await later_show(ctx, info.starts_at + timedelta(hours=3), not_hall=show.hall_id)
    seats = iter(show.seat_ids)

    # Every kind of record: a sale, a released hold, a grant, active holds, a waiter.
    paid = await ctx.holds.hold(show.show_id, [next(seats), next(seats)], "paid@example.org")
    booking = await ctx.confirmations.confirm(paid.hold_id, "unload-key", "tok_ok")
    released = await ctx.holds.hold(show.show_id, [next(seats)], "gone@example.org")
    await ctx.holds.release(released.hold_id)
    granted = await ctx.waitlist.join(show.show_id, "granted@example.org", 1, None)
    assert granted.status == "granted"
    free = [s for s in seats if s not in await ctx.holds.seat_statuses(show.show_id)]
    active = []
    for i in range(0, len(free), 10):
        active.append(await ctx.holds.hold(show.show_id, free[i : i + 10], f"c{i}@example.org"))
    waiting = await ctx.waitlist.join(show.show_id, "waiter@example.org", 2, None)
    assert waiting.status == "waiting"
    names = await keys_of(ctx, show.show_id)
    for record in (paid.hold_id, released.hold_id, active[0].hold_id):
        assert ctx.keys.hold(show.show_id, record) in names
    assert ctx.keys.entry(show.show_id, waiting.entry_id) in names

    # Another show, loaded, with a live hold and a waiter's trees: it must not change at all.
    await ctx.holds.hold(other.show_id, other.seat_ids[:2], "other@example.org")
    await ctx.holds.seat_statuses(other.show_id)
    before = await show_state(ctx, other.show_id)
    assert await ctx.redis.smembers(ctx.keys.loaded_shows) == {str(show.show_id), str(other.show_id)}

    pubsub = ctx.redis.pubsub()
    await pubsub.subscribe(ctx.keys.changes_channel(show.show_id))
    expired_before = expiries()
    grace_ms = ctx.settings.unload_after_s * 1000
    # A lease on the show's messages running past the times the sweeps below are told.
    await ctx.gateway.listen(show.show_id, LEASE_MS, now_ms=starts_ms(info.starts_at) + grace_ms - 1)
    try:
        # One millisecond short of the grace: kept whole.
        kept = await show_state(ctx, show.show_id)
        await ctx.sweeper.full_pass(now_ms=starts_ms(info.starts_at) + grace_ms - 1)
        assert await show_state(ctx, show.show_id) == kept
        assert ctx.sweeper.shows_unloaded == 0

        await ctx.sweeper.full_pass(now_ms=starts_ms(info.starts_at) + grace_ms)
        # The settle published first: the waiter ended, the held seats came free.
        message = (await next_message(pubsub, 5.0))["data"]
        queue, changed, _, ended = message.split(";")
        assert queue == "1" and waiting.entry_id in ended.split(",")
        assert f"{free[0]}=available" in changed.split(",")
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()

    assert await keys_of(ctx, show.show_id) == set()
    assert ctx.sweeper.shows_unloaded == 1
    assert await ctx.redis.smembers(ctx.keys.loaded_shows) == {str(other.show_id)}
    assert await ctx.redis.zscore(ctx.keys.sweep_index, str(show.show_id)) is None
    assert await ctx.redis.zscore(ctx.keys.sweep_index, str(other.show_id)) is not None
    assert await show_state(ctx, other.show_id) == before
    # Each active hold (the grant's too) ended once, counted once.
    assert expiries() - expired_before == len(active) + 1

    # Old ids answer as for a lost hold, from PostgreSQL, without loading the show again.
    again = await ctx.holds.hold_status(paid.hold_id)
    assert again.status is HoldStatus.CONFIRMED and again.booking_id == booking.booking_id
    assert (await ctx.holds.hold_status(active[0].hold_id)).status is HoldStatus.EXPIRED
    assert (await ctx.holds.hold_status(released.hold_id)).status is HoldStatus.EXPIRED
    assert (await ctx.waitlist.status(waiting.entry_id)).status == "expired"
    assert await keys_of(ctx, show.show_id) == set()

    # The seat map reloads the show from PostgreSQL: the sale is there, nothing else.
    statuses = await ctx.holds.seat_statuses(show.show_id)
    assert statuses == {seat: SeatStatus.BOOKED for seat in paid.seats}
    stats = await ctx.redis.hgetall(ctx.keys.stats(show.show_id))
    assert {k: int(v) for k, v in stats.items()} == {
        "seats": len(show.seat_ids), "held": 0, "booked": 2, "waiting": 0}
    assert await ctx.redis.sismember(ctx.keys.loaded_shows, str(show.show_id))


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_hold_still_live_at_the_end_of_the_grace_keeps_the_show(ctx: Engine) -> None:
    show = await pick_show(ctx)
    start = starts_ms((await ctx.catalog.show(show.show_id)).starts_at)
    ctx.shows.unload_after_s = ctx.sweeper.unload_after_s = 60
    # Taken a second before the start (clock moved): its 300 s outlive the 60 s grace.
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "late@example.org", now_ms=start - 1000)
    assert hold.expires_at_ms > start + 60_000

    assert await ctx.shows.unload(show.show_id, now_ms=start + 60_000) == 0
    assert ctx.keys.hold(show.show_id, hold.hold_id) in await keys_of(ctx, show.show_id)
    await ctx.sweeper.full_pass(now_ms=start + 60_000)
    assert await ctx.redis.sismember(ctx.keys.loaded_shows, str(show.show_id))

    # Once its deadline passed, the same call settles it and unloads.
    deleted = await ctx.shows.unload(show.show_id, now_ms=hold.expires_at_ms)
    # the hold's hash, meta, layout, stats, and the status map and seat index load_show made
    assert deleted == 6
    assert await keys_of(ctx, show.show_id) == set()
    assert not await ctx.redis.sismember(ctx.keys.loaded_shows, str(show.show_id))


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_the_records_set_names_a_hold_once_it_ended_however_it_ended(ctx: Engine) -> None:
    # A live hold is found through the deadlines zset (unload waits for it to end), so a
    # hold writes nothing to the records set until it ends: a call less on the hot path.
    show = await pick_show(ctx)
    seats = iter(show.seat_ids)
    records = ctx.keys.records(show.show_id)
    live = await ctx.holds.hold(show.show_id, [next(seats)], "live@example.org")
    released = await ctx.holds.hold(show.show_id, [next(seats)], "released@example.org")
    paid = await ctx.holds.hold(show.show_id, [next(seats)], "paid@example.org")
    lapsing = await ctx.holds.hold(show.show_id, [next(seats)], "lapsing@example.org",
                                   now_ms=int(time.time() * 1000) - 600_000)  # its 5 minutes are over
    assert await ctx.redis.smembers(records) == set()

    await ctx.holds.release(released.hold_id)
    await ctx.confirmations.confirm(paid.hold_id, "records-key", "tok_ok")
    await ctx.holds.seat_statuses(show.show_id)  # settles: the hold made 10 minutes ago expired
    ended = {f"hold:{h.hold_id}" for h in (released, paid, lapsing)}
    assert await ctx.redis.smembers(records) == ended
    assert f"hold:{live.hold_id}" not in await ctx.redis.smembers(records)
    for hold in (released, paid, lapsing):  # each ended hash kept for status lookups, not forever
        assert 0 < await ctx.redis.ttl(ctx.keys.hold(show.show_id, hold.hold_id)) <= 86400
    assert await ctx.redis.ttl(ctx.keys.hold(show.show_id, live.hold_id)) == -1


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_hold_and_entry_hashes_go_in_batches(ctx: Engine) -> None:
    from boxoffice.engine import show_loader

    show = await pick_show(ctx)
    start = starts_ms((await ctx.catalog.show(show.show_id)).starts_at)
    ids = []
    for i in range(5):
        hold = await ctx.holds.hold(show.show_id, [show.seat_ids[i]], f"b{i}@example.org")
        await ctx.holds.release(hold.hold_id)
        ids.append(hold.hold_id)
    calls = 0
    run = ctx.scripts.run

    async def counting(name: str, keys: list[str], args: list[Any]) -> Any:
        nonlocal calls
        calls += name == "unload_show"
        return await run(name, keys, args)

    ctx.scripts.run = counting  # type: ignore[method-assign]
    original = show_loader.UNLOAD_BATCH
    show_loader.UNLOAD_BATCH = 2
    try:
        deleted = await ctx.shows.unload(show.show_id, now_ms=start + ctx.settings.unload_after_s * 1000)
    finally:
        show_loader.UNLOAD_BATCH = original
        ctx.scripts.run = run  # type: ignore[method-assign]
    assert calls == 3  # 2 + 2 + (1 and the show's keys)
    # the hold hashes, meta, layout, stats, and the status map and seat index load_show made
    assert deleted == 5 + 5
    assert await keys_of(ctx, show.show_id) == set()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_an_unloaded_show_still_reads_and_refuses_holds(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await pick_show(ctx)
    info = await ctx.catalog.show(show.show_id)
    held = await client.post(f"/v1/shows/{show.show_id}/holds",
                             json={"seats": show.seat_ids[:2], "customer": "ana@example.org"})
    assert held.status_code == 201, held.text
    hold_id = held.json()["hold_id"]
    confirmed = await client.post(f"/v1/holds/{hold_id}/confirm", headers={"Idempotency-Key": "unload-api"},
                                  json={"payment": {"method": "card", "token": "tok_ok"}})
    assert confirmed.status_code == 201, confirmed.text
    released = (await client.post(f"/v1/shows/{show.show_id}/holds",
                                  json={"seats": show.seat_ids[2:3], "customer": "bo@example.org"})).json()
    assert (await client.delete(f"/v1/holds/{released['hold_id']}")).status_code == 204

    # The show started an hour and a minute ago, in PostgreSQL and in Redis.
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=ctx.settings.unload_after_s + 60)
    await move_start(ctx, show.show_id, started)
    try:
        await ctx.redis.hset(ctx.keys.show_keys(show.show_id)[0], "starts_at", starts_ms(started))
        await ctx.sweeper.full_pass()
        assert await keys_of(ctx, show.show_id) == set()

        seat_map = await client.get(f"/v1/shows/{show.show_id}/seats")
        assert seat_map.status_code == 200
        status = {s["id"]: s["status"] for s in seat_map.json()["seats"]}
        assert [s for s, v in status.items() if v != "available"] == show.seat_ids[:2]
        assert {status[s] for s in show.seat_ids[:2]} == {"booked"}

        refused = await client.post(f"/v1/shows/{show.show_id}/holds",
                                    json={"seats": show.seat_ids[5:6], "customer": "cy@example.org"})
        assert refused.status_code == 409 and refused.json()["error"] == "show_closed"
        paid = (await client.get(f"/v1/holds/{hold_id}")).json()
        assert paid["status"] == "confirmed" and paid["booking_id"] == confirmed.json()["booking_id"]
        assert (await client.get(f"/v1/holds/{released['hold_id']}")).json()["status"] == "expired"
    finally:
        await move_start(ctx, show.show_id, info.starts_at)


async def move_start(ctx: Engine, show_id: int, starts_at: datetime) -> None:
    async with ctx.sql.begin() as conn:
        await conn.execute(text("UPDATE shows SET starts_at = :at WHERE id = :id"),
                           {"at": db_time(conn, starts_at), "id": show_id})


# -- on a Redis Cluster: every key of a show in its own slot, the global sets elsewhere ------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster.start()
    yield local
    local.stop()


@pytest.fixture
async def cctx(cluster: LocalCluster, database_url: str) -> AsyncIterator[Engine]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SALES_TABLES}")
    settings = Settings(redis_url=cluster.url, database_url=database_url, redis_cluster=True,
                        key_prefix=f"t{uuid.uuid4().hex[:10]}", browse_cache_s=0.0, rate_limit_holds_per_min=0,
                        rate_limit_ip_per_min=0, reconcile_interval_s=3600.0)
    context = await open_engine(settings, background=False)
    yield context
    keys = [k async for k in context.redis.scan_iter(match=f"{context.keys.prefix}:*", count=1000)]
    if keys:
        await context.redis.delete(*keys)
    await context.close()


@pytest.mark.cluster
async def test_the_full_pass_unloads_shows_on_every_shard(cctx: Engine, cluster: LocalCluster) -> None:
    shows = await shows_on_every_shard(cctx, cluster, per_shard=1)
    latest = 0
    for show in shows:
        released = await cctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
        await cctx.holds.release(released.hold_id)
        await cctx.holds.hold(show.show_id, show.seat_ids[2:4], "bo@example.org")
        await cctx.holds.seat_statuses(show.show_id)
        latest = max(latest, starts_ms((await cctx.catalog.show(show.show_id)).starts_at))
        assert len(await keys_of(cctx, show.show_id)) >= 10

    await cctx.sweeper.full_pass(now_ms=latest + cctx.settings.unload_after_s * 1000)
    assert cctx.sweeper.shows_unloaded == len(shows)
    for show in shows:
        assert await keys_of(cctx, show.show_id) == set()
    assert await cctx.redis.smembers(cctx.keys.loaded_shows) == set()
    assert await cctx.redis.zcard(cctx.keys.sweep_index) == 0
