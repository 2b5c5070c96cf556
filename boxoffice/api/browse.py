"""Browse endpoints: read from PostgreSQL through the catalog cache. Answers carry
Cache-Control so a CDN or browser can share them (docs/DESIGN.md, "Caching")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api.context import engine_context
from boxoffice.api.responses import JSON
from boxoffice.api.seatmap import SeatMapResponse, seat_counts_body, seat_map_body
from boxoffice.api.validation import path_id, query_date


def _cached(body: object, request: Request) -> JSON:
    max_age = int(engine_context(request).settings.browse_cache_s)
    return JSON(body, headers={"Cache-Control": f"public, max-age={max_age}"})


async def cities(request: Request) -> JSON:
    return _cached({"cities": await engine_context(request).catalog.cities()}, request)


async def movies(request: Request) -> JSON:
    city_id = path_id(request, "city_id")
    return _cached({"movies": await engine_context(request).catalog.movies_in_city(city_id)}, request)


async def shows(request: Request) -> JSON:
    city_id, movie_id = path_id(request, "city_id"), path_id(request, "movie_id")
    day = query_date(request)
    return _cached({"cinemas": await engine_context(request).catalog.shows_of_movie(city_id, movie_id, day)}, request)


async def show(request: Request) -> JSON:
    public = await engine_context(request).release_queue.public_show(path_id(request, "show_id"))
    return _cached(public, request)


async def seat_map(request: Request) -> Response:
    return SeatMapResponse(await seat_map_body(engine_context(request), path_id(request, "show_id")))


async def seat_counts(request: Request) -> Response:
    return SeatMapResponse(await seat_counts_body(engine_context(request), path_id(request, "show_id")))
