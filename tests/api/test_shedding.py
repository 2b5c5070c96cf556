"""Load shedding (api/shedding.py): past BOXOFFICE_MAX_IN_FLIGHT requests of the Redis
routes in flight, a worker answers 503 overloaded with Retry-After at once, and serves
again as soon as one ends; confirms, streams and browsing are never shed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from boxoffice.api.app import create_app
from boxoffice.api.shedding import LoadShedding, shed_eligible
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine
from tests.support import rawasgi
from tests.support.shows import ShowRef


class Gated:
    """An app whose requests wait until let go: requests in flight, held there."""

    def __init__(self) -> None:
        self.entered = 0
        self.gate = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered += 1
        await self.gate.wait()
        if scope["path"].endswith("/boom"):
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


def test_the_redis_routes_are_shed_and_the_others_never() -> None:
    for path in ("/v1/shows/42/seats", "/v1/shows/42/seats/counts", "/v1/shows/42/holds",
                 "/v1/shows/42/waitlist", "/v1/waitlist/W42-a-b", "/v1/holds/H42-a-b"):
        assert shed_eligible(path), path
    for path in ("/v1/holds/H42-a-b/confirm", "/v1/shows/42/seats/events", "/v1/waitlist/W42-a-b/events",
                 "/v1/shows/42", "/v1/cities", "/v1/bookings/bk_x/cancel", "/v1/admin/shows", "/healthz",
                 "/metrics", "/"):
        assert not shed_eligible(path), path


async def test_past_the_bound_a_request_is_answered_503_at_once_and_served_again_after() -> None:
    inner = Gated()
    app = LoadShedding(inner, max_in_flight=3)
    held = [asyncio.create_task(rawasgi.call(app, "POST", "/v1/shows/42/holds", chunks=[b"{}"]))
            for _ in range(3)]
    await until(lambda: inner.entered == 3)
    refused = await asyncio.wait_for(rawasgi.call(app, "POST", "/v1/shows/42/holds", chunks=[b"{}"]), 1)
    assert refused.status == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "overloaded" and refused.complete
    assert refused.chunks_read == 0, "answered before reading the body"
    assert inner.entered == 3, "the refused request never reached the app"
    # A confirm is never shed: it reaches the app although the bound is reached.
    confirm = asyncio.create_task(rawasgi.call(app, "POST", "/v1/holds/H42-a-b/confirm"))
    await until(lambda: inner.entered == 4)
    inner.gate.set()
    assert [a.status for a in await asyncio.gather(*held, confirm)] == [200] * 4
    assert app.in_flight == 0
    assert (await rawasgi.call(app, "GET", "/v1/shows/42/seats")).status == 200, "served again"


async def test_a_request_that_fails_gives_its_place_back() -> None:
    inner = Gated()
    inner.gate.set()
    app = LoadShedding(inner, max_in_flight=1)
    with pytest.raises(RuntimeError):
        await rawasgi.call(app, "GET", "/v1/waitlist/boom")
    assert app.in_flight == 0
    assert (await rawasgi.call(app, "GET", "/v1/waitlist/W1-a-b")).status == 200


async def test_the_service_sheds_by_its_setting(ctx: Engine, show: ShowRef, monkeypatch: Any) -> None:
    """The real app with BOXOFFICE_MAX_IN_FLIGHT=1: a hold waiting on Redis, the next refused."""
    assert Settings(redis_url=None, database_url=None).max_in_flight > 0, "on by default"
    app = create_app(ctx.settings.with_changes(max_in_flight=1, rate_limit_holds_per_min=0,
                                               rate_limit_ip_per_min=0), engine=ctx)
    gate = asyncio.Event()
    waiting = asyncio.Event()
    real_hold = ctx.holds.hold

    async def slow_hold(*args: Any, **kwargs: Any) -> Any:
        waiting.set()
        await gate.wait()
        return await real_hold(*args, **kwargs)

    monkeypatch.setattr(ctx.holds, "hold", slow_hold)
    body = orjson.dumps({"seats": show.seat_ids[:1], "customer": "c@example.org"})
    headers = [(b"content-type", b"application/json")]
    first = asyncio.create_task(rawasgi.call(app, "POST", f"/v1/shows/{show.show_id}/holds", headers, [body]))
    await asyncio.wait_for(waiting.wait(), 5)
    refused = await rawasgi.call(app, "POST", f"/v1/shows/{show.show_id}/holds", headers, [body])
    assert refused.status == 503 and refused.json()["error"] == "overloaded"
    assert refused.headers["retry-after"] == "1" and refused.headers["x-content-type-options"] == "nosniff"
    gate.set()
    assert (await first).status == 201
    again = await rawasgi.call(app, "GET", f"/v1/shows/{show.show_id}/seats/counts")
    assert again.status == 200
