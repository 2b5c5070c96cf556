"""Server-Sent Events: live seat maps and waitlist entries. Each stream sends the whole
current state first (so a reconnecting client resyncs), then every change; a comment
line every 15 s keeps proxies from closing idle streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from api.browse import seat_map_body
from api.validation import opaque_id, path_id
from engine.errors import BoxOfficeError
from engine.service import Context

KEEPALIVE_S = 15.0
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
FINAL_ENTRY_STATES = {"granted", "impossible", "cancelled", "expired"}


def _event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def seat_events(request: Request) -> StreamingResponse:
    ctx: Context = request.app.state.ctx
    show_id = path_id(request, "show_id")
    await ctx.catalog.show(show_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        async with ctx.events.listen(show_id) as queue:
            full = await seat_map_body(ctx, show_id)
            statuses = {s["id"]: s["status"] for s in full["seats"]}  # type: ignore[index, union-attr]
            yield _event(full)
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if change is None:  # missed messages: resync
                    full = await seat_map_body(ctx, show_id)
                    statuses = {s["id"]: s["status"] for s in full["seats"]}  # type: ignore[index, union-attr]
                    yield _event(full)
                    continue
                changed = [{"id": seat, "status": status} for seat, status in change.seats.items()
                           if seat in statuses and statuses[seat] != status]
                if not changed:
                    continue
                for item in changed:
                    statuses[item["id"]] = item["status"]
                counts = {"available": 0, "held": 0, "booked": 0}
                for status in statuses.values():
                    counts[status] += 1
                yield _event({"seats": changed, "counts": counts})

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def entry_events(request: Request) -> StreamingResponse:
    ctx: Context = request.app.state.ctx
    entry_id = opaque_id(request, "entry_id")
    show_id = ctx.waitlist.parse_entry_id(entry_id)
    first = await ctx.waitlist.status(entry_id)

    async def stream() -> AsyncIterator[bytes]:
        async with ctx.events.listen(show_id) as queue:
            last = await ctx.waitlist.status(entry_id)
            yield _event(last)
            while last["status"] not in FINAL_ENTRY_STATES:
                try:
                    await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                try:
                    current = await ctx.waitlist.status(entry_id)
                except BoxOfficeError:
                    continue
                if current != last:
                    last = current
                    yield _event(current)

    del first
    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
