"""Waitlist endpoints."""

from __future__ import annotations

from starlette.requests import Request

from boxoffice.api.context import engine_context
from boxoffice.api.limiter import request_limits
from boxoffice.api.queue import queue_pass
from boxoffice.api.record_routes import reading, removing
from boxoffice.api.responses import JSON
from boxoffice.api.shapes import entry_json, joined_entry_json
from boxoffice.api.validation import json_body, path_id, waitlist_request


async def join(request: Request) -> JSON:
    ctx = engine_context(request)
    show_id = path_id(request, "show_id")
    customer, count, category, key = waitlist_request(await json_body(request, ctx.settings.max_body_bytes),
                                                      request.headers)
    entry = await ctx.waitlist.join(show_id, customer, count, category, idempotency_key=key,
                                    limits=request_limits(request),  # counted inside the join's script
                                    queue_pass=queue_pass(request.headers))
    return JSON(joined_entry_json(entry), status_code=201)


status = reading("entry_id", lambda ctx: ctx.waitlist.status, entry_json)
leave = removing("entry_id", lambda ctx: ctx.waitlist.leave)
