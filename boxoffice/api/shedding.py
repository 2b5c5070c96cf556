"""Load shedding: each worker keeps at most BOXOFFICE_MAX_IN_FLIGHT requests of the Redis
routes in flight (seat maps and counts, holds, waitlist joins, reads and leaves). One more
is answered `503 overloaded` with `Retry-After: 1` at once, before its body is read: past
Redis's saturation a queue of waiting requests adds only latency (every request then waits
behind all the others, and the event loop pays for each one waiting), so a worker sells at
its peak rate with bounded latency and tells the rest to come back.

Not shed: a confirm or a booking's cancel (bounded by seats sold, and a customer about to
pay must not be turned away for a crowd of lookers), live streams (long-lived, they hold no
Redis work while they wait), browsing (served from the catalog cache), admin, health and
metrics. Raw ASGI: one comparison and two additions per request."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from boxoffice.engine import metrics

RETRY_AFTER_S = 1
BODY = orjson.dumps({"error": "overloaded",
                     "message": "the service is at its capacity; try again in a second"})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode()),
           (b"retry-after", str(RETRY_AFTER_S).encode()), (b"cache-control", b"no-store")]
SHOW_ROUTES = ("/seats", "/seats/counts", "/holds", "/waitlist")


def shed_eligible(path: str) -> bool:
    """The routes whose work is Redis's: the rush's seat maps, holds and waitlist."""
    if path.startswith("/v1/shows/"):
        return path.endswith(SHOW_ROUTES)
    if path.startswith("/v1/waitlist/"):
        return not path.endswith("/events")
    if path.startswith("/v1/holds/"):
        return not path.endswith("/confirm")
    return False


class LoadShedding:
    def __init__(self, app: ASGIApp, max_in_flight: int) -> None:
        self.app = app
        self.max_in_flight = max_in_flight  # 0: no bound
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_in_flight or not shed_eligible(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            metrics.SHED.inc()
            await send({"type": "http.response.start", "status": 503, "headers": HEADERS})
            await send({"type": "http.response.body", "body": BODY})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
