"""Whether Redis and PostgreSQL answer: asked by /healthz, and every few seconds by each
process for the boxoffice_dependency_up gauges (engine/metrics.py), so an alert sees a
dependency down even when nothing polls /healthz."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from boxoffice.engine.wiring import Context

CHECK_TIMEOUT_S = 2.0

Probe = Callable[["Context"], Awaitable[bool]]


async def redis_ok(ctx: Context) -> bool:
    if ctx.settings.redis_cluster:
        from redis.asyncio.cluster import RedisCluster

        # Every shard must answer: a show lives on exactly one of them.
        return bool(await ctx.redis.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await ctx.redis.ping())


async def database_ok(ctx: Context) -> bool:
    async with ctx.sql.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


# The dependency label of the gauge -> (the name /healthz uses, the probe).
PROBES: dict[str, tuple[str, Probe]] = {"redis": ("redis", redis_ok), "postgresql": ("database", database_ok)}


async def check(probe: Probe, ctx: Context) -> str:
    """"ok" or "down": a probe that fails or takes longer than CHECK_TIMEOUT_S is down."""
    try:
        return "ok" if await asyncio.wait_for(probe(ctx), CHECK_TIMEOUT_S) else "down"
    except Exception:
        return "down"


async def check_all(ctx: Context) -> dict[str, str]:
    """{dependency label: "ok" | "down"}, the probes run together."""
    states = await asyncio.gather(*(check(probe, ctx) for _name, probe in PROBES.values()))
    return dict(zip(PROBES, states, strict=True))
