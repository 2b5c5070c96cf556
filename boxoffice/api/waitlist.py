"""Waitlist endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api.context import engine_context
from boxoffice.api.limiter import request_limits
from boxoffice.api.queue import queue_pass
from boxoffice.api.responses import JSON
from boxoffice.api.shapes import entry_json
from boxoffice.api.validation import json_body, opaque_id, path_id, waitlist_request


async def join(request: Request) -> JSON:
    ctx = engine_context(request)
    show_id = path_id(request, "show_id")
    customer, count, category, key = waitlist_request(await json_body(request, ctx.settings.max_body_bytes),
                                                      request.headers)
    entry = await ctx.waitlist.join(show_id, customer, count, category, idempotency_key=key,
                                    limits=request_limits(request),  # counted inside the join's script
                                    queue_pass=queue_pass(request.headers))
    return JSON(entry_json(entry), status_code=201)


async def status(request: Request) -> JSON:
    entry = await engine_context(request).waitlist.status(opaque_id(request, "entry_id"))
    return JSON(entry_json(entry), headers={"Cache-Control": "no-store"})


async def leave(request: Request) -> Response:
    await engine_context(request).waitlist.leave(opaque_id(request, "entry_id"))
    return Response(status_code=204)
