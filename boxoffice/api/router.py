"""The router of /v1: every path under /v1/ is answered here, by our own table, never by
Starlette's routing (which serves only the page, /healthz, /metrics, /openapi.json and
/static).

A route is a method and a path of literal segments and `{name}` parameters. A request's path
is split at "/" and looked up by its segment count and its first segment after /v1; the few
candidates are compared segment by segment (no regular expressions). Every parameter is
checked by the API's own validator of that name (api/validation.py, PATH_PARAMS) before the
endpoint runs, so a malformed id is a 422 in the error format and never reaches an endpoint;
path_params holds what the validator answers (a numeric id as an int). A path that matched
and passed its checks is remembered (a bounded table), so its next requests skip the split,
the match and the validators: in a rush every seat map request has the same path.
A path no route has is 404 not_found; a path some route has, with another method, is 405
method_not_allowed with an Allow header naming every method of that path (HEAD with GET),
or 404 under /v1/admin/ while the admin API is off (it does not exist then).

An endpoint's error is answered by the handler given for its class (the app's own handlers,
looked up along the class's MRO); one without a handler goes on up unchanged, to the app's
outermost error middleware (the plain 500). The router sits in the app's middleware stack,
innermost, so the security headers, CORS and the body limit see every request first."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from boxoffice.api.responses import error

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]
Validator = Callable[[str, str], Any]
PREFIX = "/v1/"
MAX_KNOWN_PATHS = 4096  # paths remembered as matched and checked (Router.remember)


@dataclass(frozen=True)
class Route:
    path: str
    endpoint: Endpoint
    methods: frozenset[str] = field(default_factory=lambda: frozenset({"GET"}))

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[1:])


def param_name(segment: str) -> str | None:
    return segment[1:-1] if segment.startswith("{") and segment.endswith("}") else None


@dataclass
class _Path:
    """One path pattern and its endpoints by method."""

    segments: tuple[str, ...]
    params: tuple[tuple[int, str, Validator], ...]  # (position, name, validator)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    allow: str = ""
    literals: tuple[tuple[int, str], ...] = ()  # (position, text) of each literal segment

    def __post_init__(self) -> None:
        self.literals = tuple((i, s) for i, s in enumerate(self.segments) if not param_name(s))

    def matches(self, parts: list[str]) -> bool:
        """For a path of as many segments."""
        for position, literal in self.literals:
            if parts[position] != literal:
                return False
        for position, _, _ in self.params:
            if not parts[position]:  # a parameter is never empty
                return False
        return True


class Router:
    """ASGI: answers every http request under /v1/; hands anything else to `app`."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route], handlers: Mapping[type[BaseException], Handler],
                 validators: Mapping[str, Validator], admin_enabled: Callable[[Request], bool]) -> None:
        self.app = app
        self.handlers = dict(handlers)
        self.admin_enabled = admin_enabled
        self.known: dict[str, tuple[_Path, dict[str, Any]]] = {}
        paths: dict[tuple[str, ...], _Path] = {}
        for route in routes:
            if not route.path.startswith(PREFIX):
                raise ValueError(f"not a /v1 route: {route.path}")
            if not inspect.iscoroutinefunction(route.endpoint):
                raise TypeError(f"{route.path}: endpoints must be async functions")
            found = paths.get(route.segments)
            if found is None:
                params = []
                for position, segment in enumerate(route.segments):
                    name = param_name(segment)
                    if name is not None:
                        if name not in validators:
                            raise ValueError(f"{route.path}: no validator for the parameter {name}")
                        params.append((position, name, validators[name]))
                found = paths[route.segments] = _Path(route.segments, tuple(params))
            for method in route.methods | ({"HEAD"} if "GET" in route.methods else set()):
                if method in found.endpoints:
                    raise ValueError(f"{method} {route.path} is routed twice")
                found.endpoints[method] = route.endpoint
        for path in paths.values():
            path.allow = ", ".join(sorted(path.endpoints))
        # Candidates by (segment count, first segment after v1); no path may match two patterns.
        self.table: dict[tuple[int, str], list[_Path]] = {}
        for path in paths.values():
            candidates = self.table.setdefault((len(path.segments), path.segments[1]), [])
            for other in candidates:
                if all(a == b or param_name(a) or param_name(b) for a, b in zip(path.segments, other.segments,
                                                                               strict=True)):
                    raise ValueError(f"/{'/'.join(path.segments)} and /{'/'.join(other.segments)} overlap")
            candidates.append(path)
        for handler in self.handlers.values():
            if not inspect.iscoroutinefunction(handler):
                raise TypeError(f"error handlers must be async functions: {handler!r}")

    def match(self, parts: list[str]) -> _Path | None:
        """The pattern of a path split at "/" (its leading "" dropped), or None."""
        if len(parts) < 2:
            return None
        for candidate in self.table.get((len(parts), parts[1]), ()):
            if candidate.matches(parts):
                return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):
            path = path[len(root):]
        known = self.known.get(path)
        if known is None:
            if not path.startswith(PREFIX):
                await self.app(scope, receive, send)
                return
            parts = path.split("/")
            del parts[0]
            found = self.match(parts)
            if found is None:
                await not_found()(scope, receive, send)
                return
        else:
            found, valid = known
        endpoint = found.endpoints.get(scope["method"])
        request = Request(scope, receive, send)
        if endpoint is None:
            response = self.wrong_method(request, path, found)
        else:
            try:
                if known is None:
                    # The API's own 422 for a malformed value; else the value as it reads
                    # it (an id as an int), so the endpoint checks nothing again.
                    valid = {name: validator(name, parts[position]) for position, name, validator in found.params}
                    self.remember(path, found, valid)
                scope["path_params"] = valid.copy()  # the endpoint's own: the remembered one stays as checked
                response = await endpoint(request)
            except Exception as exc:
                handler = self.handler_for(exc)
                if handler is None:
                    raise
                exc.__traceback__ = None  # an error object raised again must not grow its traceback
                response = await handler(request, exc)
        await response(scope, receive, send)

    def remember(self, path: str, found: _Path, valid: dict[str, Any]) -> None:
        """A path that matched and whose parameters passed: its next request skips the
        split, the match and the validators (pure functions of the text, so the answer is
        the same). Bounded: a client sending endless new paths only empties it now and then."""
        if len(self.known) >= MAX_KNOWN_PATHS:
            self.known.clear()
        self.known[path] = (found, valid)

    def handler_for(self, exc: Exception) -> Handler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def wrong_method(self, request: Request, path: str, found: _Path) -> Response:
        if path.startswith("/v1/admin/") and not self.admin_enabled(request):
            return not_found()  # without a token the admin API does not exist, whatever the method
        response = error(405, "method_not_allowed", "this method is not allowed here")
        response.headers["Allow"] = found.allow
        return response


def not_found() -> Response:
    return error(404, "not_found", "no such resource")
