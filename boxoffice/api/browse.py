"""Browse endpoints: read from PostgreSQL through the catalog cache. Answers carry
Cache-Control so a CDN or browser can share them (docs/DESIGN.md, "Caching")."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api.context import engine_context
from boxoffice.api.seatmap import SeatMapResponse, seat_counts_body, seat_map_body
from boxoffice.api.shapes import cinemas_json, cities_json, movies_json, queue_json, show_json
from boxoffice.api.validation import path_id, query_date

T = TypeVar("T")


class RenderedAnswers:
    """The JSON of browse answers, written once per value the catalog hands out: the catalog
    answers the very same (cached) objects until its cache time passes, so the bytes made
    for them serve every request until then. Compared by identity, so a reloaded value (or
    another engine's) is always rendered afresh."""

    def __init__(self, max_items: int = 4096) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Hashable, tuple[object, bytes]] = OrderedDict()

    def render(self, key: Hashable, value: T, shape: Callable[[T], dict[str, Any]]) -> bytes:
        hit = self._items.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        body = orjson.dumps(shape(value))
        self._items[key] = (value, body)  # the value is kept: its id cannot be reused meanwhile
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return body


RENDERED = RenderedAnswers()


def _cached(body: bytes, request: Request) -> Response:
    max_age = int(engine_context(request).settings.browse_cache_s)
    return Response(body, media_type="application/json", headers={"Cache-Control": f"public, max-age={max_age}"})


async def cities(request: Request) -> Response:
    found = await engine_context(request).catalog.cities()
    return _cached(RENDERED.render("cities", found, cities_json), request)


async def movies(request: Request) -> Response:
    city_id = path_id(request, "city_id")
    found = await engine_context(request).catalog.movies_in_city(city_id)
    return _cached(RENDERED.render(("movies", city_id), found, movies_json), request)


async def shows(request: Request) -> Response:
    city_id, movie_id = path_id(request, "city_id"), path_id(request, "movie_id")
    day = query_date(request)
    found = await engine_context(request).catalog.shows_of_movie(city_id, movie_id, day)
    return _cached(RENDERED.render(("shows", city_id, movie_id, day), found, cinemas_json), request)


def spliced_show(catalog_part: bytes, queue_part: bytes) -> bytes:
    """shapes.show_with_queue_json's bytes from its two parts, each rendered once while it
    stays the same value: the show's while the catalog caches it, the queue's for a show on
    sale without a queue (engine/release_queue.py NO_QUEUE); a live queue is new each read."""
    return catalog_part[:-1] + b',"queue":' + queue_part + b"}"


async def show(request: Request) -> Response:
    ctx, show_id = engine_context(request), path_id(request, "show_id")
    found = await ctx.catalog.show(show_id)  # 404 for an unknown show
    queue = await ctx.release_queue.info(show_id)
    return _cached(spliced_show(RENDERED.render(("show", show_id), found, show_json),
                                RENDERED.render(("queue", show_id), queue, queue_json)), request)


async def seat_map(request: Request) -> Response:
    return SeatMapResponse(await seat_map_body(engine_context(request), path_id(request, "show_id")))


async def seat_counts(request: Request) -> Response:
    return SeatMapResponse(await seat_counts_body(engine_context(request), path_id(request, "show_id")))
