"""Redis decides everything about seats and time, on its own clock and its own copy of the
show: the sweep index follows every call that brings a wake earlier (expiry is never late
by more than a sweeper tick), a closed show sells nothing more, a started show is refused
by the scripts whatever the app server's clock says, the queue ends at the start even when a
payment fails just after it, and a group is never seated across an aisle."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from boxoffice.engine.catalog import HallPlan, Seat
from boxoffice.engine.db import db_time
from boxoffice.engine.errors import ShowClosed
from boxoffice.engine.settings import Settings
from boxoffice.engine.statuses import HoldStatus
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import settings_on_empty_sales
from tests.support.sales import audit, eventually, redis_now_ms
from tests.support.services import RedisServer
from tests.support.shows import ShowRef, pick_show

_new_ids = itertools.count(1)


async def new_show(ctx: Engine, starts_at: datetime) -> ShowRef:
    """A show of its own (a copy of a demo show's hall, movie and prices at another time), so
    a test may close or start it without touching the shows other tests use. It is closed in
    PostgreSQL when the test ends, so browse never lists it."""
    model = await pick_show(ctx, 60, 200)
    async with ctx.sql.begin() as conn:
        show_id = int((await conn.execute(text("SELECT max(id) FROM shows"))).scalar_one()) + next(_new_ids)
        await conn.execute(text(
            "INSERT INTO shows (id, movie_id, hall_id, starts_at, status, currency)"
            " SELECT :id, movie_id, hall_id, :starts, 'open', currency FROM shows WHERE id = :model"),
            {"id": show_id, "starts": db_time(conn, starts_at), "model": model.show_id})
        await conn.execute(text(
            "INSERT INTO show_prices (show_id, category, amount)"
            " SELECT :id, category, amount FROM show_prices WHERE show_id = :model"),
            {"id": show_id, "model": model.show_id})
    return ShowRef(show_id, model.hall_id, model.seat_ids)


@pytest.fixture
async def live(redis_server: RedisServer, database_url: str) -> AsyncIterator[Engine]:
    """An engine with its sweeper running, short holds and a long confirm pin."""
    settings = settings_on_empty_sales(redis_server.url, database_url, "rd", hold_ttl_s=4, confirm_pin_s=10,
                                       sweep_interval_s=0.1)
    context = await open_engine(settings)
    yield context
    await context.close()


@pytest.fixture
async def quiet(settings: Settings, database_url: str, redis_server: RedisServer) -> AsyncIterator[Engine]:
    """An engine without background tasks: the test moves the scripts' clock itself."""
    context = await open_engine(settings_on_empty_sales(redis_server.url, database_url, "rq"), background=False)
    yield context
    await context.close()


async def ended_at(ctx: Engine, show_id: int, hold_id: str, timeout_s: float) -> float:
    """Redis's time (ms) at which the hold's hash first reads ended, polled raw (a raw read
    settles nothing, so only the sweeper can end it)."""
    key = ctx.keys.hold(show_id, hold_id)

    async def ended() -> int:
        return int(await redis_now_ms(ctx)) if await ctx.redis.hget(key, "status") == "expired" else 0

    return await eventually(ended, timeout_s=timeout_s, every_s=0.02)


# -- the sweep index follows every call ----------------------------------------------


async def test_a_declined_payment_restoring_an_earlier_deadline_expires_on_time(live: Engine) -> None:
    show = await pick_show(live, 60, 200)
    # The first hold made "2 s ago" on the scripts' clock ends 2 s before the second.
    first = await live.holds.hold(show.show_id, show.seat_ids[:1], "ana@example.org",
                                      now_ms=await redis_now_ms(live) - 2000)
    second = await live.holds.hold(show.show_id, show.seat_ids[1:3], "ben@example.org")
    # A confirm pins the second hold: its deadline moves to the pin's end (10 s).
    pin = await live.gateway.confirm_begin(show.show_id, second.hold_id, 10_000, "at-decline")
    # The sweeper ends the first hold and, seeing the pin, puts the show under the pin's end.
    await ended_at(live, show.show_id, first.hold_id, timeout_s=6)
    # The payment is declined before the second hold's own deadline: it is active again until then.
    assert await live.gateway.confirm_abort(show.show_id, second.hold_id, pin.fence) == 1
    late_ms = await ended_at(live, show.show_id, second.hold_id, timeout_s=12) - second.expires_at_ms
    assert late_ms < 1000, f"expired {late_ms} ms after its deadline"


async def test_a_first_waiter_ends_with_the_queue_at_the_shows_start(live: Engine) -> None:
    starts_at = datetime.now(UTC) + timedelta(seconds=3)
    show = await new_show(live, starts_at)
    try:
        # A long hold fills the show; its deadline (the hold time is 4 s, the show starts in 3)
        # is what the sweep index knows when the first waiter arrives.
        seats = show.seat_ids
        for i in range(0, len(seats), 10):
            await live.gateway.hold_seats(show.show_id, live.signer.new_hold_id(show.show_id), f"f{i}@example.org",
                                          10, seats[i:i + 10])
        entry = await live.waitlist.join(show.show_id, "wait@example.org", 1, None)
        key = live.keys.entry(show.show_id, entry.entry_id)

        async def queue_ended() -> int:
            return int(await redis_now_ms(live)) if await live.redis.hget(key, "status") == "expired" else 0

        late_ms = await eventually(queue_ended, timeout_s=10, every_s=0.02) - int(starts_at.timestamp() * 1000)
        assert late_ms < 1000, f"the queue ended {late_ms} ms after the start"
    finally:
        await live.catalog.set_show_status(show.show_id, "closed")


# -- a closed show sells nothing ----------------------------------------------------


async def test_closing_a_show_ends_its_holds_and_queue_and_refuses_every_sale(quiet: Engine) -> None:
    ctx = quiet
    show = await new_show(ctx, datetime.now(UTC) + timedelta(days=1))
    seats = show.seat_ids
    active = await ctx.holds.hold(show.show_id, seats[:2], "ana@example.org")
    paying = await ctx.holds.hold(show.show_id, seats[2:4], "ben@example.org")
    pin = await ctx.gateway.confirm_begin(show.show_id, paying.hold_id, 60_000, "at-paying")
    for i in range(4, len(seats), 10):  # the rest held: a waiter waits
        await ctx.holds.hold(show.show_id, seats[i:i + 10], f"f{i}@example.org")
    entry = await ctx.waitlist.join(show.show_id, "wait@example.org", 2, None)
    assert entry.status == "waiting"

    released, cancelled = await ctx.holds.close_show(show.show_id)
    assert (released, cancelled) == (2 + len(range(4, len(seats), 10)), 1)
    assert await ctx.holds.close_show(show.show_id) == (0, 0), "closing again changes nothing"
    assert (await ctx.holds.hold_status(active.hold_id)).status is HoldStatus.RELEASED
    assert (await ctx.waitlist.status(entry.entry_id)).status == "cancelled"
    assert await ctx.holds.seat_statuses(show.show_id) == {}
    with pytest.raises(ShowClosed):
        await ctx.holds.hold(show.show_id, seats[:2], "cy@example.org")
    with pytest.raises(ShowClosed):
        await ctx.waitlist.join(show.show_id, "cy@example.org", 1, None)
    with pytest.raises(ShowClosed):  # an existing hold cannot be confirmed (nothing charged)
        await ctx.confirmations.confirm(active.hold_id, "k-closed", "tok_ok")
    # The confirm that was paying when the show closed lost its pin: nothing may commit.
    assert not await ctx.gateway.confirm_check(show.show_id, paying.hold_id, pin.fence, 60_000)
    # A show loaded again from PostgreSQL (a wiped or unloaded Redis) is still closed.
    await ctx.shows.unload(show.show_id, now_ms=int(time.time() * 1000) + 10 * 86_400_000)
    with pytest.raises(ShowClosed):
        await ctx.holds.hold(show.show_id, seats[:2], "cy@example.org")
    books = await audit(ctx)
    books.assert_consistent()
    assert books.charges == 0


# -- the start, on Redis's clock ------------------------------------------------------


async def test_a_show_that_started_on_redis_clock_sells_nothing_whatever_the_app_clock(quiet: Engine) -> None:
    """now_ms moves the scripts' clock past the start while the app server's own clock (and
    the catalog) still says the show is to come: an app clock that lags Redis's."""
    ctx = quiet
    show = await pick_show(ctx, 60, 200)
    info = await ctx.catalog.show(show.show_id)
    start_ms = int(info.starts_at.timestamp() * 1000)
    before = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org", now_ms=start_ms - 1000)
    with pytest.raises(ShowClosed):
        await ctx.holds.hold(show.show_id, show.seat_ids[4:6], "ben@example.org", now_ms=start_ms)
    with pytest.raises(ShowClosed):
        await ctx.waitlist.join(show.show_id, "ben@example.org", 1, None, now_ms=start_ms + 1)
    with pytest.raises(ShowClosed):
        await ctx.gateway.confirm_begin(show.show_id, before.hold_id, 60_000, "at-late", now_ms=start_ms + 1)


async def test_a_payment_declined_just_after_the_start_ends_the_queue_instead_of_granting(
        quiet: Engine) -> None:
    ctx = quiet
    show = await pick_show(ctx, 60, 200)
    info = await ctx.catalog.show(show.show_id)
    start_ms = int(info.starts_at.timestamp() * 1000)
    t0 = start_ms - 310_000  # the holds end 10 s before the start
    seats = show.seat_ids
    paying = await ctx.holds.hold(show.show_id, seats[:2], "ana@example.org", now_ms=t0)
    for i in range(2, len(seats), 10):
        await ctx.holds.hold(show.show_id, seats[i:i + 10], f"f{i}@example.org", now_ms=t0)
    entry = await ctx.waitlist.join(show.show_id, "wait@example.org", 2, None, now_ms=t0)
    # Paying from before its deadline until after the start: the pin outlives both.
    pin = await ctx.gateway.confirm_begin(show.show_id, paying.hold_id, 400_000, "at-start", now_ms=t0)
    # Declined a second after the start (and after the hold's own deadline): the hold ends,
    # and its seats do not go to the waiter, whose queue ended at the start.
    assert await ctx.gateway.confirm_abort(show.show_id, paying.hold_id, pin.fence, now_ms=start_ms + 1000) == 2
    assert (await ctx.waitlist.status(entry.entry_id, now_ms=start_ms + 1000)).status == "expired"
    statuses = await ctx.holds.seat_statuses(show.show_id, now_ms=start_ms + 1000)
    assert all(seat not in statuses for seat in seats[:2])


# -- aisles ---------------------------------------------------------------------------


def test_a_row_whose_only_gap_is_the_aisle_keeps_its_two_sides_apart() -> None:
    """Rows A-B have ten seats a unit apart with an aisle of two after the fifth; row L has only
    the two seats beside the aisle. L1 and L2 are not side by side."""
    seats: list[Seat] = []
    for row_index, row in enumerate("AB"):
        for number in range(1, 11):
            x = number - 1 + (1 if number > 5 else 0)
            seats.append(Seat(f"{row}{number}", row, number, "standard", "standard", x, row_index, 100 + number))
    seats += [Seat("L1", "L", 1, "standard", "standard", 4, 5, 200),
              Seat("L2", "L", 2, "standard", "standard", 6, 5, 201)]
    places = HallPlan(1, tuple(seats), {s.id: s for s in seats}).row_places()
    assert places["A2"] - places["A1"] == 1 and places["A6"] - places["A5"] == 2
    assert places["L2"] - places["L1"] == 2, "the aisle is a gap, not a neighbour"


# -- fences, reclaims, lapsed pins ------------------------------------------------------


async def test_fences_never_repeat_after_the_show_leaves_redis(quiet: Engine) -> None:
    ctx = quiet
    show = await pick_show(ctx, 60, 200)
    first = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    old = await ctx.gateway.confirm_begin(show.show_id, first.hold_id, 60_000, "at-1")
    await ctx.redis.delete(*ctx.keys.show_keys(show.show_id))  # wiped (or unloaded): loaded again
    second = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    new = await ctx.gateway.confirm_begin(show.show_id, second.hold_id, 60_000, "at-2")
    assert new.fence > old.fence, "a stale confirm's fence could name the new pin"


async def test_a_reclaimed_hold_gets_no_hold_time_and_counts_against_the_limit(quiet: Engine) -> None:
    ctx = quiet
    show = await pick_show(ctx, 60, 200)
    now = await redis_now_ms(ctx)
    lost = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org", now_ms=now - 400_000)
    await ctx.gateway.sweep(show.show_id)  # it expired while its payment was taken elsewhere
    await ctx.holds.hold(show.show_id, show.seat_ids[10:19], "ana@example.org")  # 9 more seats
    refused = await ctx.gateway.confirm_reclaim(show.show_id, lost.hold_id, 1, 60_000, "ana@example.org",
                                                "at-r1", 10, lost.seats)
    assert refused == "expired", "11 seats would exceed the customer's limit"
    taken = await ctx.gateway.confirm_reclaim(show.show_id, lost.hold_id, 1, 60_000, "ana@example.org",
                                              "at-r2", 11, lost.seats)
    assert isinstance(taken, int)
    record = await ctx.gateway.hold_status(show.show_id, lost.hold_id)
    assert record is not None and record.expires_at_ms <= record.now_ms, "no fresh hold time"
    again = await ctx.gateway.confirm_reclaim(show.show_id, lost.hold_id, 1, 60_000, "ana@example.org",
                                              "at-r2", 11, lost.seats)
    assert again == taken, "the same reclaim attempt answers its first outcome"


async def test_a_hold_whose_confirm_pin_lapsed_can_be_released(quiet: Engine) -> None:
    ctx = quiet
    show = await pick_show(ctx, 60, 200)
    now = await redis_now_ms(ctx)
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org", now_ms=now)
    pin = await ctx.gateway.confirm_begin(show.show_id, hold.hold_id, 1_000, "at-dead", now_ms=now)
    assert (await ctx.holds.hold_status(hold.hold_id, now_ms=now + 2_000)).status is HoldStatus.ACTIVE
    await ctx.holds.release(hold.hold_id, now_ms=now + 2_000)  # GET said active: DELETE agrees
    assert (await ctx.holds.hold_status(hold.hold_id, now_ms=now + 2_000)).status is HoldStatus.RELEASED
    assert not await ctx.gateway.confirm_check(show.show_id, hold.hold_id, pin.fence, 1_000)
