"""A call reads and writes its seats in the status map as one span, from the lowest
position to the highest (lua/includes/statusmap.lua: seat_chars, set_seats): one GETRANGE
and one SETRANGE whatever the seats. These tests put other seats' states inside a hold's
span (a booked seat, another hold's seats, free seats) and check, character by character,
that only the hold's own seats change, whether they are side by side or apart, named in
any order, at the hall's ends. seat_marks also fails whenever the map, the bookings and
the live holds disagree. The seat index numbers exactly the layout's seats
(lua/index_seats-1.lua): a hold finds its seats by position alone."""

from __future__ import annotations

import itertools

import pytest
from redis.exceptions import ResponseError

from boxoffice.engine.errors import InvalidRequest, SeatsUnavailable
from boxoffice.engine.redis.gateway import ShowLoad
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH
from tests.support.seats import seat_counts, seat_marks

FAR_FUTURE_MS = 4_102_444_800_000  # 2100
_shows = itertools.count(912_000_001)
SEATS = [f"A{n}" for n in range(1, 11)]  # positions 0..9, in this order
LAYOUT = [(seat, f"standard|A|{n}|{n - 1}|standard") for n, seat in enumerate(SEATS, start=1)]


async def status_map(ctx: Engine, show_id: int) -> str:
    await seat_marks(ctx.redis, ctx.keys, show_id)  # fails if map, bookings and holds disagree
    return await ctx.redis.get(ctx.keys.show_base(show_id) + "statusmap")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_hold_changes_only_its_own_seats_within_its_span(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, [("A5", "bk_five")]))
    assert await status_map(ctx, show_id) == "0000b00000"
    # Apart, named out of order, a booked seat inside their span.
    await ctx.gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A7", "A2", "A9"])
    assert await status_map(ctx, show_id) == "0h00b0h0h0"
    # Side by side, inside the first hold's span.
    await ctx.gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A4", "A3"])
    assert await status_map(ctx, show_id) == "0hhhb0h0h0"
    # Both ends of the hall: the span is the whole map, every other state inside it.
    await ctx.gateway.hold_seats(show_id, "HC", "cy@example.org", 10, ["A10", "A1"])
    assert await status_map(ctx, show_id) == "hhhhb0h0hh"
    # A hold that names one taken seat changes nothing.
    with pytest.raises(SeatsUnavailable):
        await ctx.gateway.hold_seats(show_id, "HD", "dan@example.org", 10, ["A6", "A8", "A9"])
    assert await status_map(ctx, show_id) == "hhhhb0h0hh"
    # Ends free their own seats only, the others' inside their span untouched.
    await ctx.gateway.release_hold(show_id, "HA")
    assert await status_map(ctx, show_id) == "h0hhb0000h"
    await ctx.gateway.release_hold(show_id, "HC")
    assert await status_map(ctx, show_id) == "00hhb00000"
    await ctx.gateway.release_hold(show_id, "HB")
    assert await status_map(ctx, show_id) == "0000b00000"
    raw = await seat_counts(ctx.redis, ctx.keys, show_id)
    assert (raw["free"], raw["held"], raw["booked"]) == (9, 0, 1)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_hold_of_a_missing_map_builds_it_again_first(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, [("A5", "bk_five")]))
    await ctx.gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A2", "A8"])
    await ctx.redis.delete(ctx.keys.show_base(show_id) + "statusmap")
    with pytest.raises(SeatsUnavailable):  # A2 is still held: the map came back from the holds
        await ctx.gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A2", "A3"])
    await ctx.gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A3", "A9"])
    assert await status_map(ctx, show_id) == "0hh0b00hh0"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_hold_of_a_seat_the_hall_lacks_or_named_twice_is_refused(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    for seats in (["A1", "Z9"], ["A3", "A4", "A3"]):
        with pytest.raises(InvalidRequest):
            await ctx.gateway.hold_seats(show_id, "HX", "ana@example.org", 10, seats)
    assert await status_map(ctx, show_id) == "0" * 10


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_the_index_numbers_exactly_the_layouts_seats(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    await ctx.gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A2"])
    index_key = ctx.keys.show_base(show_id) + "seatindex"
    before = await ctx.redis.hgetall(index_key)
    for seats in ([*SEATS[:-1], "Z1"], SEATS[:-1], [*SEATS, "A1"], [*SEATS[:-1], "A1"]):
        with pytest.raises(ResponseError, match="index_seats"):
            await ctx.gateway.index_seats(show_id, seats, None)
        assert await ctx.redis.hgetall(index_key) == before
    # The plan's own seats in another order: numbered again, the map follows.
    await ctx.gateway.index_seats(show_id, list(reversed(SEATS)), None)
    assert await status_map(ctx, show_id) == "00000000h0"


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_sale_and_a_cancellation_free_only_their_own_seats_within_their_span(ctx: Engine) -> None:
    # confirm_finish gives back the seats of its hold that the sale did not take, and
    # cancel_booking a booking's seats, each in one span write (lua/includes/holds.lua,
    # free_held_seats; lua/cancel_booking-1.lua), other states inside the span untouched.
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, [("A5", "bk_five")]))
    await ctx.gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A2", "A9", "A7", "A3"])
    await ctx.gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A6"])
    assert await status_map(ctx, show_id) == "0hh0bhh0h0"
    # The sale takes A9 and A3 only: A2 and A7 go back, A6 (another hold's) and A5 stay.
    assert await ctx.gateway.confirm_finish(show_id, "HA", "bk_sale", ["A9", "A3"]) == 2
    assert await status_map(ctx, show_id) == "00b0bh00b0"
    assert int(await ctx.redis.hget(ctx.keys.show_keys(show_id)[4], "ana@example.org") or 0) == 0
    # The cancellation names a seat twice and one that is not its own: each freed once.
    assert await ctx.gateway.cancel_booking(show_id, "bk_sale", ["A9", "A3", "A9", "A5"]) == 2
    assert await status_map(ctx, show_id) == "0000bh0000"
    assert await ctx.gateway.cancel_booking(show_id, "bk_sale", ["A9", "A3"]) == 0  # sent again
    raw = await seat_counts(ctx.redis, ctx.keys, show_id)
    assert (raw["free"], raw["held"], raw["booked"]) == (8, 1, 1)
