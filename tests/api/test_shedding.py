"""Load shedding and the two lanes (api/shedding.py): past BOXOFFICE_MAX_IN_FLIGHT requests
of the sale in flight, a worker answers 503 overloaded with Retry-After at once, and serves
again as soon as one ends; past BOXOFFICE_CROWD_IN_FLIGHT requests of the crowd running, the
next wait their turn in order while the sale's requests go ahead; confirms and streams are
never held back."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from boxoffice.api.app import create_app
from boxoffice.api.shedding import Lane, LoadShedding, lane_of
from boxoffice.engine import metrics
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


class Doors:
    """An app whose every request waits until its own path is let go; records the order in
    which requests came in."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.doors: dict[str, asyncio.Event] = {}

    def door(self, path: str) -> asyncio.Event:
        return self.doors.setdefault(path, asyncio.Event())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.entered.append(scope["path"])
        await self.door(scope["path"]).wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def until(condition: Any) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


def test_each_route_has_its_lane() -> None:
    for path in ("/v1/shows/42/seats", "/v1/shows/42/seats/counts", "/v1/shows/42/holds",
                 "/v1/shows/42/waitlist", "/v1/holds/H42-a-b"):
        assert lane_of(path) is Lane.SALE, path
    for path in ("/v1/cities", "/v1/cities/1/movies", "/v1/cities/1/movies/2/shows", "/v1/shows/42",
                 "/v1/shows/42/queue", "/v1/queue/Q42-a-b", "/v1/waitlist/W42-a-b"):
        assert lane_of(path) is Lane.CROWD, path
    for path in ("/v1/holds/H42-a-b/confirm", "/v1/shows/42/seats/events", "/v1/waitlist/W42-a-b/events",
                 "/v1/queue/Q42-a-b/events", "/v1/bookings/bk_x", "/v1/bookings/bk_x/cancel",
                 "/v1/admin/shows", "/healthz", "/metrics", "/"):
        assert lane_of(path) is None, path


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
        await rawasgi.call(app, "GET", "/v1/holds/boom")
    assert app.in_flight == 0
    assert (await rawasgi.call(app, "GET", "/v1/holds/H1-a-b")).status == 200


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


async def test_the_crowd_waits_its_turn_in_order_while_the_sale_goes_ahead() -> None:
    inner = Doors()
    app = LoadShedding(inner, max_in_flight=8, crowd_in_flight=2)
    crowd = [f"/v1/queue/Q42-{n}" for n in range(5)]
    calls = {path: asyncio.create_task(rawasgi.call(app, "GET", path)) for path in crowd[:2]}
    await until(lambda: len(inner.entered) == 2)
    for path in crowd[2:]:
        calls[path] = asyncio.create_task(rawasgi.call(app, "GET", path))
    await until(lambda: len(app.crowd_waiting) == 3)
    sale = "/v1/shows/42/holds"
    calls[sale] = asyncio.create_task(rawasgi.call(app, "POST", sale, chunks=[b"{}"]))
    await until(lambda: sale in inner.entered)
    assert inner.entered == [*crowd[:2], sale], "the hold went ahead of the waiting crowd"
    inner.door(sale).set()
    assert (await calls[sale]).status == 200
    # Each crowd request that ends lets in the one that came first among those waiting.
    inner.door(crowd[1]).set()
    await until(lambda: len(inner.entered) == 4)
    assert inner.entered[-1] == crowd[2] and app.crowd_running == 2
    inner.door(crowd[0]).set()
    await until(lambda: len(inner.entered) == 5)
    assert inner.entered[-1] == crowd[3]
    for path in crowd:
        inner.door(path).set()
    assert [(await calls[path]).status for path in crowd] == [200] * 5
    assert inner.entered == [*crowd[:2], sale, *crowd[2:]]
    assert app.crowd_running == 0 and not app.crowd_waiting and app.in_flight == 0


async def test_the_crowds_line_is_bounded_by_the_in_flight_bound() -> None:
    inner = Doors()
    app = LoadShedding(inner, max_in_flight=2, crowd_in_flight=1)
    running = asyncio.create_task(rawasgi.call(app, "GET", "/v1/cities"))
    await until(lambda: len(inner.entered) == 1)
    waiting = [asyncio.create_task(rawasgi.call(app, "POST", "/v1/shows/42/queue", chunks=[b"{}"]))
               for _ in range(2)]
    await until(lambda: len(app.crowd_waiting) == 2)
    refused = await asyncio.wait_for(rawasgi.call(app, "POST", "/v1/shows/42/queue", chunks=[b"{}"]), 1)
    assert refused.status == 503 and refused.headers["retry-after"] == "1"
    assert refused.chunks_read == 0, "answered before reading the body"
    inner.door("/v1/cities").set()
    inner.door("/v1/shows/42/queue").set()
    assert [a.status for a in await asyncio.gather(running, *waiting)] == [200] * 3
    assert app.crowd_running == 0 and not app.crowd_waiting


@pytest.mark.parametrize("cancel_first", [True, False])
async def test_a_waiting_request_cancelled_loses_no_turn(cancel_first: bool) -> None:
    """Cancelled while waiting, or just as the turn is handed to it: its turn goes to the next."""
    inner = Doors()
    app = LoadShedding(inner, max_in_flight=8, crowd_in_flight=1)
    first = asyncio.create_task(rawasgi.call(app, "GET", "/v1/queue/Q1-a-b"))
    await until(lambda: len(inner.entered) == 1)
    second = asyncio.create_task(rawasgi.call(app, "GET", "/v1/queue/Q2-a-b"))
    third = asyncio.create_task(rawasgi.call(app, "GET", "/v1/queue/Q3-a-b"))
    await until(lambda: len(app.crowd_waiting) == 2)
    if cancel_first:
        second.cancel()
        inner.door("/v1/queue/Q1-a-b").set()
    else:
        inner.door("/v1/queue/Q1-a-b").set()
        await until(lambda: len(app.crowd_waiting) == 1)  # the turn handed to the second
        second.cancel()
    inner.door("/v1/queue/Q3-a-b").set()
    assert (await first).status == 200 and (await third).status == 200
    with pytest.raises(asyncio.CancelledError):
        await second
    assert inner.entered == ["/v1/queue/Q1-a-b", "/v1/queue/Q3-a-b"]
    assert app.crowd_running == 0 and not app.crowd_waiting
    inner.door("/v1/cities").set()
    assert (await rawasgi.call(app, "GET", "/v1/cities")).status == 200, "no turn was lost"


async def test_the_service_holds_the_crowd_back_by_its_setting(ctx: Engine, show: ShowRef,
                                                                monkeypatch: Any) -> None:
    """The real app with BOXOFFICE_CROWD_IN_FLIGHT=1: a ticket read waiting on Redis, the next
    one waits its turn, a seat map is answered meanwhile."""
    assert Settings(redis_url=None, database_url=None).crowd_in_flight > 0, "on by default"
    app = create_app(ctx.settings.with_changes(crowd_in_flight=1), engine=ctx)
    gate = asyncio.Event()
    reads = 0
    real_status = ctx.release_queue.status

    async def slow_status(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        await gate.wait()
        return await real_status(*args, **kwargs)

    monkeypatch.setattr(ctx.release_queue, "status", slow_status)
    deferred_before = metrics.CROWD_DEFERRED._value.get()
    first = asyncio.create_task(rawasgi.call(app, "GET", "/v1/queue/Q1-aaaaaaaaaaaaaaaaaaaaaa"))
    await until(lambda: reads == 1)
    second = asyncio.create_task(rawasgi.call(app, "GET", "/v1/queue/Q1-bbbbbbbbbbbbbbbbbbbbbb"))
    await until(lambda: metrics.CROWD_DEFERRED._value.get() == deferred_before + 1)
    seat_map = await rawasgi.call(app, "GET", f"/v1/shows/{show.show_id}/seats/counts")
    assert seat_map.status == 200 and reads == 1, "the sale went ahead; the second read waits"
    gate.set()
    answers = await asyncio.gather(first, second)
    assert reads == 2 and all(a.complete for a in answers)
