"""Operations: health, metrics, the OpenAPI document, and the wrapper that measures
API operations (engine/metrics.py)."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api.context import engine_context
from boxoffice.api.errors import outcome_of
from boxoffice.api.openapi import OPENAPI
from boxoffice.api.responses import JSON
from boxoffice.engine import health
from boxoffice.engine import metrics as engine_metrics

Endpoint = Callable[[Request], Awaitable[Response]]


async def healthz(request: Request) -> JSON:
    ctx = engine_context(request)
    states = await ctx.health()
    engine_metrics.record_dependencies(states)
    checks = {health.PROBES[dependency]: state for dependency, state in states.items()}
    down = [name for name, state in checks.items() if state != "ok"]
    headers = {"Cache-Control": "no-store"}
    if not down:
        return JSON({"status": "ok", "checks": checks}, headers=headers)
    body = {"status": "unavailable", "checks": checks, "down": down, "error": "unavailable",
            "message": f"not answering: {', '.join(down)}"}
    return JSON(body, status_code=503, headers={**headers, "Retry-After": "2"})


async def metrics(request: Request) -> Response:
    ctx = engine_context(request)
    # Read from Redis by whichever process answers the scrape: not summed over workers.
    shows = await engine_metrics.render_show_seats(ctx.redis, ctx.keys, ctx.settings.redis_cluster)
    engine_metrics.sample_pools(ctx.redis, ctx.sql)
    body = engine_metrics.render() + shows
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


async def openapi(request: Request) -> JSON:
    return JSON(OPENAPI)


def tracked(operation: str, endpoint: Endpoint) -> Endpoint:
    """The endpoint, counted and timed as `operation` in /metrics."""

    # No context manager: this runs on every hot request.
    record, clock = engine_metrics.record_operation, time.perf_counter
    record_ok = engine_metrics.ok_recorder(operation)

    @functools.wraps(endpoint)
    async def measured(request: Request) -> Response:
        began = clock()
        try:
            response = await endpoint(request)
        except BaseException as exc:
            record(operation, outcome_of(exc), clock() - began)
            raise
        record_ok(clock() - began)
        return response

    return measured

