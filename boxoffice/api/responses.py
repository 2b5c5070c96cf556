"""JSON answers (orjson) and the contract's error format."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

# Answers about one customer's records (holds, bookings, entries, tickets) and the admin's.
NO_STORE = {"Cache-Control": "no-store"}


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, message: str, **extra: Any) -> JSON:
    return JSON({"error": code, "message": message, **extra}, status_code=status)
