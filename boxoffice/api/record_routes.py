"""The endpoints every record reached by its opaque id has alike (a hold, a booking, a
waitlist entry, a release queue ticket): read it, never cached; remove it, 204 every time
(the engine answers an idempotent removal, or the error of a record that ended otherwise)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api.context import engine_context
from boxoffice.api.responses import JSON, NO_STORE
from boxoffice.api.validation import opaque_id
from boxoffice.engine.wiring import Engine

T = TypeVar("T")


def reading(id_param: str, read: Callable[[Engine], Callable[[str], Awaitable[T]]],
            shape: Callable[[T], dict[str, Any]]) -> Callable[[Request], Awaitable[JSON]]:
    """GET of the record named by the path parameter `id_param`: the engine's `read` of it, in
    its contract `shape`."""

    async def endpoint(request: Request) -> JSON:
        record = await read(engine_context(request))(opaque_id(request, id_param))
        return JSON(shape(record), headers=NO_STORE)

    return endpoint


def removing(id_param: str, remove: Callable[[Engine], Callable[[str], Awaitable[None]]],
             ) -> Callable[[Request], Awaitable[Response]]:
    """DELETE of the record named by the path parameter `id_param`: the engine's `remove` of it."""

    async def endpoint(request: Request) -> Response:
        await remove(engine_context(request))(opaque_id(request, id_param))
        return Response(status_code=204)

    return endpoint
