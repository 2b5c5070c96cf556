"""Holds, confirm and bookings: parse, call the engine, answer."""

from __future__ import annotations

from starlette.requests import Request

from boxoffice.api.context import engine_context
from boxoffice.api.limiter import request_limits
from boxoffice.api.queue import queue_pass
from boxoffice.api.record_routes import reading, removing
from boxoffice.api.responses import JSON, NO_STORE
from boxoffice.api.shapes import booking_json, hold_json
from boxoffice.api.validation import (
    cancel_request,
    confirm_request,
    hold_request,
    json_body,
    opaque_id,
    path_id,
)


async def create_hold(request: Request) -> JSON:
    ctx = engine_context(request)
    show_id = path_id(request, "show_id")
    wanted, customer, key = hold_request(await json_body(request, ctx.settings.max_body_bytes), request.headers)
    limits = request_limits(request)  # counted inside the hold's own script
    passed = queue_pass(request.headers)
    if isinstance(wanted, list):
        hold = await ctx.holds.hold(show_id, wanted, customer, idempotency_key=key, limits=limits,
                                    queue_pass=passed)
    else:
        hold = await ctx.holds.hold_best(show_id, wanted, customer, idempotency_key=key, limits=limits,
                                         queue_pass=passed)
    return JSON(hold_json(hold), status_code=201)


get_hold = reading("hold_id", lambda ctx: ctx.holds.hold_status, hold_json)
release_hold = removing("hold_id", lambda ctx: ctx.holds.release)


async def confirm_hold(request: Request) -> JSON:
    ctx = engine_context(request)
    hold_id = opaque_id(request, "hold_id")
    key, token = confirm_request(request, await json_body(request, ctx.settings.max_body_bytes))
    booking = await ctx.confirmations.confirm(hold_id, key, token)
    return JSON(booking_json(booking), status_code=201)


get_booking = reading("booking_id", lambda ctx: ctx.bookings.get, booking_json)


async def cancel_booking(request: Request) -> JSON:
    ctx = engine_context(request)
    booking_id = opaque_id(request, "booking_id")
    key = cancel_request(request)
    return JSON(booking_json(await ctx.cancellations.cancel(booking_id, key)), headers=NO_STORE)
