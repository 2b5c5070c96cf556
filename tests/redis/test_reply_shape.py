"""What every show script answers beside its result (lua/includes/settle.lua, finish):
{result, next_wake, reindex} when the call expired no hold and granted no waiter, and
{result, next_wake, reindex, expired_late_ms, grant_waits_ms} when it did: Redis turning
two empty lists into the reply was a few percent of a hold, and the metrics read the
lists only when they are there (engine/metrics.py, observe_script)."""

from __future__ import annotations

import itertools

import pytest

from boxoffice.engine.redis.gateway import NO_LIMITS, ShowLoad
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH

FAR_FUTURE_MS = 4_102_444_800_000  # 2100
_shows = itertools.count(913_000_001)
LAYOUT = [(f"A{n}", f"standard|A|{n}|{n - 1}|standard") for n in range(1, 5)]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_the_lists_come_only_with_entries(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, []))
    keys, base = ctx.keys.script_keys(show_id), ctx.keys.show_base(show_id)
    now = int((await ctx.redis.time())[0]) * 1000
    ttl = ctx.gateway.hold_ttl_ms

    async def hold(hold_id: str, seat: str, at: int) -> list:
        return await ctx.gateway.runner.run("hold_seats", keys, [base, at, ttl, hold_id, f"{hold_id}@example.org",
                                                                 10, NO_LIMITS.arg(), "", seat])

    first = await hold("HA", "A1", now)
    assert len(first) == 3 and int(first[0][0]) == 1 and int(first[1]) == now + ttl
    # After HA's deadline the next call expires it first: the list of how late says so.
    later = now + ttl + 250
    second = await hold("HB", "A2", later)
    assert len(second) == 5 and int(second[0][0]) == 1
    assert [int(ms) for ms in second[3]] == [250] and second[4] == []
