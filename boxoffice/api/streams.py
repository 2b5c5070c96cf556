"""Server-Sent Events: live seat maps and waitlist entries. Each stream sends the whole
current state first (so a reconnecting client resyncs), then every change; a comment
line every 15 s keeps proxies from closing idle streams. Changes come from the show's
pub/sub channel (engine/redis/pubsub.py), so a change made by any service process reaches
every stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import StreamingResponse

from boxoffice.api.context import engine_context
from boxoffice.api.seatmap import template_for
from boxoffice.api.shapes import entry_json
from boxoffice.api.validation import opaque_id, path_id
from boxoffice.engine.catalog import HallPlan
from boxoffice.engine.errors import BoxOfficeError
from boxoffice.engine.redis.pubsub import ShowChange
from boxoffice.engine.seat_view import BOOKED, CHAR_OF, HELD, STATUS_OF, shown, shown_map
from boxoffice.engine.waitlist import WaitlistEntry
from boxoffice.engine.wiring import Engine

T = TypeVar("T")

KEEPALIVE_S = 15.0
# A waiter's stream reads its entry at most this often for changes of others (position, eta).
ENTRY_READ_INTERVAL_S = 0.5
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _event(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


class SeatView:
    """One stream's picture of a show: each seat's own state and the categories the queue
    waits for; what each seat shows is engine/seat_view.py's rule, as on GET /seats."""

    def __init__(self, plan: HallPlan) -> None:
        self.plan = plan
        self.template = template_for(plan)
        self.own: list[str] = []
        self.waited: frozenset[str] = frozenset()
        self.shown: list[str] = []
        # How many seats show each status, kept as seats move: a change costs its seats,
        # not a count over the whole hall for every stream of the show.
        self.showing: dict[str, int] = {}

    async def load(self, ctx: Engine, show_id: int) -> bytes:
        """Reads the whole map (the seat map's own script call) and answers GET /seats's bytes."""
        status_map, waited = await ctx.holds.seat_state(show_id, plan=self.plan)
        self.own = list(status_map)
        self.waited = frozenset(waited)
        self.shown = list(shown_map(status_map, self.template.categories, self.waited))
        self.showing = {HELD: self.shown.count(HELD), BOOKED: self.shown.count(BOOKED)}
        return self.template.render(show_id, status_map, waited)

    def apply(self, change: ShowChange) -> list[dict[str, str]]:
        """The seats whose shown status this change moved."""
        index = self.template.index
        affected = [index[seat_id] for seat_id in change.seats if seat_id in index]
        for seat_id, status in change.seats.items():
            if seat_id in index:
                self.own[index[seat_id]] = CHAR_OF[status]
        if change.waited != self.waited:
            self.waited = change.waited
            affected = list(range(len(self.own)))
        moved = []
        for at in affected:
            now = shown(self.own[at], self.template.categories[at], self.waited)
            before = self.shown[at]
            if now != before:
                self.shown[at] = now
                self.showing[before] = self.showing.get(before, 0) - 1
                self.showing[now] = self.showing.get(now, 0) + 1
                moved.append({"id": self.plan.seats[at].id, "status": STATUS_OF[now].value})
        return moved

    def counts(self) -> dict[str, int]:
        held, booked = self.showing.get(HELD, 0), self.showing.get(BOOKED, 0)
        return {"available": len(self.shown) - held - booked, "held": held, "booked": booked}


# Waits below use asyncio.timeout, never asyncio.wait_for: on Python 3.11, wait_for returns
# the awaited result instead of raising when the stream is cancelled (its client gone) in
# the same loop iteration as that result comes, so a stream whose show keeps changing
# could outlive its client for as long as the changes kept coming.


async def _next_change(queue: asyncio.Queue[ShowChange | None]) -> ShowChange | bool | None:
    """The next change; False after KEEPALIVE_S of silence."""
    try:
        async with asyncio.timeout(KEEPALIVE_S):
            return await queue.get()
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
            yield b"data: " + await view.load(ctx, show_id) + b"\n\n"
            while True:
                change = await _next_change(queue)
                if change is False:
                    yield b": keepalive\n\n"
                elif change is None:  # messages may have been missed: resync
                    yield b"data: " + await view.load(ctx, show_id) + b"\n\n"
                else:
                    assert isinstance(change, ShowChange)
                    moved = view.apply(change)
                    if moved:
                        yield _event({"seats": moved, "counts": view.counts()})

    return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


async def follow(ctx: Engine, show_id: int, record_id: str, read: Callable[[], Awaitable[T]],
                 shape: Callable[[T], dict[str, Any]], final: Callable[[T], bool],
                 wake_in: Callable[[T], float | None] = lambda _: None,
                 read_every: Callable[[T], float] = lambda _: ENTRY_READ_INTERVAL_S) -> AsyncIterator[bytes]:
    """One waiter's record (a waitlist entry, a release queue ticket) as Server-Sent Events in
    its contract `shape`: its state first, then every change, until `final`. Its own message
    is read at once; the show's other changes (its position may have moved) at most every
    `read_every(last state)` seconds, so a long line does not read every record on every
    change. A read whose JSON is what was sent last sends nothing. `wake_in`: seconds after which the record
    changes with no message of its own (a pass lapsing): read then, no keepalive."""
    loop = asyncio.get_running_loop()
    async with ctx.events.watch_entry(show_id, record_id) as watch:
        last = await read()
        read_at = loop.time()
        sent = _event(shape(last))
        yield sent
        while not final(last):
            due = wake_in(last)
            try:
                async with asyncio.timeout(KEEPALIVE_S if due is None else min(KEEPALIVE_S, due)):
                    await watch.next_change()
            except TimeoutError:
                if due is None:
                    yield b": keepalive\n\n"
                    continue
            pause = read_at + read_every(last) - loop.time()
            if pause > 0 and not watch.ended.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await watch.ended.wait()
            watch.reading()
            try:
                current = await read()
            except BoxOfficeError:
                continue
            read_at = loop.time()
            event = _event(shape(current))
            if event != sent:
                last, sent = current, event
                yield event


async def entry_events(request: Request) -> StreamingResponse:
    ctx = engine_context(request)
    entry_id = opaque_id(request, "entry_id")
    show_id = ctx.waitlist.parse_entry_id(entry_id)  # 404 before the stream starts

    async def read() -> WaitlistEntry:
        return await ctx.waitlist.status(entry_id)

    return StreamingResponse(follow(ctx, show_id, entry_id, read, entry_json, lambda entry: entry.ended),
                             media_type="text/event-stream", headers=SSE_HEADERS)
