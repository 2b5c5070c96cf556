"""The routes a rush hammers, dispatched straight to their endpoints.

Starlette hands every request through ExceptionMiddleware, the router's scan of the route
table and request_response's wrapper: each layer a coroutine, a closure and, twice over, the
same lookup of an exception handler. On the seat map that machinery cost about as much as
the endpoint's own work (profiled; bench/RESULTS.md). HotRoutes is the innermost middleware,
so the security headers and the body limit still see every request, and it serves the hot
routes itself: it matches the path with the route's own pattern and method set, fills the
scope as the router does, calls the endpoint, and answers the endpoint's errors with the
app's own exception handlers, as ExceptionMiddleware would. Whatever it does not match
exactly (other routes, another method, a mounted root path, websockets) goes on through
Starlette unchanged; unhandled errors go on up to ServerErrorMiddleware as before."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: Sequence[Route], handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.routes = [(route, route.path_regex.match, frozenset(route.methods or ()), route.param_convertors)
                       for route in routes]
        # As Starlette splits them: 500 and Exception are ServerErrorMiddleware's (it answers
        # outside every middleware), status codes are looked up first for HTTPException.
        self.status_handlers = {k: v for k, v in handlers.items() if isinstance(k, int) and k != 500}
        self.handlers = {k: v for k, v in handlers.items() if not isinstance(k, int) and k is not Exception}
        for handler in [*self.handlers.values(), *self.status_handlers.values()]:
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(f"hot routes need async exception handlers: {handler!r}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            for route, match, methods, convertors in self.routes:
                if method in methods:
                    found = match(path)
                    if found is not None:
                        params = found.groupdict()
                        for name, value in params.items():
                            params[name] = convertors[name].convert(value)
                        await self.serve(route, params, scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def serve(self, route: Route, params: dict[str, Any], scope: Scope, receive: Receive, send: Send) -> None:
        if "router" not in scope:
            scope["router"] = scope["app"].router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            handler = self.handler_for(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
            exc.__traceback__ = None  # as Starlette does: a reused exception must not grow its traceback
        await response(scope, receive, send)

    def handler_for(self, exc: Exception) -> Any:
        """The app's handler of an endpoint's error (None: it goes on up, unhandled)."""
        if isinstance(exc, HTTPException):
            handler = self.status_handlers.get(exc.status_code)
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None
