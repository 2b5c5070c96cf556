"""JSON answers (orjson) and the contract's error format."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from boxoffice.engine.errors import BoxOfficeError, Unavailable


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: BoxOfficeError) -> JSON:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after_s)
    retry_after = error.extra.get("retry_after_s") if error.status == 429 else None
    if retry_after:
        headers["Retry-After"] = str(retry_after)
    return JSON(error.body(), status_code=error.status, headers=headers)


def error(status: int, code: str, message: str, **extra: Any) -> JSON:
    return JSON({"error": code, "message": message, **extra}, status_code=status)
