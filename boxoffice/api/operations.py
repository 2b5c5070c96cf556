"""Operations: health, metrics, the OpenAPI document, and the wrapper that measures
API operations (engine/metrics.py)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api.context import engine_context
from boxoffice.api.openapi import OPENAPI
from boxoffice.api.responses import JSON
from boxoffice.engine import metrics as engine_metrics
from boxoffice.engine.service import Context

CHECK_TIMEOUT_S = 2.0

Endpoint = Callable[[Request], Awaitable[Response]]


async def _redis_ok(ctx: Context) -> bool:
    if ctx.settings.redis_cluster:
        from redis.asyncio.cluster import RedisCluster

        # Every shard must answer: a show lives on exactly one of them.
        return bool(await ctx.redis.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(await ctx.redis.ping())


async def _database_ok(ctx: Context) -> bool:
    async with ctx.sql.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def _check(probe: Callable[[Context], Awaitable[bool]], ctx: Context) -> str:
    try:
        return "ok" if await asyncio.wait_for(probe(ctx), CHECK_TIMEOUT_S) else "down"
    except Exception:
        return "down"


async def healthz(request: Request) -> JSON:
    ctx = engine_context(request)
    redis_state, database_state = await asyncio.gather(_check(_redis_ok, ctx), _check(_database_ok, ctx))
    checks = {"redis": redis_state, "database": database_state}
    down = [name for name, state in checks.items() if state != "ok"]
    headers = {"Cache-Control": "no-store"}
    if not down:
        return JSON({"status": "ok", "checks": checks}, headers=headers)
    body = {"status": "unavailable", "checks": checks, "down": down, "error": "unavailable",
            "message": f"not answering: {', '.join(down)}"}
    return JSON(body, status_code=503, headers={**headers, "Retry-After": "2"})


async def metrics(request: Request) -> Response:
    body = engine_metrics.render(engine_context(request))
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


async def openapi(request: Request) -> JSON:
    return JSON(OPENAPI)


def tracked(operation: str, endpoint: Endpoint) -> Endpoint:
    """The endpoint, counted and timed as `operation` in /metrics."""

    # engine_metrics.track() without its generator: this runs on every hot request.
    record, outcome_of, clock = engine_metrics.record_operation, engine_metrics.outcome_of, time.perf_counter

    @functools.wraps(endpoint)
    async def measured(request: Request) -> Response:
        began = clock()
        try:
            response = await endpoint(request)
        except BaseException as exc:
            record(operation, outcome_of(exc), clock() - began)
            raise
        record(operation, "ok", clock() - began)
        return response

    return measured

