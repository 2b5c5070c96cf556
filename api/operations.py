"""Operations: health, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response

from api.openapi import OPENAPI
from api.responses import JSON
from engine.service import Context

CHECK_TIMEOUT_S = 2.0


async def healthz(request: Request) -> JSON:
    ctx: Context = request.app.state.ctx

    async def redis_ok() -> bool:
        return bool(await ctx.redis.ping())

    async def sql_ok() -> bool:
        async with ctx.sql.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    checks = {}
    for name, check in (("redis", redis_ok), ("database", sql_ok)):
        try:
            checks[name] = "ok" if await asyncio.wait_for(check(), CHECK_TIMEOUT_S) else "down"
        except Exception:
            checks[name] = "down"
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    if not healthy:
        down = ", ".join(k for k, v in checks.items() if v != "ok")
        body.update(error="unavailable", message=f"not answering: {down}")
        return JSON(body, status_code=503, headers={"Retry-After": "2"})
    return JSON(body)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> JSON:
    return JSON(OPENAPI)
