"""Server-Sent Events: live seat maps and waitlist entries. Each stream sends the whole
current state first (so a reconnecting client resyncs), then every change; a comment
line every 15 s keeps proxies from closing idle streams. Changes come from the show's
pub/sub channel (engine/redis/pubsub.py), so a change made by any service process reaches
every stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from boxoffice.api.context import engine_context
from boxoffice.api.validation import opaque_id, path_id
from boxoffice.engine.catalog import HallPlan
from boxoffice.engine.errors import BoxOfficeError
from boxoffice.engine.redis.pubsub import ShowChange
from boxoffice.engine.statuses import EntryStatus, SeatStatus
from boxoffice.engine.wiring import Engine

KEEPALIVE_S = 15.0
# A waiter's stream reads its entry at most this often for changes of others (position, eta).
ENTRY_READ_INTERVAL_S = 0.5
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
FINAL_ENTRY_STATES = {EntryStatus.GRANTED, EntryStatus.IMPOSSIBLE, EntryStatus.CANCELLED, EntryStatus.EXPIRED}


def _event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"

class SeatView:
    """One stream's picture of a show: each seat's own status and the categories the
    queue waits for. A free seat of a waited category is shown held: it is the queue's."""

    def __init__(self, plan: HallPlan) -> None:
        self.plan = plan
        self.own: dict[str, str] = {}
        self.waited: frozenset[str] = frozenset()
        self.shown: dict[str, str] = {}

    def _show(self, seat_id: str) -> str:
        own = self.own.get(seat_id, SeatStatus.AVAILABLE.value)
        if own == SeatStatus.AVAILABLE and ("*" in self.waited or self.plan.by_id[seat_id].category in self.waited):
            return SeatStatus.HELD.value
        return own

    async def load(self, ctx: Engine, show_id: int) -> dict[str, Any]:
        """Reads the whole map (one script call) and answers it as GET /seats does."""
        taken, waited = await ctx.gateway.seat_map(show_id)
        self.own = {seat: SeatStatus.BOOKED.value if mark == "b" else SeatStatus.HELD.value
                    for seat, mark in taken.items()}
        self.waited = frozenset(waited)
        self.shown = {seat.id: self._show(seat.id) for seat in self.plan.seats}
        seats = [{"id": s.id, "row": s.row, "number": s.number, "category": s.category, "kind": s.kind,
                  "x": s.x, "y": s.y, "status": self.shown[s.id]} for s in self.plan.seats]
        return {"show_id": str(show_id), "seats": seats, "counts": self.counts()}

    def apply(self, change: ShowChange) -> list[dict[str, str]]:
        """The seats whose shown status this change moved."""
        for seat_id, status in change.seats.items():
            if seat_id in self.plan.by_id:
                self.own[seat_id] = status
        affected: list[str] = list(change.seats)
        if change.waited != self.waited:
            self.waited = change.waited
            affected = [s.id for s in self.plan.seats]
        moved = []
        for seat_id in affected:
            if seat_id in self.shown:
                shown = self._show(seat_id)
                if shown != self.shown[seat_id]:
                    self.shown[seat_id] = shown
                    moved.append({"id": seat_id, "status": shown})
        return moved

    def counts(self) -> dict[str, int]:
        counts = {"available": 0, "held": 0, "booked": 0}
        for status in self.shown.values():
            counts[status] += 1
        return counts


async def _next_change(queue: asyncio.Queue[ShowChange | None]) -> ShowChange | bool | None:
    """The next change; False after KEEPALIVE_S of silence."""
    try:
        return await asyncio.wait_for(queue.get(), KEEPALIVE_S)
    except TimeoutError:
        return False


async def seat_events(request: Request) -> StreamingResponse:
    ctx = engine_context(request)
    show_id = path_id(request, "show_id")
    show = await ctx.catalog.show(show_id)  # 404 before the stream starts
    plan = await ctx.catalog.hall_plan(show.hall_id)

    async def stream() -> AsyncIterator[bytes]:
        async with ctx.events.listen(show_id) as queue:
            view = SeatView(plan)
            yield _event(await view.load(ctx, show_id))
            while True:
                change = await _next_change(queue)
                if change is False:
                    yield b": keepalive\n\n"
                elif change is None:  # messages may have been missed: resync
                    yield _event(await view.load(ctx, show_id))
                else:
                    assert isinstance(change, ShowChange)
                    moved = view.apply(change)
                    if moved:
                        yield _event({"seats": moved, "counts": view.counts()})

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def entry_events(request: Request) -> StreamingResponse:
    ctx = engine_context(request)
    entry_id = opaque_id(request, "entry_id")
    show_id = ctx.waitlist.parse_entry_id(entry_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        async with ctx.events.watch_entry(show_id, entry_id) as watch:
            last = await ctx.waitlist.status(entry_id)
            read_at = loop.time()
            yield _event(last)
            while last["status"] not in FINAL_ENTRY_STATES:
                try:
                    await asyncio.wait_for(watch.changed.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                # This entry's own ending is read at once; other changes of the show (the
                # position or eta may have moved) at most every ENTRY_READ_INTERVAL_S, so a
                # long queue does not read every entry on every change.
                pause = read_at + ENTRY_READ_INTERVAL_S - loop.time()
                if pause > 0 and not watch.ended.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(watch.ended.wait(), pause)
                watch.changed.clear()
                watch.ended.clear()
                try:
                    current = await ctx.waitlist.status(entry_id)
                except BoxOfficeError:
                    continue
                read_at = loop.time()
                if current != last:
                    last = current
                    yield _event(current)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)
