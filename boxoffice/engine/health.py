"""Whether Redis and PostgreSQL answer: asked by /healthz, and every few seconds by each
process for the boxoffice_dependency_up gauges (engine/metrics.py), so an alert sees a
dependency down even when nothing polls /healthz."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

CHECK_TIMEOUT_S = 2.0


async def redis_ok(redis: Any, cluster: bool) -> bool:
    if cluster:
        from redis.asyncio.cluster import RedisCluster

        # Every shard must answer: a show lives on exactly one of them.
        return bool(await redis.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await redis.ping())


async def database_ok(sql: AsyncEngine) -> bool:
    async with sql.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


# The dependency label of the gauge -> the name /healthz uses.
PROBES: dict[str, str] = {"redis": "redis", "postgresql": "database"}


async def check(probe: Awaitable[bool]) -> str:
    """"ok" or "down": a probe that fails or takes longer than CHECK_TIMEOUT_S is down."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return "ok" if await probe else "down"
    except Exception:
        return "down"


async def check_all(redis: Any, sql: AsyncEngine, cluster: bool = False) -> dict[str, str]:
    """{dependency label: "ok" | "down"}, the probes run together."""
    states = await asyncio.gather(check(redis_ok(redis, cluster)), check(database_ok(sql)))
    return dict(zip(PROBES, states, strict=True))
