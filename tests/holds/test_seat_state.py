"""The seats' state lives in the status map (lua/includes/statusmap.lua): a held seat's hold
is the live hold that lists it and has not lost it to a booking. These tests take the rare
paths of that rule: a booking that takes a seat another live hold holds (booked always
wins), and a show an older library loaded, held seats in its seats hash and no seat index.
tests/support/seats.py's seat_marks fails whenever the map, the bookings and the live holds
disagree, so every step below also checks that."""

from __future__ import annotations

import itertools

import pytest

from boxoffice.engine.errors import SeatsUnavailable
from boxoffice.engine.redis.gateway import BestRequest, ShowLoad
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH
from tests.support.seats import seat_counts, seat_marks

FAR_FUTURE_MS = 4_102_444_800_000  # 2100
_shows = itertools.count(910_000_001)
LAYOUT = [(f"A{n}", f"standard|A|{n}|{n - 1}|standard") for n in range(1, 7)]


async def stats(ctx: Engine, show_id: int) -> dict[str, int]:
    counts = await seat_counts(ctx.redis, ctx.keys, show_id)
    return {k: counts[k] for k in ("free", "held", "booked")}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_booking_that_takes_a_seat_another_hold_holds_is_never_freed_by_that_hold(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    now = int((await ctx.redis.time())[0]) * 1000
    # Hold A expires; B holds A1 and A2 after it. A's payment went through meanwhile: PostgreSQL
    # sold A1 under A's hold, and Redis is told (confirm_finish: booked always wins).
    await ctx.gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A1"], now_ms=now)
    later = now + ctx.gateway.hold_ttl_ms + 1
    await ctx.gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A1", "A2"], now_ms=later)
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {"A1": "h:HB", "A2": "h:HB"}
    assert await ctx.gateway.call("confirm_finish", show_id, "HA", "bk_a", "A1", now_ms=later) == 1
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {"A1": "b:bk_a", "A2": "h:HB"}
    assert await ctx.redis.hget(ctx.keys.hold(show_id, "HB"), "lost") == "A1"
    assert await stats(ctx, show_id) == {"free": 4, "held": 1, "booked": 1}
    # B ends: it frees A2 only; A1 stays sold.
    await ctx.gateway.release_hold(show_id, "HB", now_ms=later)
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {"A1": "b:bk_a"}
    assert await stats(ctx, show_id) == {"free": 5, "held": 0, "booked": 1}
    with pytest.raises(SeatsUnavailable):
        await ctx.gateway.hold_seats(show_id, "HC", "cy@example.org", 10, ["A1"], now_ms=later)
    # Cancelled, A1 is free again, and a new hold of it is no concern of B's (ended).
    assert await ctx.gateway.call("cancel_booking", show_id, "bk_a", "A1", now_ms=later) == 1
    await ctx.gateway.hold_seats(show_id, "HD", "dan@example.org", 10, ["A1"], now_ms=later)
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {"A1": "h:HD"}
    assert await stats(ctx, show_id) == {"free": 5, "held": 1, "booked": 0}


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_hold_that_lost_a_seat_and_expires_frees_only_the_rest(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    now = int((await ctx.redis.time())[0]) * 1000
    await ctx.gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A3", "A4"], now_ms=now)
    # A repair from PostgreSQL (no hold id) marks A3 sold.
    assert await ctx.gateway.call("confirm_finish", show_id, "", "bk_r", "A3", now_ms=now) == 1
    later = now + ctx.gateway.hold_ttl_ms + 1
    assert (await ctx.gateway.hold_status(show_id, "HB", now_ms=later)).status == "expired"
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {"A3": "b:bk_r"}
    assert await stats(ctx, show_id) == {"free": 5, "held": 0, "booked": 1}
    assert await ctx.redis.hget(ctx.keys.show_keys(show_id)[4], "bob@example.org") is None


async def test_a_show_an_older_library_loaded_moves_its_held_seats_out_of_the_seats_hash(ctx: Engine) -> None:
    """Held seats in the seats hash ("h:<hold_id>"), no seat index, no status map: the first
    script numbers the show (provisionally), builds the map from the live holds and leaves
    only booked seats in the hash; the first seat map read numbers it in plan order."""
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, [("A6", "bk_old")]))
    await ctx.gateway.hold_seats(show_id, "HO", "ola@example.org", 10, ["A2", "A3"])
    keys, base = ctx.keys.show_keys(show_id), ctx.keys.show_base(show_id)
    await ctx.redis.hset(keys[2], mapping={"A2": "h:HO", "A3": "h:HO"})
    await ctx.redis.delete(base + "seatindex", base + "statusmap")
    with pytest.raises(SeatsUnavailable):
        await ctx.gateway.hold_seats(show_id, "HN", "new@example.org", 10, ["A3"])
    assert await ctx.redis.hgetall(keys[2]) == {"A6": "b:bk_old"}
    assert await ctx.redis.hget(keys[0], "index_provisional") == "1"
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {"A2": "h:HO", "A3": "h:HO", "A6": "b:bk_old"}
    status_map, _, held, booked = await ctx.gateway.seat_status(show_id, None)
    assert status_map == 0, "a provisional numbering is not the plan's: the engine numbers it"
    plan_order = [seat for seat, _ in reversed(LAYOUT)]
    await ctx.gateway.index_seats(show_id, plan_order, None)
    status_map, _, held, booked = await ctx.gateway.seat_status(show_id, None)
    assert (status_map, held, booked) == ("b00hh0", 2, 1)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_show_an_older_release_loaded_counts_its_free_seats_from_its_meta(ctx: Engine) -> None:
    """Its stats hash has no `seats` and a `free` count this release no longer keeps (stale
    after the first change): the free seats come from the meta's seat_count instead."""
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, [("A6", "bk_old")]))
    await ctx.redis.hdel(ctx.keys.stats(show_id), "seats")
    await ctx.redis.hset(ctx.keys.stats(show_id), "free", 0)  # as stale as it gets
    held = await ctx.gateway.hold_best(show_id, "HA", "ana@example.org", 10, BestRequest(5, together=False))
    assert sorted(held.seats) == ["A1", "A2", "A3", "A4", "A5"]
    assert await ctx.gateway.release_hold(show_id, "HA") is None
    held = await ctx.gateway.hold_best(show_id, "HB", "bob@example.org", 10, BestRequest(4))
    assert len(held.seats) == 4
    with pytest.raises(SeatsUnavailable):
        await ctx.gateway.hold_best(show_id, "HC", "cy@example.org", 10, BestRequest(2))
