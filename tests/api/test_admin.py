"""The admin API (docs/API.md, "Operators") on the real Redis and a PostgreSQL database of
this module's own (migrated, empty: everything in it is made through the API): every route
with a good token, none, a wrong one and the variable unset; hostile seat plans refused
whole; a show made by the API sells, waits, confirms and closes like a seeded one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boxoffice.api.app import create_app
from boxoffice.engine.settings import Settings, parse_admin_tokens
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.sales import audit
from tests.support.services import RedisServer, migrated_database

ADA = "ada-0123456789abcdef"
BEN = "ben-fedcba9876543210"
TOKENS = f"ada:{ADA},ben:{BEN}"


@pytest.fixture(scope="module")
def admin_database() -> Iterator[str]:
    with migrated_database() as url:
        yield url


def admin_settings(redis_server: RedisServer, url: str, tokens: str) -> Settings:
    return Settings(redis_url=redis_server.url, database_url=url, key_prefix=f"adm{uuid.uuid4().hex[:10]}",
                    confirm_grace_s=1.0, reconcile_interval_s=3600.0, browse_cache_s=0.0,
                    rate_limit_holds_per_min=0, rate_limit_ip_per_min=0,
                    admin_tokens=parse_admin_tokens(tokens))


@pytest.fixture
async def actx(redis_server: RedisServer, admin_database: str) -> AsyncIterator[Engine]:
    context = await open_engine(admin_settings(redis_server, admin_database, TOKENS), background=False)
    yield context
    keys = [k async for k in context.redis.scan_iter(match=f"{context.keys.prefix}:*", count=1000)]
    if keys:
        await context.redis.delete(*keys)
    await context.close()


async def http_for(context: Engine) -> httpx.AsyncClient:
    app = create_app(context.settings, engine=context)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def http(actx: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with await http_for(actx) as client:
        yield client


def auth(token: str = ADA) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def plan(rows: str = "AB", per_row: int = 6) -> list[dict[str, Any]]:
    seats = []
    for y, row in enumerate(rows):
        for n in range(1, per_row + 1):
            seats.append({"id": f"{row}{n}", "row": row, "number": n, "x": n * 10, "y": y * 10,
                          "category": "premium" if y else "standard",
                          "kind": "wheelchair" if (y, n) == (0, 1) else "standard"})
    return seats


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


async def post(http: httpx.AsyncClient, path: str, body: dict[str, Any], token: str = ADA) -> httpx.Response:
    return await http.post(f"/v1/admin/{path}", json=body, headers=auth(token))


async def made(http: httpx.AsyncClient, path: str, body: dict[str, Any], token: str = ADA) -> dict[str, Any]:
    answer = await post(http, path, body, token)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def a_hall(http: httpx.AsyncClient, seats: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    city = await made(http, "cities", {"name": unique("Utrecht"), "country": "NL"})
    cinema = await made(http, "cinemas", {"city_id": city["id"], "name": unique("Cinema"), "address": "Oudegracht 1"})
    hall = await made(http, "halls", {"cinema_id": cinema["id"], "name": "Hall 1", "seats": seats or plan()})
    return city["id"], hall["id"]


async def a_movie(http: httpx.AsyncClient, runtime: int = 100) -> str:
    movie = await made(http, "movies", {"title": unique("The Long Queue"), "runtime_min": runtime, "rating": "PG",
                                        "release_date": "2026-11-01", "genres": ["Drama"]})
    return str(movie["id"])


def show_body(hall_id: str, movie_id: str, starts_at: datetime, **more: Any) -> dict[str, Any]:
    return {"hall_id": hall_id, "movie_id": movie_id, "starts_at": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "prices": [{"category": "standard", "amount": 1200, "currency": "EUR"},
                       {"category": "premium", "amount": 1500, "currency": "EUR"}], **more}


def tomorrow(hours: int = 0) -> datetime:
    return (datetime.now(UTC) + timedelta(days=2, hours=hours)).replace(minute=0, second=0, microsecond=0)


async def changes(context: Engine) -> list[tuple[str, str, str]]:
    async with context.sql.connect() as conn:
        return [tuple(r) for r in await conn.execute(
            text("SELECT token_name, action, target FROM admin_changes ORDER BY created_at, id"))]


async def count(context: Engine, table: str) -> int:
    async with context.sql.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


# -- the token -------------------------------------------------------------------------

ROUTES = [("POST", "/v1/admin/cities"), ("POST", "/v1/admin/cinemas"), ("POST", "/v1/admin/halls"),
          ("POST", "/v1/admin/movies"), ("POST", "/v1/admin/shows"), ("POST", "/v1/admin/shows/1/close"),
          ("GET", "/v1/admin/shows/1/report")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_needs_the_token(actx: Engine, http: httpx.AsyncClient, method: str, path: str) -> None:
    before = await changes(actx)
    for headers in ({}, auth("wrong-token-wrong-token"), {"Authorization": ADA}, {"Authorization": f"Basic {ADA}"},
                    auth(ADA + "x"), auth(ADA[:-1])):
        answer = await http.request(method, path, json={}, headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.json()["error"] == "unauthorized" and answer.headers["www-authenticate"] == "Bearer"
    # with a good token the request gets past the door (refused for its body or its show)
    answer = await http.request(method, path, json={}, headers=auth(BEN))
    assert answer.status_code in (404, 422), answer.text
    assert await changes(actx) == before


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_without_the_variable_the_admin_api_does_not_exist(
        redis_server: RedisServer, admin_database: str, method: str, path: str) -> None:
    context = await open_engine(admin_settings(redis_server, admin_database, ""), background=False)
    try:
        async with await http_for(context) as http:
            for headers in ({}, auth(ADA)):
                answer = await http.request(method, path, json={}, headers=headers)
                assert answer.status_code == 404 and answer.json()["error"] == "not_found", answer.text
            wrong_method = await http.request("DELETE" if method == "GET" else "GET", path, headers=auth(ADA))
            assert wrong_method.status_code == 404, wrong_method.text
    finally:
        await context.close()


def test_the_token_variable_is_parsed_and_weak_tokens_refused() -> None:
    assert parse_admin_tokens("") == ()
    assert parse_admin_tokens(ADA) == (("admin", ADA),)
    assert parse_admin_tokens(f" ada:{ADA} , ben:{BEN} ") == (("ada", ADA), ("ben", BEN))
    for weak in ("short", "ada:short", f":{ADA}"):
        with pytest.raises(ValueError, match="BOXOFFICE_ADMIN_TOKEN"):
            parse_admin_tokens(weak)


# -- creating --------------------------------------------------------------------------


async def test_every_route_with_a_good_token_and_every_change_recorded(actx: Engine, http: httpx.AsyncClient) -> None:
    before = len(await changes(actx))
    city_name = unique("Utrecht")
    city = await made(http, "cities", {"name": city_name, "country": "NL"})
    assert city == {"id": city["id"], "name": city_name, "country": "NL", "cinema_count": 0}
    cinema = await made(http, "cinemas", {"city_id": city["id"], "name": "Louis", "address": "Oudegracht 1"},
                        token=BEN)
    assert cinema["city_id"] == city["id"] and cinema["address"] == "Oudegracht 1"
    hall = await made(http, "halls", {"cinema_id": cinema["id"], "name": "Hall 1", "seats": plan()})
    assert hall == {"id": hall["id"], "seat_count": 12}
    movie = await made(http, "movies", {"title": "Queue", "runtime_min": 95, "rating": "PG-13",
                                        "release_date": "2026-11-01", "genres": ["Drama", "Sci-Fi"]})
    assert movie["genres"] == ["Drama", "Sci-Fi"] and movie["runtime_min"] == 95
    opens = tomorrow(-30)
    show = await made(http, "shows", show_body(hall["id"], movie["id"], tomorrow(), sale_opens_at=opens.strftime(
        "%Y-%m-%dT%H:%M:%SZ"), queue_order="shuffle_before_open"))
    assert show["status"] == "open" and show["hall"]["id"] == hall["id"] and show["movie"]["id"] == movie["id"]
    assert show["sale_opens_at"] == opens.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {p["category"]: p["amount"] for p in show["prices"]} == {"standard": 1200, "premium": 1500}
    assert (await http.get(f"/v1/shows/{show['id']}")).json() == show
    # browse sees it (the cache is off in tests; in service it shows within its lifetime)
    movies = (await http.get(f"/v1/cities/{city['id']}/movies")).json()["movies"]
    assert [m["id"] for m in movies] == [movie["id"]]
    seats = (await http.get(f"/v1/shows/{show['id']}/seats")).json()["seats"]
    assert {s["id"]: s["kind"] for s in seats}["A1"] == "wheelchair" and len(seats) == 12
    report = await http.get(f"/v1/admin/shows/{show['id']}/report", headers=auth())
    assert report.status_code == 200, report.text
    assert report.json() == {
        "show_id": show["id"], "status": "open", "seats": 12, "free": 12, "held": 0, "sold": 0, "waiting": 0,
        "queued": 0, "revenue": {"amount": 0, "currency": "EUR"}, "refunded": {"amount": 0, "currency": "EUR"},
        "bookings": 0, "cancelled": 0}
    recorded = (await changes(actx))[before:]
    assert recorded == [("ada", "create_city", city["id"]), ("ben", "create_cinema", cinema["id"]),
                        ("ada", "create_hall", hall["id"]), ("ada", "create_movie", movie["id"]),
                        ("ada", "create_show", show["id"])]


HOSTILE_PLANS: dict[str, tuple[list[dict[str, Any]], str]] = {
    "duplicate labels": ([*plan(), {**plan()[0], "x": 500}], "duplicate labels: A1"),
    "overlapping places": ([*plan(), {"id": "C1", "row": "C", "number": 1, "x": 10, "y": 0,
                                      "category": "standard", "kind": "standard"}], "overlapping places: A1 and C1"),
    "unknown kind": ([{**plan()[0], "kind": "sofa"}], "unknown kind"),
    "unknown category": ([{**plan()[0], "category": "gold"}], "unknown category"),
    "too many seats": ([{"id": f"{chr(65 + i // 999 % 26)}{i % 999 + 1}", "row": chr(65 + i // 999 % 26),
                         "number": i % 999 + 1, "x": i % 999, "y": i // 999, "category": "standard",
                         "kind": "standard"} for i in range(5001)], "at most 5000 seats"),
    "label not row and number": ([{**plan()[0], "id": "B7"}], "the label must be the row and the number"),
    "no seats": ([], "at least one seat"),
}


@pytest.mark.parametrize("fault", list(HOSTILE_PLANS))
async def test_a_hostile_seat_plan_is_refused_naming_the_fault_and_nothing_is_written(
        actx: Engine, http: httpx.AsyncClient, fault: str) -> None:
    city = await made(http, "cities", {"name": unique("Gouda"), "country": "NL"})
    cinema = await made(http, "cinemas", {"city_id": city["id"], "name": "Kaas", "address": "Markt 1"})
    halls, seats, recorded = await count(actx, "halls"), await count(actx, "seats"), len(await changes(actx))
    seat_plan, named = HOSTILE_PLANS[fault]
    answer = await post(http, "halls", {"cinema_id": cinema["id"], "name": "Hall X", "seats": seat_plan})
    assert answer.status_code == 422, answer.text
    assert any(named in d["problem"] for d in answer.json()["details"]), answer.json()
    assert (await count(actx, "halls"), await count(actx, "seats"), len(await changes(actx))) == (
        halls, seats, recorded)


async def test_a_5000_seat_hall_is_accepted(http: httpx.AsyncClient) -> None:
    seats = [{"id": f"{chr(65 + i // 200)}{i % 200 + 1}", "row": chr(65 + i // 200), "number": i % 200 + 1,
              "x": i % 200, "y": i // 200, "category": "standard", "kind": "standard"} for i in range(5000)]
    _, hall_id = await a_hall(http, seats)
    assert hall_id


async def test_shows_refused_for_missing_prices_a_busy_hall_and_bad_fields(
        actx: Engine, http: httpx.AsyncClient) -> None:
    _, hall_id = await a_hall(http)
    movie_id = await a_movie(http, runtime=120)
    first = await made(http, "shows", show_body(hall_id, movie_id, tomorrow()))
    shows = await count(actx, "shows")
    cases = {
        "prices": show_body(hall_id, movie_id, tomorrow(5), prices=[
            {"category": "standard", "amount": 1200, "currency": "EUR"}]),
        "starts_at": show_body(hall_id, movie_id, tomorrow(1)),  # inside the first show's 2 h
        "hall_id": show_body("999999", movie_id, tomorrow(5)),
        "movie_id": show_body(hall_id, "999999", tomorrow(5)),
        "sale_opens_at": show_body(hall_id, movie_id, tomorrow(5), sale_opens_at="2099-01-01T00:00:00Z"),
        "queue_order": show_body(hall_id, movie_id, tomorrow(5), queue_order="lottery"),
    }
    for field, body in cases.items():
        answer = await post(http, "shows", body)
        assert answer.status_code == 422, (field, answer.text)
        assert field in {d["field"].split("[")[0] for d in answer.json()["details"]}, (field, answer.json())
    busy = await post(http, "shows", cases["starts_at"])
    assert f"show {first['id']}" in busy.json()["details"][0]["problem"]
    assert await count(actx, "shows") == shows
    # right after the first show ends, the hall is free
    await made(http, "shows", show_body(hall_id, movie_id, tomorrow(2)))


async def test_unknown_fields_and_bad_values_are_named(http: httpx.AsyncClient) -> None:
    answer = await post(http, "cities", {"name": " x", "country": "nl", "mayor": "me"})
    assert answer.status_code == 422
    assert {d["field"] for d in answer.json()["details"]} == {"name", "country", "mayor"}
    answer = await post(http, "cinemas", {"city_id": "0", "name": "x", "address": "y"})
    assert [d["field"] for d in answer.json()["details"]] == ["city_id"]
    answer = await post(http, "cinemas", {"city_id": "999999", "name": "x", "address": "y"})
    assert answer.status_code == 422 and answer.json()["details"][0]["field"] == "city_id"


# -- a show made by the API sells, waits, confirms and closes ----------------------------


async def test_a_show_made_by_the_api_sells_waits_confirms_and_closes(
        actx: Engine, http: httpx.AsyncClient) -> None:
    for seat in (seats := plan("A", 4)):  # four seats, all standard
        seat["category"] = "standard"
    _, hall_id = await a_hall(http, seats)
    movie_id = await a_movie(http)
    show = await made(http, "shows", {**show_body(hall_id, movie_id, tomorrow()), "prices": [
        {"category": "standard", "amount": 900, "currency": "EUR"}]})
    show_id = show["id"]
    held = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": ["A1", "A2", "A3"], "customer": "a@x.org"})
    assert held.status_code == 201, held.text
    other = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": ["A4"], "customer": "b@x.org"})
    assert other.status_code == 201
    waiter = await http.post(f"/v1/shows/{show_id}/waitlist", json={"count": 1, "customer": "c@x.org"})
    assert waiter.status_code == 201 and waiter.json()["status"] == "waiting", waiter.text
    booked = await http.post(f"/v1/holds/{held.json()['hold_id']}/confirm", headers={"Idempotency-Key": "o-1"},
                             json={"payment": {"method": "card", "token": "tok_ok"}})
    assert booked.status_code == 201 and booked.json()["amount"] == 2700, booked.text
    # the other hold goes: the waiter gets its seat
    assert (await http.delete(f"/v1/holds/{other.json()['hold_id']}")).status_code == 204
    entry = (await http.get(f"/v1/waitlist/{waiter.json()['entry_id']}")).json()
    assert entry["status"] == "granted" and entry["hold"]["seats"] == ["A4"]
    report = (await http.get(f"/v1/admin/shows/{show_id}/report", headers=auth())).json()
    assert (report["sold"], report["held"], report["free"], report["bookings"]) == (3, 1, 0, 1)
    assert report["revenue"] == {"amount": 2700, "currency": "EUR"}
    # cancelled, then closed: the grant ends, nothing sells, the booking stays cancelled
    cancelled = await http.post(f"/v1/bookings/{booked.json()['booking_id']}/cancel",
                                headers={"Idempotency-Key": "c-1"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    closed = await http.post(f"/v1/admin/shows/{show_id}/close", json={"reason": "projector broke"},
                             headers=auth(BEN))
    assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
    again = await http.post(f"/v1/admin/shows/{show_id}/close", headers=auth(BEN))
    assert again.status_code == 200 and again.json() == closed.json()
    assert (await http.get(f"/v1/holds/{entry['hold']['hold_id']}")).json()["status"] == "released"
    refused = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": ["A1"], "customer": "d@x.org"})
    assert refused.status_code == 409 and refused.json()["error"] == "show_closed"
    report = (await http.get(f"/v1/admin/shows/{show_id}/report", headers=auth())).json()
    assert report["status"] == "closed" and (report["sold"], report["held"], report["free"]) == (0, 0, 4)
    assert (report["bookings"], report["cancelled"], report["refunded"]["amount"]) == (0, 1, 2700)
    assert (await changes(actx))[-2:] == [("ben", "close_show", show_id)] * 2
    assert (await http.post("/v1/admin/shows/999999/close", headers=auth())).status_code == 404
    assert (await http.get("/v1/admin/shows/999999/report", headers=auth())).status_code == 404
    (await audit(actx)).assert_consistent()


# -- closing under load ------------------------------------------------------------------


async def test_closing_a_show_under_load_stops_every_sale_and_leaves_the_books_straight(
        actx: Engine, http: httpx.AsyncClient) -> None:
    """200 clients queue, hold with their pass, pay and wait on a show of 40 seats that sells
    through its release queue while it is closed: afterwards every hold, confirm and join
    (of the queue or the waitlist) answers show_closed, every charge has its booking or
    refund, no seat is held or awaited, every waiter and every queue ticket was told it
    ended, and Redis shows booked exactly what PostgreSQL sold."""
    _, hall_id = await a_hall(http, plan("ABCDE", 8))
    opened = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    show = await made(http, "shows", show_body(hall_id, await a_movie(http), tomorrow(), sale_opens_at=opened))
    show_id = show["id"]
    closed = asyncio.Event()
    after_close: list[tuple[str, int, str]] = []
    seen: list[tuple[str, int, str]] = []
    seats = [f"{row}{n}" for row in "ABCDE" for n in range(1, 9)]
    entries: list[str] = []
    tickets: list[str] = []

    async def queue_pass(who: str, ticket: str | None) -> tuple[str | None, dict[str, str]]:
        """The client's live ticket (joining again once its pass was used) and its pass header."""
        if ticket is not None:
            now = (await http.get(f"/v1/queue/{ticket}")).json()
            if now["status"] == "admitted" and now["pass"]:
                return ticket, {"X-Queue-Pass": now["pass"]["token"]}
            if now["status"] == "waiting":
                return ticket, {}
        sent_after = closed.is_set()
        joined = await http.post(f"/v1/shows/{show_id}/queue", json={"customer": who})
        seen.append(("queue", joined.status_code, joined.json().get("error", "")))
        if sent_after:
            after_close.append(("queue", joined.status_code, joined.json().get("error", "")))
        if joined.status_code != 201:
            return None, {}
        tickets.append(joined.json()["ticket_id"])
        ticket_pass = joined.json()["pass"]
        return joined.json()["ticket_id"], {"X-Queue-Pass": ticket_pass["token"]} if ticket_pass else {}

    async def client(n: int) -> None:
        who = f"load{n}@example.org"
        ticket: str | None = None
        for attempt in range(40):
            if closed.is_set() and len(after_close) > 200:
                return
            ticket, passed = await queue_pass(who, ticket)
            sent_after = closed.is_set()
            pick = [seats[(n * 7 + attempt * 3) % 40]]
            held = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": pick, "customer": who},
                                   headers=passed)
            seen.append(("hold", held.status_code, held.json().get("error", "")))
            if sent_after:
                after_close.append(("hold", held.status_code, held.json().get("error", "")))
            if held.status_code == 201:
                token = "tok_slow" if n % 10 == 0 else "tok_ok"
                sent_after = closed.is_set()
                paid = await http.post(f"/v1/holds/{held.json()['hold_id']}/confirm", headers={
                    "Idempotency-Key": f"load-{n}-{attempt}"}, json={"payment": {"method": "card", "token": token}})
                seen.append(("confirm", paid.status_code, paid.json().get("error", "")))
                if sent_after:
                    after_close.append(("confirm", paid.status_code, paid.json().get("error", "")))
            elif held.status_code == 409 and held.json()["error"] == "seats_unavailable" and n % 3 == 0:
                # (the pass a refused hold kept lets its buyer wait instead)
                sent_after = closed.is_set()
                joined = await http.post(f"/v1/shows/{show_id}/waitlist", json={"count": 1, "customer": who},
                                         headers=passed)
                if joined.status_code == 201:
                    entries.append(joined.json()["entry_id"])
                if sent_after:
                    after_close.append(("join", joined.status_code, joined.json().get("error", "")))
            await asyncio.sleep(0.01)

    async def close_midway() -> None:
        # mid-rush: once some sales went through and some buyers wait, while others are still paying
        for _ in range(200):
            if sum(1 for kind, status, _ in seen if (kind, status) == ("confirm", 201)) >= 5 and entries:
                break
            await asyncio.sleep(0.05)
        answer = await http.post(f"/v1/admin/shows/{show_id}/close", json={"reason": "load test"}, headers=auth())
        assert answer.status_code == 200 and answer.json()["status"] == "closed"
        closed.set()

    async def sweeper_ticks() -> None:  # the sweeper's admission tick (no background tasks here)
        while not closed.is_set():
            await actx.release_queue.tick_all()
            await asyncio.sleep(0.05)

    await asyncio.gather(close_midway(), sweeper_ticks(), *(client(n) for n in range(200)))
    assert tickets, "some clients queued"
    ended = [(await http.get(f"/v1/queue/{ticket_id}")).json() for ticket_id in tickets]
    for ticket in ended:  # every ticket told: none still waiting or holding an unused pass
        assert ticket["status"] in {"closed", "expired", "left", "sold_out"} or (
            ticket["status"] == "admitted" and ticket["pass"] is None), ticket
    assert any(ticket["status"] == "closed" for ticket in ended)
    assert ("hold", 403, "pass_required") in seen
    assert after_close, "some requests came after the close"
    assert {(kind, status, code) for kind, status, code in after_close} <= {
        ("hold", 409, "show_closed"), ("confirm", 409, "show_closed"), ("join", 409, "show_closed"),
        ("queue", 409, "show_closed")}, after_close
    assert entries, "some clients waited"
    for entry_id in entries:  # every waiter told: no entry still waiting, none granted a live hold
        entry = (await http.get(f"/v1/waitlist/{entry_id}")).json()
        assert entry["status"] != "waiting", entry
        if entry["status"] == "granted":
            assert (await http.get(f"/v1/holds/{entry['hold']['hold_id']}")).json()["status"] != "active"

    async def settled() -> bool:
        await actx.reconciler.reconcile_once()
        return (await audit(actx)).settled

    deadline = asyncio.get_running_loop().time() + 20
    while not await settled():
        assert asyncio.get_running_loop().time() < deadline, await audit(actx)
        await asyncio.sleep(0.2)
    books = await audit(actx)
    books.assert_consistent()
    report = (await http.get(f"/v1/admin/shows/{show_id}/report", headers=auth())).json()
    stats = await actx.redis.hgetall(actx.keys.show_keys(int(show_id))[7])
    assert (report["held"], report["waiting"], int(stats["held"]), int(stats["waiting"])) == (0, 0, 0, 0)
    assert int(stats["booked"]) == report["sold"] and report["free"] == 40 - report["sold"]
    assert report["bookings"] == report["sold"] > 0  # one seat a booking
    assert ("confirm", 201, "") in seen and ("hold", 409, "seats_unavailable") in seen


async def test_another_process_sees_a_new_show_within_the_browse_cache_time(
        actx: Engine, http: httpx.AsyncClient, redis_server: RedisServer, admin_database: str) -> None:
    city_id, hall_id = await a_hall(http)
    movie_id = await a_movie(http)
    # another service process, caching browse answers for a second
    cached = admin_settings(redis_server, admin_database, TOKENS).with_changes(browse_cache_s=1.0)
    other = await open_engine(cached, background=False)
    try:
        async with await http_for(other) as elsewhere:
            assert (await elsewhere.get(f"/v1/cities/{city_id}/movies")).json()["movies"] == []
            show = await made(http, "shows", show_body(hall_id, movie_id, tomorrow()))
            began = asyncio.get_running_loop().time()
            while not (await elsewhere.get(f"/v1/cities/{city_id}/movies")).json()["movies"]:
                assert asyncio.get_running_loop().time() - began < 1.5, "not seen within the cache time"
                await asyncio.sleep(0.05)
            shows = (await elsewhere.get(f"/v1/cities/{city_id}/movies/{movie_id}/shows")).json()["cinemas"]
            assert [s["id"] for s in shows[0]["shows"]] == [show["id"]]
    finally:
        await other.close()
