""""Nothing is lost": a snapshot of everything a request could change (every Redis key
of the test's prefix, the sales tables, the shows' status and the seat maps of the shows
under attack), and `nothing_changes`, which proves a block of hostile requests left all
of it exactly as it was.

Abuse-limit counters are left out on purpose: counting a refused request is their job."""

from __future__ import annotations

import contextlib
import difflib
import pprint
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from boxoffice.engine.wiring import Engine

# Every table a request can write, with an order that makes the rows comparable.
TABLES = {
    "bookings": "SELECT * FROM bookings ORDER BY id",
    "booked_seats": "SELECT * FROM booked_seats ORDER BY show_id, seat_id",
    "payments": "SELECT * FROM payments ORDER BY id",
    "idempotency_keys": "SELECT * FROM idempotency_keys ORDER BY hold_id, key",
    "simulated_payments": "SELECT * FROM simulated_payments ORDER BY 1",
    "shows": "SELECT id, status, starts_at FROM shows ORDER BY id",
}


@dataclass(frozen=True)
class State:
    redis: dict[str, Any]
    tables: dict[str, list[tuple[Any, ...]]]
    seat_maps: dict[int, dict[str, str]]


async def redis_value(redis: Any, key: str) -> Any:
    """A key's whole value, comparable (a set sorted), whatever its type."""
    kind = await redis.type(key)
    if kind == "hash":
        return await redis.hgetall(key)
    if kind == "zset":
        return await redis.zrange(key, 0, -1, withscores=True)
    if kind == "set":
        return sorted(await redis.smembers(key))
    if kind == "list":
        return await redis.lrange(key, 0, -1)
    if kind == "string":
        return await redis.get(key)
    return kind  # "none": gone between SCAN and TYPE


async def snapshot(ctx: Engine, shows: Iterable[int] = ()) -> State:
    prefix = ctx.keys.prefix
    # The abuse limits' counters (<show base>rate:...) count refused requests too: not state.
    keys = sorted([k async for k in ctx.redis.scan_iter(match=f"{prefix}:*", count=1000)
                   if not ctx.keys.is_rate_counter(k)])
    redis = {key: await redis_value(ctx.redis, key) for key in keys}
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with ctx.sql.connect() as conn:
        for name, query in TABLES.items():
            tables[name] = [tuple(row) for row in await conn.execute(text(query))]
    seat_maps = {}
    for show_id in shows:
        statuses = await ctx.holds.seat_statuses(show_id)
        seat_maps[show_id] = {seat: str(getattr(status, "value", status)) for seat, status in statuses.items()}
    return State(redis, tables, seat_maps)


async def show_state(ctx: Engine, show_id: int) -> dict[str, Any]:
    """Every Redis key of the show with its whole value: what "the show did not change" compares."""
    return {key: await redis_value(ctx.redis, key)
            async for key in ctx.redis.scan_iter(match=ctx.keys.show_base(show_id) + "*", count=1000)}


def difference(before: State, after: State) -> str:
    """A readable diff of two snapshots, empty when they are equal."""
    if before == after:
        return ""
    lines: list[str] = []
    for part in ("redis", "tables", "seat_maps"):
        old, new = getattr(before, part), getattr(after, part)
        if old != new:
            lines += difflib.unified_diff(pprint.pformat(old, width=120).splitlines(),
                                          pprint.pformat(new, width=120).splitlines(),
                                          f"{part} before", f"{part} after", lineterm="", n=1)
    return "\n".join(lines[:200])


@contextlib.asynccontextmanager
async def nothing_changes(ctx: Engine, shows: Iterable[int] = ()) -> AsyncIterator[State]:
    """Snapshot, run the block, snapshot again: any difference fails the test."""
    shows = list(shows)
    for show_id in shows:
        await ctx.holds.seat_statuses(show_id)  # loads the show: loading is not a change
    before = await snapshot(ctx, shows)
    yield before
    after = await snapshot(ctx, shows)
    diff = difference(before, after)
    assert not diff, f"the hostile requests changed state:\n{diff}"
