"""The baselines of the HTTP ceiling comparisons: the least a Starlette app under uvicorn can
do for the same requests. POST /hold parses the same JSON body and makes ONE Redis call
(HSETNX through a plain redis-py pool); GET /seats answers fixed bytes (a real seat map
captured from the service, read from BENCH_SEAT_MAP_FILE at start). Run it exactly as the
service is run:

    REDIS_URL=... BENCH_SEAT_MAP_FILE=... uvicorn bench.bare_app:create_app --factory --port N
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app() -> Starlette:
    seat_map_file = os.environ.get("BENCH_SEAT_MAP_FILE")
    seat_map = Path(seat_map_file).read_bytes() if seat_map_file else b'{"seats":[]}'
    prefix = os.environ.get("BOXOFFICE_KEY_PREFIX", "bo")
    key = f"{prefix}:bare:{{held}}"

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = BlockingConnectionPool.from_url(os.environ["REDIS_URL"], decode_responses=True,
                                               max_connections=int(os.environ.get("BOXOFFICE_REDIS_POOL", "64")))
        app.state.redis = Redis(connection_pool=pool)
        yield
        await app.state.redis.aclose()

    async def hold(request: Request) -> Response:
        body = orjson.loads(await request.body())
        taken = await request.app.state.redis.hsetnx(key, body["seats"][0], body["customer"])
        return Response(orjson.dumps({"seats": body["seats"], "customer": body["customer"], "taken": taken}),
                        status_code=201, media_type="application/json")

    async def seats(request: Request) -> Response:
        return Response(seat_map, media_type="application/json", headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/hold", hold, methods=["POST"]), Route("/seats", seats, methods=["GET"])],
                     lifespan=lifespan)
