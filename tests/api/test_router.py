"""The router of /v1 (boxoffice/api/router.py): every route of the table reaches its own
endpoint with its parameters, nothing else under /v1 reaches any; a path no route has is
404 not_found, a known path with another method 405 method_not_allowed naming every method
of the path; hostile path parameters are refused with the API's own 422 (or 404 when they
change the path's shape) before any endpoint runs; a table with overlapping or unchecked
routes is refused at start."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from boxoffice.api import router as router_module
from boxoffice.api.app import create_app, on_engine_error, v1_routes
from boxoffice.api.responses import JSON
from boxoffice.api.router import Route, Router
from boxoffice.api.validation import PATH_PARAMS
from boxoffice.engine.errors import BoxOfficeError
from boxoffice.engine.wiring import Engine
from tests.support import rawasgi
from tests.support.shows import ShowRef

# A well-formed value of each parameter (the router checks form, the endpoint existence).
SAMPLE = {"city_id": "7", "movie_id": "8", "show_id": "9", "hold_id": "H9-abc", "entry_id": "W9-abc",
          "booking_id": "bk_abc", "ticket_id": "Q9-abc"}
NOT_FOUND = {"error": "not_found", "message": "no such resource"}


def concrete(path: str) -> str:
    for name, value in SAMPLE.items():
        path = path.replace("{" + name + "}", value)
    return path


def recording_router(reached: list[tuple[str, str, dict[str, Any]]], admin: bool = True) -> Router:
    """The app's route table, each endpoint replaced by one that records what reached it."""

    def recorder(route: Route) -> Any:
        async def endpoint(request: Request) -> Response:
            reached.append((route.path, request.method, dict(request.path_params)))
            return JSON({"route": route.path})

        return endpoint

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        await JSON({"fallback": scope["path"]})(scope, receive, send)

    return Router(fallback, [Route(r.path, recorder(r), r.methods) for r in v1_routes],
                  handlers={BoxOfficeError: on_engine_error},
                  validators=PATH_PARAMS, admin_enabled=lambda request: admin)


async def test_every_v1_route_reaches_its_own_endpoint_with_its_parameters() -> None:
    reached: list[tuple[str, str, dict[str, Any]]] = []
    router = recording_router(reached)
    expected = []
    for route in v1_routes:
        for method in sorted(route.methods):
            answer = await rawasgi.call(router, method, concrete(route.path))
            assert answer.status == 200 and answer.json() == {"route": route.path}, (method, route.path)
            params = {name: PATH_PARAMS[name](name, SAMPLE[name]) for name in SAMPLE if "{" + name + "}" in route.path}
            expected.append((route.path, method, params))
        if "GET" in route.methods:  # HEAD with every GET, as Starlette's routes do
            assert (await rawasgi.call(router, "HEAD", concrete(route.path))).status == 200
            expected.append((route.path, "HEAD", reached[-1][2]))
    assert reached == expected
    # Outside /v1 the app's own routes answer (the page, /healthz, /static...).
    for path in ("/", "/healthz", "/v1x", "/v1"):
        assert (await rawasgi.call(router, "GET", path)).json() == {"fallback": path}


async def test_paths_no_route_has_are_404_in_the_error_format() -> None:
    reached: list[Any] = []
    router = recording_router(reached)
    for path in ("/v1/", "/v1/nope", "/v1/cities/", "/v1/cities/7/movies/", "/v1/shows/9/seats/x",
                 "/v1/shows/9/holds/extra", "/v1/holds//confirm", "/v1/shows//seats", "/v1//cities",
                 "/v1/shows/9/seats/counts/", "/v1/admin/nope", "/v1/" + "x/" * 500):
        answer = await rawasgi.call(router, "GET", path)
        assert (answer.status, answer.json()) == (404, NOT_FOUND), path
        assert answer.headers["content-type"] == "application/json"
    assert reached == []


async def test_a_known_path_with_another_method_is_405_naming_every_method_of_the_path() -> None:
    reached: list[Any] = []
    router = recording_router(reached)
    for method, path, allowed in [("PUT", "/v1/cities", "GET, HEAD"),
                                  ("PATCH", "/v1/holds/H9-abc", "DELETE, GET, HEAD"),
                                  ("GET", "/v1/shows/9/holds", "POST"),
                                  ("POST", "/v1/waitlist/W9-abc", "DELETE, GET, HEAD"),
                                  ("DELETE", "/v1/admin/shows", "POST"),
                                  ("BREW", "/v1/shows/9", "GET, HEAD")]:
        answer = await rawasgi.call(router, method, path)
        assert answer.status == 405 and answer.json()["error"] == "method_not_allowed", (method, path)
        assert answer.headers["allow"] == allowed, (method, path)
    # Without an admin token the admin API does not exist, whatever the method.
    hidden = recording_router(reached, admin=False)
    answer = await rawasgi.call(hidden, "DELETE", "/v1/admin/shows")
    assert (answer.status, answer.json()) == (404, NOT_FOUND)
    assert reached == []


async def test_a_path_seen_before_is_answered_as_the_first_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The router remembers a path that matched and passed its checks: its next requests
    reach the same endpoint with the same parameters (each request its own copy), another
    method on it is still 405, a malformed path is refused every time (never remembered),
    and the table stays within its bound."""
    reached: list[tuple[str, str, dict[str, Any]]] = []
    router = recording_router(reached)
    seen: list[dict[str, Any]] = []

    async def meddling(request: Request) -> Response:
        seen.append(dict(request.path_params))
        request.path_params["show_id"] = "changed"  # an endpoint's own copy
        return JSON({})

    meddler = Router(router.app, [Route("/v1/shows/{show_id}/seats", meddling)], handlers={},
                     validators=PATH_PARAMS, admin_enabled=lambda request: True)
    for _ in range(3):
        assert (await rawasgi.call(meddler, "GET", "/v1/shows/9/seats")).status == 200
    assert seen == [{"show_id": 9}] * 3
    for _ in range(2):
        assert (await rawasgi.call(router, "POST", "/v1/holds/H9-abc/confirm")).status == 200
        answer = await rawasgi.call(router, "GET", "/v1/holds/H9-abc/confirm")
        assert answer.status == 405 and answer.headers["allow"] == "POST"
        assert (await rawasgi.call(router, "GET", "/v1/shows/x9/seats")).status == 422
    assert reached == [("/v1/holds/{hold_id}/confirm", "POST", {"hold_id": "H9-abc"})] * 2
    assert "/v1/shows/x9/seats" not in router.known
    monkeypatch.setattr(router_module, "MAX_KNOWN_PATHS", 3)
    for show_id in range(1, 8):
        assert (await rawasgi.call(router, "GET", f"/v1/shows/{show_id}")).json() == {"route": "/v1/shows/{show_id}"}
        assert len(router.known) <= 3
    assert reached[-1] == ("/v1/shows/{show_id}", "GET", {"show_id": 7})


@pytest.mark.parametrize("path, field", [
    ("/v1/shows/abc/seats", "show_id"),
    ("/v1/shows/0/seats", "show_id"),
    ("/v1/shows/-1/holds", "show_id"),
    ("/v1/shows/" + "9" * 19 + "/seats", "show_id"),
    ("/v1/shows/\uff11\uff12/seats", "show_id"),  # fullwidth digits
    ("/v1/shows/1\n/seats", "show_id"),
    ("/v1/shows/1\x00/seats", "show_id"),
    ("/v1/shows/1 OR 1=1/seats", "show_id"),
    ("/v1/cities/7/movies/%2e%2e/shows", "movie_id"),
    ("/v1/holds/..", "hold_id"),
    ("/v1/holds/" + "a" * 81, "hold_id"),
    ("/v1/holds/H9-ab\u00e7", "hold_id"),
    ("/v1/holds/H9'; DROP TABLE bookings;--/confirm", "hold_id"),
    ("/v1/waitlist/W9{abc}/events", "entry_id"),
    ("/v1/bookings/bk_\u202eabc", "booking_id"),
])
async def test_hostile_path_parameters_are_refused_before_any_endpoint(path: str, field: str) -> None:
    reached: list[Any] = []
    router = recording_router(reached)
    method = "POST" if path.endswith(("/holds", "/confirm")) else "GET"
    answer = await rawasgi.call(router, method, path)
    assert answer.status == 422, (path, answer.status, answer.body)
    body = answer.json()
    assert body["error"] == "invalid_request" and body["details"][0]["field"] == field, body
    assert reached == []


async def test_the_app_answers_through_the_router(client: Any, ctx: Engine, show: ShowRef) -> None:
    """The real app: the router's answers carry the security headers; its 422, 404 and 405
    are the contract's; the endpoints behind it answer as documented."""
    url = f"/v1/shows/{show.show_id}"
    held = await client.post(f"{url}/holds", json={"seats": show.seat_ids[:1], "customer": "ana@example.org"})
    assert held.status_code == 201
    hold_id = held.json()["hold_id"]
    assert (await client.get(f"/v1/holds/{hold_id}")).json()["status"] == "active"
    assert (await client.delete(f"/v1/holds/{hold_id}")).status_code == 204
    for method, path, status in [("GET", "/v1/shows/abc/seats", 422), ("GET", "/v1/nope", 404),
                                 ("PUT", f"{url}/seats", 405), ("GET", "/nope", 404), ("TRACE", "/", 405)]:
        answer = await client.request(method, path)
        assert answer.status_code == status, (method, path, answer.text)
        assert answer.json()["error"] and answer.headers["x-content-type-options"] == "nosniff", (method, path)
    app = create_app(ctx.settings, engine=ctx)
    seat_map = await rawasgi.call(app, "GET", f"{url}/seats")
    assert seat_map.status == 200 and seat_map.json()["show_id"] == str(show.show_id)


def test_a_table_the_router_cannot_serve_exactly_is_refused_at_start() -> None:
    async def endpoint(request: Request) -> Response:
        return Response()

    def sync_endpoint(request: Request) -> Response:
        return Response()

    def router(*routes: Route) -> Router:
        return Router(endpoint, list(routes), handlers={}, validators=PATH_PARAMS,
                      admin_enabled=lambda request: True)

    with pytest.raises(ValueError, match="overlap"):
        router(Route("/v1/holds/{hold_id}", endpoint), Route("/v1/holds/mine", endpoint, frozenset({"POST"})))
    with pytest.raises(ValueError, match="routed twice"):
        router(Route("/v1/holds/{hold_id}", endpoint), Route("/v1/holds/{hold_id}", endpoint))
    with pytest.raises(ValueError, match="no validator"):
        router(Route("/v1/things/{thing_id}", endpoint))
    with pytest.raises(ValueError, match="not a /v1 route"):
        router(Route("/healthz", endpoint))
    with pytest.raises(TypeError, match="async"):
        router(Route("/v1/cities", sync_endpoint))  # type: ignore[arg-type]
