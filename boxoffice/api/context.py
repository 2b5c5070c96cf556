"""The Engine of the app a request reached (set by the app's lifespan)."""

from __future__ import annotations

from starlette.requests import Request

from boxoffice.engine.wiring import Engine


def engine_context(request: Request) -> Engine:
    return request.app.state.ctx  # type: ignore[no-any-return]
