"""Injection: payloads full of SQL, Lua and Redis metacharacters, Unicode
confusables, NUL and control bytes, and very long strings, put in every place a client
controls (seat labels, customers, categories, payment tokens, Idempotency-Key, path ids,
the date query, JSON field names). Each one is refused with the contract's error naming
the field, never reaches a Lua script or an SQL query (tests/support/tripwire.py), and
changes nothing (tests/support/state.py)."""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from boxoffice.api.app import create_app
from boxoffice.engine.wiring import Engine
from tests.support import rawasgi
from tests.support.scene import Scene, make_scene
from tests.support.shows import ShowRef
from tests.support.state import nothing_changes
from tests.support.tripwire import tripwire

SQL = ["'; DROP TABLE bookings; --", '" OR "1"="1', "1 OR 1=1", "ana@x.org' OR '1'='1", "%' --",
       "'; SELECT pg_sleep(5); --", "1; TRUNCATE booked_seats", "A1'--", "vip' UNION SELECT secret--",
       "$1", ":customer"]
LUA_AND_REDIS = ["]]", "[[", "]]..redis.call('FLUSHALL')..[[", "--[[", "..", "../../etc/passwd", "%s%d%n",
                 "a\\b", "{1}", "A1,A2", "ana@x.org,bob@x.org", "A1|vip|1|1", "h:H1-x", "b:bk_x", "wc:*",
                 "\r\nFLUSHALL\r\n", "*3\r\n$3\r\nDEL\r\n", "ana@x.org;EVAL"]
CONFUSABLES = ["\u0410" + "1",  # Cyrillic A in a seat label
               "\u0391" + "1",  # Greek Alpha
               "\uff21\uff11",  # fullwidth A1
               "A\uff11",  # fullwidth digit
               "\u0430na@example.org",  # Cyrillic a in a customer
               "A\u200b1", "ana\u202e@example.org", "A\u03011", "\u212a" + "1",  # ZWSP, RTL override, combining, Kelvin
               "v\u0131p", "\u017ftandard",  # dotless i, long s
               "\uff53\uff54\uff41\uff4e\uff44\uff41\uff52\uff44"]  # fullwidth "standard"
NUL_AND_CONTROL = ["\x00", "A1\x00", "ana@example.org\x00", "standard\x00B", "\x00tok_ok", "A1\n", "ana@x.org\r\n",
                   "\t", "\x1b[31mred", "\x7f", "\x08\x08\x08"]
LONG = ["A" * 1000, "a" * 255, "x" * 10_000, "1" * 5000, "tok_" + "o" * 100]


# docs/API.md lets a customer be an e-mail address or an opaque reference: these
# characters are data there (see test_metacharacters_a_customer_may_use_are_stored_verbatim).
CUSTOMER_ALPHABET = set(string.ascii_letters + string.digits + "._%+-@:/#=")


def valid_customer(payload: str) -> bool:
    return 1 <= len(payload) <= 254 and set(payload) <= CUSTOMER_ALPHABET


@dataclass(frozen=True)
class Placement:
    where: str
    method: str
    path: str
    json: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None
    field: str | None = None  # the field the 422 must name; None for path ids


def placements(scene: Scene, payload: str) -> Iterator[Placement]:
    """Every place a client controls, with `payload` in it and everything else valid."""
    show, seat, customer = scene.show_id, scene.free_seats[0], "dan@example.org"
    holds, waitlist = f"/v1/shows/{show}/holds", f"/v1/shows/{show}/waitlist"
    confirm = f"/v1/holds/{scene.hold_id}/confirm"
    pay = {"payment": {"method": "card", "token": "tok_ok"}}
    yield Placement("seat label", "POST", holds, {"seats": [payload], "customer": customer}, field="seats[0]")
    yield Placement("second seat label", "POST", holds, {"seats": [seat, payload], "customer": customer},
                    field="seats[1]")
    if not valid_customer(payload):
        yield Placement("hold customer", "POST", holds, {"seats": [seat], "customer": payload}, field="customer")
        yield Placement("waitlist customer", "POST", waitlist, {"count": 1, "customer": payload}, field="customer")
    yield Placement("category", "POST", waitlist, {"count": 1, "customer": customer, "category": payload},
                    field="category")
    yield Placement("payment token", "POST", confirm, {"payment": {"method": "card", "token": payload}},
                    {"Idempotency-Key": "k-1"}, field="payment.token")
    yield Placement("payment method", "POST", confirm, {"payment": {"method": payload, "token": "tok_ok"}},
                    {"Idempotency-Key": "k-1"}, field="payment.method")
    yield Placement("field name", "POST", holds, {"seats": [seat], "customer": customer, payload: 1},
                    field=payload[:50])
    yield Placement("date query", "GET", "/v1/cities/1/movies/1/shows", params={"date": payload}, field="date")
    encoded = quote(payload, safe="")
    for method, path in [("GET", f"/v1/shows/{encoded}"), ("GET", f"/v1/shows/{encoded}/seats"),
                         ("POST", f"/v1/shows/{encoded}/holds"), ("GET", f"/v1/holds/{encoded}"),
                         ("DELETE", f"/v1/holds/{encoded}"), ("POST", f"/v1/holds/{encoded}/confirm"),
                         ("GET", f"/v1/bookings/{encoded}"), ("GET", f"/v1/waitlist/{encoded}"),
                         ("DELETE", f"/v1/waitlist/{encoded}"), ("GET", f"/v1/cities/{encoded}/movies")]:
        body = {"seats": [seat], "customer": customer} if path.endswith("/holds") else pay
        yield Placement("path id", method, path, body if method == "POST" else None, {"Idempotency-Key": "k-1"})


@pytest.fixture
async def scene(client: httpx.AsyncClient, show: ShowRef) -> Scene:
    return await make_scene(client, show)


async def attack(client: httpx.AsyncClient, ctx: Engine, scene: Scene, monkeypatch: pytest.MonkeyPatch,
                 payloads: list[str]) -> int:
    """Every payload in every placement: refused, unreached, unchanged. Returns the count."""
    sent = 0
    async with nothing_changes(ctx, [scene.show_id]):
        with tripwire(ctx, monkeypatch) as wire:
            for payload in payloads:
                for place in placements(scene, payload):
                    answer = await send(client, place)
                    check_refused(answer, place, payload)
                    sent += 1
                if not valid_customer(payload):
                    wire.assert_never_reached(payload)
    return sent


async def send(client: httpx.AsyncClient, place: Placement) -> Any:
    return await client.request(place.method, place.path, json=place.json, headers=place.headers,
                                params=place.params)


def check_refused(answer: Any, place: Placement, payload: str) -> None:
    body = answer.json()
    context = f"{payload[:40]!r} as {place.where} ({place.method} {place.path[:80]}): {answer.status_code} {body}"
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), context
    if place.field is None:
        # A path id: malformed (422), or a path no route has once decoded ("/" in it: 404).
        assert answer.status_code in (404, 422), context
        return
    if answer.status_code == 413:
        assert len(payload) > 10_000 - 100, context
        return
    assert answer.status_code == 422 and body["error"] == "invalid_request", context
    named = {d["field"] for d in body["details"]}
    assert place.field in named, context


async def test_sql_metacharacters_are_refused_and_reach_no_query(client: httpx.AsyncClient, ctx: Engine,
                                                                 scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    assert await attack(client, ctx, scene, monkeypatch, SQL) >= 200


async def test_lua_and_redis_metacharacters_are_refused_and_reach_no_script(
        client: httpx.AsyncClient, ctx: Engine, scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    assert await attack(client, ctx, scene, monkeypatch, LUA_AND_REDIS) >= 300


async def test_unicode_confusables_are_refused(client: httpx.AsyncClient, ctx: Engine, scene: Scene,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert await attack(client, ctx, scene, monkeypatch, CONFUSABLES) >= 200


async def test_nul_and_control_bytes_are_refused(client: httpx.AsyncClient, ctx: Engine, scene: Scene,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert await attack(client, ctx, scene, monkeypatch, NUL_AND_CONTROL) >= 200


async def test_very_long_strings_are_refused(client: httpx.AsyncClient, ctx: Engine, scene: Scene,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert await attack(client, ctx, scene, monkeypatch, LONG) >= 90


async def test_control_bytes_in_headers_are_refused(ctx: Engine, scene: Scene,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes no HTTP client sends in a header (httpx refuses): straight to the app."""
    app = create_app(ctx.settings, engine=ctx)
    body = b'{"payment": {"method": "card", "token": "tok_ok"}}'
    keys = [b"k\x00", b"k\r\nX-Admin: 1", b"\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", b"k'; DROP TABLE idempotency_keys; --",
            b"]]..", b"k" * 8000]
    async with nothing_changes(ctx, [scene.show_id]):
        with tripwire(ctx, monkeypatch) as wire:
            for key in keys:
                answer = await rawasgi.call(app, "POST", f"/v1/holds/{scene.hold_id}/confirm",
                                            [(b"content-type", b"application/json"), (b"idempotency-key", key)],
                                            [body])
                assert answer.status == 422, (key[:40], answer.status, answer.body)
                assert {d["field"] for d in answer.json()["details"]} == {"Idempotency-Key"}
                wire.assert_never_reached(key.decode("latin-1"))


async def test_metacharacters_a_customer_may_use_are_stored_verbatim(
        client: httpx.AsyncClient, ctx: Engine, scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """`%`, `_`, `+`, `/`, `=`, `#`, `:` and `..` are valid in a customer (e-mail local
    parts, opaque references). Bound parameters keep them data: the booking reads back
    exactly, a LIKE-style wildcard matches nobody else's booking, the scene is untouched."""
    customer = "../100%_off+%s/b=c#d:e@example.org"
    with tripwire(ctx, monkeypatch) as wire:
        hold = await client.post(f"/v1/shows/{scene.show_id}/holds", json={"seats": scene.free_seats[:1],
                                                                            "customer": customer})
        assert hold.status_code == 201 and hold.json()["customer"] == customer
        booking = await client.post(f"/v1/holds/{hold.json()['hold_id']}/confirm",
                                    headers={"Idempotency-Key": "w-1"},
                                    json={"payment": {"method": "card", "token": "tok_ok"}})
        assert booking.status_code == 201, booking.text
    # The tripwire's positive control: a valid customer does reach the script and the query.
    assert any(customer in args for _, _, args in wire.scripts)
    assert any(customer in str(parameters) for _, parameters in wire.queries)
    with pytest.raises(AssertionError):
        wire.assert_never_reached(customer)
    again = (await client.get(f"/v1/bookings/{booking.json()['booking_id']}")).json()
    assert again["customer"] == customer and again["seats"] == scene.free_seats[:1]
    theirs = (await client.get(f"/v1/bookings/{scene.booking_id}")).json()
    assert theirs["customer"] == "ana@example.org" and theirs["seats"] == sorted(scene.seat_ids[:2])
