"""Release queue endpoints (docs/API.md, "Release queue"): join, read, leave, and the
ticket's Server-Sent Events stream, which works as a waitlist entry's does (api/streams.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from boxoffice.api.context import engine_context
from boxoffice.api.limiter import request_limits
from boxoffice.api.record_routes import removing
from boxoffice.api.responses import JSON, NO_STORE
from boxoffice.api.shapes import ticket_json
from boxoffice.api.streams import ENTRY_READ_INTERVAL_S, SSE_HEADERS, follow
from boxoffice.api.validation import (
    creation_key,
    customer_field,
    json_body,
    opaque_id,
    path_id,
    reject_unknown,
)
from boxoffice.engine.errors import InvalidRequest
from boxoffice.engine.ids import is_pass_token
from boxoffice.engine.release_queue import QueueTicket

PASS_HEADER = "x-queue-pass"


def queue_pass(headers: Mapping[str, str]) -> str:
    """The X-Queue-Pass of a hold or waitlist join; "" when absent or not shaped like a
    pass (the script then refuses it as it refuses any unknown pass, when a queue runs)."""
    value = headers.get(PASS_HEADER, "")
    return value if is_pass_token(value) else ""


def join_request(body: dict[str, Any], headers: Mapping[str, str]) -> tuple[str, str | None]:
    """(customer, Idempotency-Key or None); one 422 names every fault."""
    problems: list[dict[str, str]] = []
    key = creation_key(headers, problems)
    reject_unknown(body, {"customer"}, problems)
    customer = customer_field(body, problems)
    if problems:
        raise InvalidRequest("the queue request is not valid", details=problems)
    return customer, key


async def join(request: Request) -> JSON:
    ctx = engine_context(request)
    show_id = path_id(request, "show_id")
    customer, key = join_request(await json_body(request, ctx.settings.max_body_bytes), request.headers)
    ticket = await ctx.release_queue.join(show_id, customer, idempotency_key=key,
                                          limits=request_limits(request))  # counted inside the join's script
    return ticket_answer(ticket, status_code=201)


REFRESH_HEADER = "x-queue-refresh-after"


def ticket_answer(ticket: QueueTicket, status_code: int = 200) -> JSON:
    """A ticket's JSON; while it waits, when to read it again (release_queue.REFRESH_*)."""
    refresh = ticket.refresh_after_s
    headers = {**NO_STORE, REFRESH_HEADER: f"{refresh:g}"} if refresh is not None else NO_STORE
    return JSON(ticket_json(ticket), status_code=status_code, headers=headers)


async def status(request: Request) -> JSON:
    ctx = engine_context(request)
    return ticket_answer(await ctx.release_queue.status(opaque_id(request, "ticket_id")))
leave = removing("ticket_id", lambda ctx: ctx.release_queue.leave)


async def events(request: Request) -> StreamingResponse:
    """The ticket's current state first, then every change (position, eta, admission, its
    end), until it ends; admitted tickets stay open until the pass is used or lapses."""
    ctx = engine_context(request)
    ticket_id = opaque_id(request, "ticket_id")
    show_id = ctx.release_queue.parse_ticket_id(ticket_id)  # 404 before the stream starts

    def pass_lapses_in(ticket: QueueTicket) -> float | None:
        return None if ticket.queue_pass is None else ticket.queue_pass.ttl_s + 1.0

    async def read() -> QueueTicket:
        return await ctx.release_queue.status(ticket_id)

    def read_every(ticket: QueueTicket) -> float:
        return ticket.refresh_after_s or ENTRY_READ_INTERVAL_S

    return StreamingResponse(follow(ctx, show_id, ticket_id, read, ticket_json, lambda ticket: ticket.ended,
                                    pass_lapses_in, read_every),
                             media_type="text/event-stream", headers=SSE_HEADERS)
