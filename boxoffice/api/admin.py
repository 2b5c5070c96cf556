"""The admin API (docs/API.md, "Operators"): bearer-token protected; without
BOXOFFICE_ADMIN_TOKEN the routes answer 404 as if they did not exist."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request

from boxoffice.api.context import engine_context
from boxoffice.api.errors import Unauthorized
from boxoffice.api.responses import JSON, NO_STORE
from boxoffice.api.shapes import (
    city_json,
    created_cinema_json,
    created_hall_json,
    movie_json,
    report_json,
    show_with_queue_json,
)
from boxoffice.api.validation import (
    cinema_request,
    city_request,
    close_request,
    hall_request,
    json_body,
    movie_request,
    path_id,
    show_request,
)
from boxoffice.engine.errors import NotFound
from boxoffice.engine.limits import ADMIN_MAX_BODY_BYTES

if TYPE_CHECKING:
    from boxoffice.engine.admin import Admin

T = TypeVar("T")


def operator(request: Request) -> str:
    """The name of the token the request carries; checked before anything else is read."""
    tokens = engine_context(request).settings.admin_tokens
    if not tokens:
        raise NotFound("no such resource")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    given = presented.strip().encode()
    name = None
    # Every token is compared, in constant time each: the answer's timing tells nothing.
    for token_name, token in tokens:
        if hmac.compare_digest(given, token.encode()) and scheme.lower() == "bearer":
            name = token_name
    if name is None:
        raise Unauthorized("a valid admin token is required: Authorization: Bearer <token>")
    return name


async def body_of(request: Request) -> dict[str, Any]:
    return await json_body(request, ADMIN_MAX_BODY_BYTES)


def creating(parse: Callable[[dict[str, Any]], Any], create: Callable[[Admin], Callable[[str, Any], Awaitable[T]]],
             shape: Callable[[T], dict[str, Any]]) -> Callable[[Request], Awaitable[JSON]]:
    """The endpoint of one kind of thing an operator creates: the token first, then the
    body parsed and validated, then the engine's `create` of it (201, the thing made, in
    its contract `shape`)."""

    async def endpoint(request: Request) -> JSON:
        who = operator(request)
        wanted = parse(await body_of(request))
        made = await create(engine_context(request).admin)(who, wanted)
        return JSON(shape(made), status_code=201, headers=NO_STORE)

    return endpoint


create_city = creating(city_request, lambda admin: admin.create_city, city_json)
create_cinema = creating(cinema_request, lambda admin: admin.create_cinema, created_cinema_json)
create_hall = creating(hall_request, lambda admin: admin.create_hall, created_hall_json)
create_movie = creating(movie_request, lambda admin: admin.create_movie, movie_json)
create_show = creating(show_request, lambda admin: admin.create_show_with_queue, show_with_queue_json)


async def close_show(request: Request) -> JSON:
    who = operator(request)
    show_id = path_id(request, "show_id")
    # The reason is optional: a close without a body is a close too.
    has_body = request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers
    reason = close_request(await body_of(request)) if has_body else ""
    closed = await engine_context(request).admin.close_show(who, show_id, reason)
    return JSON(show_with_queue_json(closed), headers=NO_STORE)


async def report(request: Request) -> JSON:
    operator(request)
    show_id = path_id(request, "show_id")
    return JSON(report_json(await engine_context(request).admin.report(show_id)), headers=NO_STORE)
