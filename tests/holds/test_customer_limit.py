"""The customer limit is checked last, once a hold's seats are known to be free: one HINCRBY
counts the seats (lua/includes/waitlist.lua, customer_takes), and a hold over the limit
counts them back, so a refusal leaves the customer's count as it was."""

from __future__ import annotations

import pytest

from boxoffice.engine.errors import LimitExceeded, SeatsUnavailable
from boxoffice.engine.redis.gateway import BestRequest
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH
from tests.support.shows import ShowRef

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)


async def counts(ctx: Engine, show_id: int) -> dict[str, str]:
    return await ctx.redis.hgetall(ctx.keys.show_keys(show_id)[4])  # the customers hash


async def test_a_hold_over_the_limit_leaves_the_count_as_it_was(ctx: Engine, show: ShowRef) -> None:
    seats = show.seat_ids
    await ctx.holds.hold(show.show_id, seats[:6], "ana@example.org")
    for refused_hold in (ctx.holds.hold(show.show_id, seats[6:11], "ana@example.org"),
                         ctx.holds.hold(show.show_id, seats[20:31], "ana@example.org"),
                         ctx.holds.hold_best(show.show_id, BestRequest(5), "ana@example.org")):
        with pytest.raises(LimitExceeded, match=r"already holding or waiting for 6\)"):
            await refused_hold
        assert await counts(ctx, show.show_id) == {"ana@example.org": "6"}
    # A customer with no seat yet leaves no count behind.
    with pytest.raises(LimitExceeded, match=r"already holding or waiting for 0\)"):
        await ctx.holds.hold(show.show_id, seats[40:51], "bea@example.org")
    assert await counts(ctx, show.show_id) == {"ana@example.org": "6"}
    # Within the limit: counted once.
    await ctx.holds.hold_best(show.show_id, BestRequest(4), "ana@example.org")
    assert await counts(ctx, show.show_id) == {"ana@example.org": "10"}


async def test_taken_seats_are_named_before_the_limit(ctx: Engine, show: ShowRef) -> None:
    seats = show.seat_ids
    await ctx.holds.hold(show.show_id, seats[:10], "ana@example.org")
    await ctx.holds.hold(show.show_id, seats[10:12], "bea@example.org")
    with pytest.raises(SeatsUnavailable) as refused:
        await ctx.holds.hold(show.show_id, [seats[12], seats[11]], "ana@example.org")
    assert refused.value.extra["unavailable"] == [seats[11]]
    assert await counts(ctx, show.show_id) == {"ana@example.org": "10", "bea@example.org": "2"}
