"""The Starlette app: the route table, error handling, security headers, lifespan."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.api import admin, browse, holds, operations, queue, streams, waitlist
from boxoffice.api.bodylimit import BodySizeLimit
from boxoffice.api.context import BoxOfficeApp, engine_context
from boxoffice.api.errors import error_response
from boxoffice.api.operations import tracked
from boxoffice.api.responses import error
from boxoffice.api.router import Route, Router, not_found
from boxoffice.api.shedding import LoadShedding
from boxoffice.api.validation import PATH_PARAMS
from boxoffice.engine.errors import BoxOfficeError
from boxoffice.engine.limits import ADMIN_MAX_BODY_BYTES
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine

log = logging.getLogger("boxoffice.api")
# The web page ships inside the package (package data).
STATIC = resources.files("boxoffice.api") / "static"
INDEX_HTML = (STATIC / "index.html").read_bytes()

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
]


class SecurityHeaders:
    """Adds the security headers to every answer (raw ASGI: cheap on the hot paths)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


POST, DELETE = frozenset({"POST"}), frozenset({"DELETE"})
# The young generation's collection threshold while serving (Python's default: 700). A
# request waiting for its shared seat map read holds a few dozen young objects, and a rush
# keeps up to BOXOFFICE_MAX_IN_FLIGHT of them waiting: at 700 the collector ran every few
# dozen answers and walked all of those objects each time, ~7 us a seat map over uvicorn
# (820 young collections in 40,000 answers; 18 at 10,000). Under a release's rush it made
# ~25 young collections a second, 16 % of the worker's CPU, with pauses up to 30 ms (2,405
# in a bench.spike run; 18-203 at 10,000). Cycles are rare here, so the garbage left for
# longer is small.
YOUNG_COLLECTION_THRESHOLD = 10_000


async def index(request: Request) -> Response:
    return Response(INDEX_HTML, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


# Every /v1 route, served by our own router (api/router.py); Starlette routes the rest.
v1_routes = [
    Route("/v1/shows/{show_id}/seats", tracked("seat_map", browse.seat_map)),
    Route("/v1/shows/{show_id}/seats/counts", tracked("seat_counts", browse.seat_counts)),
    Route("/v1/shows/{show_id}/holds", tracked("hold", holds.create_hold), POST),
    Route("/v1/waitlist/{entry_id}", waitlist.status),
    Route("/v1/waitlist/{entry_id}", tracked("waitlist_leave", waitlist.leave), DELETE),
    Route("/v1/shows/{show_id}/waitlist", tracked("waitlist_join", waitlist.join), POST),
    Route("/v1/shows/{show_id}/queue", tracked("queue_join", queue.join), POST),
    Route("/v1/queue/{ticket_id}", queue.status),
    Route("/v1/queue/{ticket_id}", tracked("queue_leave", queue.leave), DELETE),
    Route("/v1/holds/{hold_id}/confirm", tracked("confirm", holds.confirm_hold), POST),
    Route("/v1/holds/{hold_id}", holds.get_hold),
    Route("/v1/holds/{hold_id}", tracked("release", holds.release_hold), DELETE),
    Route("/v1/cities", browse.cities),
    Route("/v1/cities/{city_id}/movies", browse.movies),
    Route("/v1/cities/{city_id}/movies/{movie_id}/shows", browse.shows),
    Route("/v1/shows/{show_id}", browse.show),
    Route("/v1/shows/{show_id}/seats/events", streams.seat_events),
    Route("/v1/bookings/{booking_id}", holds.get_booking),
    Route("/v1/bookings/{booking_id}/cancel", tracked("cancel", holds.cancel_booking), POST),
    Route("/v1/waitlist/{entry_id}/events", streams.entry_events),
    Route("/v1/queue/{ticket_id}/events", queue.events),
    Route("/v1/admin/cities", admin.create_city, POST),
    Route("/v1/admin/cinemas", admin.create_cinema, POST),
    Route("/v1/admin/halls", admin.create_hall, POST),
    Route("/v1/admin/movies", admin.create_movie, POST),
    Route("/v1/admin/shows", admin.create_show, POST),
    Route("/v1/admin/shows/{show_id}/close", admin.close_show, POST),
    Route("/v1/admin/shows/{show_id}/report", admin.report),
]
routes = [
    StarletteRoute("/", index, methods=["GET"]),
    StarletteRoute("/healthz", operations.healthz, methods=["GET"]),
    StarletteRoute("/metrics", operations.metrics, methods=["GET"]),
    StarletteRoute("/openapi.json", operations.openapi, methods=["GET"]),
    Mount("/static", StaticFiles(packages=[("boxoffice.api", "static")]), name="static"),
]


async def on_engine_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BoxOfficeError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # Starlette's own answers for the routes outside /v1 (api/router.py answers those of /v1).
    if exc.status_code == 404:
        return not_found()
    if exc.status_code == 405:
        response = error(405, "method_not_allowed", "this method is not allowed here")
        response.headers["Allow"] = (exc.headers or {}).get("Allow", "")
        return response
    return error(exc.status_code, "http_error", str(exc.detail)[:200])


def admin_enabled(request: Request) -> bool:
    return bool(engine_context(request).settings.admin_tokens)


async def on_dependency_down(request: Request, exc: Exception) -> Response:
    which = "redis" if isinstance(exc, RedisError) else "database"
    log.warning("%s unavailable: %s", which, exc)
    response = error(503, "unavailable", f"a dependency ({which}) is unavailable; try again shortly",
                     dependency=which)
    response.headers["Retry-After"] = "2"
    return response


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    response = error(500, "internal_error", "something went wrong on our side; nothing was changed by it")
    # Starlette answers this outside every middleware: the security headers are set here.
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


def create_app(settings: Settings | None = None, engine: Engine | None = None,
               opener: Callable[[Settings], Awaitable[Engine]] = open_engine) -> BoxOfficeApp:
    """The app. Tests may hand in an Engine they own (then no lifespan is needed), or an
    `opener` that opens the engine differently (tests/support/crashable.py)."""
    settings = settings or Settings.from_env()

    @contextlib.asynccontextmanager
    async def lifespan(app: BoxOfficeApp) -> AsyncIterator[None]:
        if engine is not None:
            yield
            return
        ctx = app.engine = await opener(settings)
        # Everything made at start lives as long as the process: out of the collector's
        # sight, a full collection no longer walks ~100k objects (tens of ms, mid-request).
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            await ctx.close()

    middleware = [Middleware(SecurityHeaders)]
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET", "POST", "DELETE"],
                                     allow_headers=["Content-Type", "Idempotency-Key"],
                                     expose_headers=["Retry-After", "X-Queue-Refresh-After"]))
    # Before the body limit: an overloaded worker answers without reading anything.
    middleware.append(Middleware(LoadShedding, max_in_flight=settings.max_in_flight,
                                 crowd_in_flight=settings.crowd_in_flight))
    middleware.append(Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes,
                                 admin_max_bytes=ADMIN_MAX_BODY_BYTES if settings.admin_tokens else None))
    exception_handlers = {
        BoxOfficeError: on_engine_error,
        HTTPException: on_http_error,
        RedisConnectionError: on_dependency_down,
        RedisTimeoutError: on_dependency_down,
        OperationalError: on_dependency_down,
        DBAPIError: on_dependency_down,
        Exception: on_unexpected,
    }
    # Innermost: /v1 answered by our router, with the app's handlers but the last resort
    # (Exception: Starlette's outermost error middleware answers that one, as for any route).
    v1_handlers = {cls: handler for cls, handler in exception_handlers.items()
                   if cls not in (Exception, HTTPException)}
    middleware.append(Middleware(Router, routes=v1_routes, handlers=v1_handlers, validators=PATH_PARAMS,
                                 admin_enabled=admin_enabled))
    app = BoxOfficeApp(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers=exception_handlers,
    )
    if engine is not None:
        app.engine = engine
    return app
