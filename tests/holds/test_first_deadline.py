"""The earliest hold deadline of a show is read with its meta hash (its first_deadline
field, lua/includes/context.lua) instead of from the deadlines zset, whose score Redis
formats with "%.17g" for every read: every call that changes the earliest deadline
writes the field (finish), whether it adds a hold, pins one for a payment (a later
deadline), restores it (an earlier one again), or ends it. The sweep reads the zset
itself, so a field gone wrong heals at the show's next sweep. (The property test of holds,
tests/holds/test_hold_model.py, checks the field after every step of its random runs.)"""

from __future__ import annotations

import itertools

import pytest

from boxoffice.engine.errors import SeatsUnavailable
from boxoffice.engine.redis.gateway import ShowLoad
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH

FAR_FUTURE_MS = 4_102_444_800_000  # 2100
_shows = itertools.count(916_000_001)
LAYOUT = [(f"A{n}", f"standard|A|{n}|{n - 1}|standard") for n in range(1, 7)]


async def show_with_one_hold(ctx: Engine) -> tuple[int, int]:
    """A new show whose seat A1 is held by HA from Redis's now: (show id, now ms)."""
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    now = int((await ctx.redis.time())[0]) * 1000
    await ctx.gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A1"], now_ms=now)
    return show_id, now


async def stored_and_true(ctx: Engine, show_id: int) -> tuple[int, int]:
    """(the meta hash's first_deadline, the deadlines zset's earliest score; 0: none)."""
    meta, deadlines = ctx.keys.show_keys(show_id)[0], ctx.keys.show_keys(show_id)[3]
    stored = int(await ctx.redis.hget(meta, "first_deadline"))
    first = await ctx.redis.zrange(deadlines, 0, 0, withscores=True)
    return stored, int(first[0][1]) if first else 0


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_every_change_of_the_earliest_deadline_is_written(ctx: Engine) -> None:
    show_id = next(_shows)
    gateway, ttl = ctx.gateway, ctx.gateway.hold_ttl_ms
    await gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    assert await stored_and_true(ctx, show_id) == (0, 0)
    now = int((await ctx.redis.time())[0]) * 1000

    await gateway.hold_seats(show_id, "HA", "ana@example.org", 10, ["A1"], now_ms=now)
    assert await stored_and_true(ctx, show_id) == (now + ttl, now + ttl)
    await gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A2"], now_ms=now + 10)
    assert await stored_and_true(ctx, show_id) == (now + ttl, now + ttl)  # a later one: unchanged
    # A payment pins HA past its deadline: HB's is the earliest now.
    pin = await gateway.confirm_begin(show_id, "HA", 2 * ttl, "attempt-1", now_ms=now + 20)
    assert await stored_and_true(ctx, show_id) == (now + 10 + ttl, now + 10 + ttl)
    # The payment fails: HA has its own deadline again, the earliest.
    assert await gateway.confirm_abort(show_id, "HA", pin.fence, now_ms=now + 30) == 1
    assert await stored_and_true(ctx, show_id) == (now + ttl, now + ttl)
    await gateway.release_hold(show_id, "HA", now_ms=now + 40)
    assert await stored_and_true(ctx, show_id) == (now + 10 + ttl, now + 10 + ttl)
    assert await gateway.confirm_finish(show_id, "HB", "bk_b", ["A2"], now_ms=now + 50) == 1
    assert await stored_and_true(ctx, show_id) == (0, 0)
    # Expiry: a call after a deadline ends the hold and writes that none is left.
    await gateway.hold_seats(show_id, "HC", "cy@example.org", 10, ["A3"], now_ms=now + 60)
    await gateway.seat_status(show_id, now + 60 + ttl)
    assert await stored_and_true(ctx, show_id) == (0, 0)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_wrong_field_heals_at_the_next_sweep(ctx: Engine) -> None:
    gateway, ttl = ctx.gateway, ctx.gateway.hold_ttl_ms
    show_id, now = await show_with_one_hold(ctx)
    # Say the field went wrong (a release from before it, a hand edit): none pending.
    await ctx.redis.hset(ctx.keys.show_keys(show_id)[0], "first_deadline", "0")
    assert int(await gateway.call("sweep", show_id, now_ms=now + ttl)) == 1  # HA ended
    assert await stored_and_true(ctx, show_id) == (0, 0)
    await gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A1"], now_ms=now + ttl)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_show_without_the_field_reads_the_zset(ctx: Engine) -> None:
    # As an older library left a show: no first_deadline in its meta hash.
    gateway, ttl = ctx.gateway, ctx.gateway.hold_ttl_ms
    show_id, now = await show_with_one_hold(ctx)
    await ctx.redis.hdel(ctx.keys.show_keys(show_id)[0], "first_deadline")
    with pytest.raises(SeatsUnavailable):
        await gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A1"], now_ms=now + ttl - 1)
    assert await stored_and_true(ctx, show_id) == (now + ttl, now + ttl)
    await gateway.hold_seats(show_id, "HB", "bob@example.org", 10, ["A1"], now_ms=now + ttl)  # HA expired first
    assert await stored_and_true(ctx, show_id) == (now + 2 * ttl, now + 2 * ttl)
