"""The change message a show script publishes (lua/includes/settle.lua, publish_changes):
"<queue changed>;<seat>=<status>,...;<waited categories>;<ended entries>", each changed
seat once, in the order it first changed, with its own new status: the same text whether
the call changed its seats to one status (one table.concat) or to several."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from boxoffice.engine.redis.gateway import NO_LIMITS, ShowLoad
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH

FAR_FUTURE_MS = 4_102_444_800_000  # 2100
_shows = itertools.count(914_000_001)
LAYOUT = [(f"A{n}", f"standard|A|{n}|{n - 1}|standard") for n in range(1, 6)]


async def next_message(pubsub: Any, timeout_s: float = 5.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            data = message["data"]
            return data.decode() if isinstance(data, bytes) else str(data)
        await asyncio.sleep(0.01)
    raise AssertionError("no change was published")


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_each_changed_seat_is_named_once_with_its_own_status(ctx: Engine) -> None:
    show_id = next(_shows)
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", LAYOUT, [("A5", "b_sold")]))
    keys, base = ctx.keys.script_keys(show_id), ctx.keys.show_base(show_id)
    now = int((await ctx.redis.time())[0]) * 1000
    ttl = ctx.gateway.hold_ttl_ms

    async def hold(hold_id: str, seats: list[str], at: int) -> None:
        answer = await ctx.gateway.runner.run("hold_seats", keys, [base, at, ttl, hold_id, f"{hold_id}@example.org",
                                                                   10, NO_LIMITS.arg(), "", *seats])
        assert int(answer[0][0]) == 1

    pubsub = ctx.redis.pubsub()
    await pubsub.subscribe(ctx.keys.changes_channel(show_id))
    # Published while a lease runs (lua/listen-1.lua): one past the last time below.
    await ctx.gateway.listen(show_id, 3 * ttl, now_ms=now)
    try:
        await hold("HA", ["A2", "A1"], now)
        assert await next_message(pubsub) == "0;A2=held,A1=held;;"
        # Past HA's deadline: the call frees HA's seats first, then holds its own.
        await hold("HB", ["A3"], now + ttl + 1)
        assert await next_message(pubsub) == "0;A2=available,A1=available,A3=held;;"
        # A seat freed and taken again in one call is named once, with where it ended.
        await hold("HC", ["A1", "A4"], now + 2 * ttl + 2)
        assert await next_message(pubsub) == "0;A3=available,A1=held,A4=held;;"
        await ctx.gateway.confirm_finish(show_id, "HC", "bk_one", ["A4"])
        assert await next_message(pubsub) == "0;A4=booked,A1=available;;"
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()
