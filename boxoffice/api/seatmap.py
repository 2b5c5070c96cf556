"""The seat map answer, spliced from pre-serialised pieces: for each seat of a hall its JSON
object is made once per status (available, held, booked); a request only picks one of the
three per seat from the statuses Redis gave and joins bytes. No per-seat dicts, no JSON
encoding per request: a 2,000-seat map costs about as much as copying a list.

In a rush everybody reads the same show's map: the requests for one show that arrive while a
read of it is in flight share the next read (seat_map_body)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from boxoffice.engine.catalog import HallPlan
from boxoffice.engine.seat_view import BOOKED, HELD, shown_map
from boxoffice.engine.statuses import SeatStatus

if TYPE_CHECKING:
    from boxoffice.engine.wiring import Engine

MAX_TEMPLATES = 4096
MAX_SHOWS_REMEMBERED = 64  # per hall: the last rendered map of each show


class SeatMapTemplate:
    """One hall's seat map with everything but the statuses serialised once."""

    def __init__(self, plan: HallPlan) -> None:
        self.plan = plan
        self.index = {seat.id: i for i, seat in enumerate(plan.seats)}
        self.categories = [seat.category for seat in plan.seats]

        def variant(status: SeatStatus) -> list[bytes]:
            return [orjson.dumps({"id": s.id, "row": s.row, "number": s.number, "category": s.category,
                                  "kind": s.kind, "x": s.x, "y": s.y, "status": status.value})
                    for s in plan.seats]

        # The last answer per show: readers far outnumber changes, and an unchanged map
        # (same string, same waited categories) renders to the same bytes.
        self.last: dict[int, tuple[str, list[str], bytes]] = {}
        self.available = variant(SeatStatus.AVAILABLE)
        self.held = variant(SeatStatus.HELD)
        self.booked = variant(SeatStatus.BOOKED)

    def render(self, show_id: int, status_map: str, waited_categories: list[str]) -> bytes:
        """status_map and waited_categories as Holds.seat_state answers them."""
        last = self.last.get(show_id)
        if last is not None and last[0] == status_map and last[1] == waited_categories:
            return last[2]
        body = self._render(show_id, status_map, waited_categories)
        if len(self.last) >= MAX_SHOWS_REMEMBERED:
            self.last.clear()
        self.last[show_id] = (status_map, waited_categories, body)
        return body

    def _render(self, show_id: int, status_map: str, waited_categories: list[str]) -> bytes:
        shown = shown_map(status_map, self.categories, waited_categories)
        chosen = self.available.copy()
        for char, variant in ((HELD, self.held), (BOOKED, self.booked)):
            at = shown.find(char)
            while at >= 0:
                chosen[at] = variant[at]
                at = shown.find(char, at + 1)
        held, booked = shown.count(HELD), shown.count(BOOKED)
        counts = b'"counts":{"available":%d,"held":%d,"booked":%d}}' % (len(chosen) - held - booked, held, booked)
        return b'{"show_id":"%d","seats":[' % show_id + b",".join(chosen) + b"]," + counts


_templates: dict[int, SeatMapTemplate] = {}


def template_for(plan: HallPlan) -> SeatMapTemplate:
    """The hall's template, made on first use (hall plans do not change once seeded)."""
    template = _templates.get(plan.hall_id)
    if template is None or template.plan is not plan:
        if len(_templates) >= MAX_TEMPLATES:
            _templates.clear()
        template = _templates[plan.hall_id] = SeatMapTemplate(plan)
    return template



class SeatMapResponse(Response):
    """200 with a seat map's bytes, made and sent directly: Starlette's general path (render
    the content, build headers from a mapping, the websocket check) costs more than the rest
    of the answer."""

    media_type = "application/json"

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            (b"content-length", b"%d" % len(body))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


class _ShowReads:
    """The seat map reads of one show in this process: at most one in flight; the requests
    that arrive meanwhile wait together for the next one, made as soon as it lands.

    Why it stays exact: a read is sent to Redis only after every request it answers had
    arrived, so each request sees every change acknowledged before it arrived, just as
    with a read of its own (a request never gets an answer read before it came)."""

    def __init__(self, key: tuple[int, int], ctx: Engine, show_id: int) -> None:
        self.key = key
        self.ctx = ctx
        self.show_id = show_id
        self.loop = asyncio.get_running_loop()
        self.waiting: list[asyncio.Future[bytes]] = []
        self.running = False

    def join(self) -> asyncio.Future[bytes]:
        """The answer of the next read made after this call."""
        waiter = self.loop.create_future()
        self.waiting.append(waiter)
        if not self.running:
            self.running = True
            self.loop.call_soon(self.start)
        return waiter

    def start(self) -> None:
        # A callback, so the requests of this turn of the loop have joined; the read's first
        # step (which sends it) comes after this, so whoever joins from here waits for the next.
        waiters, self.waiting = self.waiting, []
        task = self.loop.create_task(_read(self.ctx, self.show_id))
        task.add_done_callback(lambda done: self.finish(done, waiters))

    def finish(self, task: asyncio.Task[bytes], waiters: list[asyncio.Future[bytes]]) -> None:
        if task.cancelled():  # the loop is shutting down
            for waiter in waiters + self.waiting:
                waiter.cancel()
            self.waiting = []
            self.idle()
            return
        error = task.exception()
        for waiter in waiters:
            if waiter.done():  # its request was cancelled (the client went away)
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(task.result())
        if self.waiting:
            self.start()
        else:
            self.idle()

    def idle(self) -> None:
        """Nobody waits: the show's entry goes (the next request makes a new one)."""
        self.running = False
        if _reads.get(self.key) is self:
            del _reads[self.key]


# (id of the engine context, show id) -> that show's reads; an entry lives while reads run.
_reads: dict[tuple[int, int], _ShowReads] = {}


def seat_map_body(ctx: Engine, show_id: int) -> asyncio.Future[bytes]:
    """The body of GET /v1/shows/{id}/seats, to await. In a rush every request wants the
    same show: one read (a script call and a render) answers all the requests that arrived
    while the previous read of that show was in flight. A future, not a coroutine: no frame
    of its own to suspend and resume on every request."""
    key = (id(ctx), show_id)
    reads = _reads.get(key)
    if reads is None or reads.loop is not asyncio.get_running_loop():
        reads = _reads[key] = _ShowReads(key, ctx, show_id)
    return reads.join()


async def seat_counts_body(ctx: Engine, show_id: int) -> bytes:
    """The body of GET /v1/shows/{id}/seats/counts: the seat map's own counts (its closing
    member), so the two never disagree and a thin client learns whether anything is free
    for about 80 bytes instead of the whole map."""
    body = await seat_map_body(ctx, show_id)
    return b'{"show_id":"%d",' % show_id + body[body.rfind(b'"counts":'):]


async def _read(ctx: Engine, show_id: int) -> bytes:
    show = await ctx.catalog.show(show_id)
    plan = await ctx.catalog.hall_plan(show.hall_id)
    status_map, waited_categories = await ctx.holds.seat_state(show_id, plan=plan)
    return template_for(plan).render(show_id, status_map, waited_categories)
