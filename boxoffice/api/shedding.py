"""Load shedding, and the sale path first. Each worker sorts the requests of its Redis and
browsing routes into two lanes:

- **the sale**: seat maps and counts, holds (by seat or by count), a hold's status and
  release, waitlist joins. At most BOXOFFICE_MAX_IN_FLIGHT in flight; one more is answered
  `503 overloaded` with `Retry-After: 1` at once, before its body is read: past Redis's
  saturation a queue of waiting requests adds only latency, so a worker sells at its peak
  rate with bounded latency and tells the rest to come back.
- **the crowd**: browsing (cities, movies, shows), release-queue joins and ticket reads,
  waitlist entry reads and leaves: the requests of people who are looking or waiting, not
  buying this second. At most BOXOFFICE_CROWD_IN_FLIGHT of them run at once; the next ones
  wait their turn, first come first served, and are answered `503 overloaded` only when
  BOXOFFICE_MAX_IN_FLIGHT of them are waiting already.

Why lanes: one worker runs every request on one event loop, so each request in flight
lengthens every turn of the loop for all the others. At the opening of a big release the
crowd (20,000 people browsing, joining the queue and reading their tickets) outnumbers
the admitted buyers by far; without lanes a buyer's hold waits behind all of them. With
them the loop holds only a few of the crowd's requests at a time, whatever the crowd's
size, and a buyer's request starts at once. The crowd loses nothing but its turn.

Never held back: a confirm or a booking's cancel (bounded by seats sold, and a customer
about to pay must not be turned away for a crowd of lookers), live streams (long-lived,
they hold no work while they wait), admin, health and metrics. Raw ASGI."""

from __future__ import annotations

import asyncio
from collections import deque
from enum import Enum

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from boxoffice.engine import metrics

RETRY_AFTER_S = 1
BODY = orjson.dumps({"error": "overloaded",
                     "message": "the service is at its capacity; try again in a second"})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode()),
           (b"retry-after", str(RETRY_AFTER_S).encode()), (b"cache-control", b"no-store")]
SALE_SHOW_ROUTES = ("/seats", "/seats/counts", "/holds", "/waitlist")


class Lane(Enum):
    SALE = "sale"
    CROWD = "crowd"


def lane_of(path: str) -> Lane | None:
    """The lane of a request (None: never held back)."""
    if path.startswith("/v1/shows/"):
        if path.endswith(SALE_SHOW_ROUTES):
            return Lane.SALE
        if path.endswith("/events"):
            return None
        return Lane.CROWD  # the show itself, its queue
    if path.startswith("/v1/holds/"):
        return None if path.endswith("/confirm") else Lane.SALE
    if path.startswith(("/v1/waitlist/", "/v1/queue/")):
        return None if path.endswith("/events") else Lane.CROWD
    if path.startswith("/v1/cities"):
        return Lane.CROWD
    return None


class LoadShedding:
    def __init__(self, app: ASGIApp, max_in_flight: int, crowd_in_flight: int = 0) -> None:
        self.app = app
        self.max_in_flight = max_in_flight  # 0: no bound
        self.crowd_in_flight = crowd_in_flight  # 0: the crowd is not held back
        self.in_flight = 0  # the sale's requests running
        self.crowd_running = 0
        # The crowd's requests waiting for their turn, in order of arrival.
        self.crowd_waiting: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = lane_of(scope["path"]) if scope["type"] == "http" else None
        if lane is Lane.SALE and self.max_in_flight:
            await self._sale(scope, receive, send)
        elif lane is Lane.CROWD and self.crowd_in_flight:
            await self._crowd(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _sale(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.in_flight >= self.max_in_flight:
            await _overloaded(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _crowd(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.crowd_running >= self.crowd_in_flight or self.crowd_waiting:
            if self.max_in_flight and len(self.crowd_waiting) >= self.max_in_flight:
                await _overloaded(send)
                return
            turn = asyncio.get_running_loop().create_future()
            self.crowd_waiting.append(turn)
            metrics.CROWD_DEFERRED.inc()
            try:
                await turn  # the finishing request counted this one as running
            except asyncio.CancelledError:
                if turn.cancelled():
                    if turn in self.crowd_waiting:
                        self.crowd_waiting.remove(turn)
                else:
                    self._crowd_done()  # handed the turn as it was cancelled: pass it on
                raise
        else:
            self.crowd_running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._crowd_done()

    def _crowd_done(self) -> None:
        """A crowd request ends: its turn goes straight to the first one waiting."""
        while self.crowd_waiting:
            turn = self.crowd_waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.crowd_running -= 1


async def _overloaded(send: Send) -> None:
    metrics.SHED.inc()
    await send({"type": "http.response.start", "status": 503, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
