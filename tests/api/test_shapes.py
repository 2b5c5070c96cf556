"""Each contract shape of api/shapes.py against the contract: the fields docs/API.md lists, in
its order, and the schema /openapi.json publishes (required fields, no field it does not
know, types, ids as decimal strings, times RFC 3339 in UTC to the second, nulls where the
contract has them). Pure functions over domain objects: no services needed."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from boxoffice.api import shapes
from boxoffice.api.browse import RenderedAnswers
from boxoffice.api.openapi import SCHEMAS
from boxoffice.engine.admin import ShowReport
from boxoffice.engine.bookings import Booking, Refund
from boxoffice.engine.catalog import Cinema, CinemaShows, City, Hall, Movie, ShowInfo, ShowTime
from boxoffice.engine.holds import Hold
from boxoffice.engine.release_queue import QueueInfo, QueuePass, QueueTicket, ShowWithQueue
from boxoffice.engine.statuses import EntryStatus, HoldStatus, TicketStatus
from boxoffice.engine.waitlist import WaitlistEntry

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
NOW_MS = 1_795_990_400_000  # 2026-11-29T22:13:20Z
STARTS = datetime(2026, 12, 3, 17, 45, 30, 123456, tzinfo=UTC)  # the microseconds never show

HOLD_ID, PAID_HOLD_ID = "H42-" + "a" * 22 + "-" + "b" * 12, "H42-" + "c" * 22 + "-" + "d" * 12
BOOKING_ID, CANCELLED_ID = "bk_" + "a" * 22, "bk_" + "b" * 22
ENTRY_ID, UNKNOWN_TICKET_ID = "W42-" + "a" * 22 + "-" + "b" * 12, "Q42-" + "e" * 22 + "-" + "f" * 12

MOVIE = Movie(7, "Broken Kingdom", 83, "PG-13", date(2026, 11, 11), ("comedy", "romance"))
CINEMA = Cinema(3, "Barcelona Cinema 1", "46 Market Square, Barcelona", 2)
SHOW = ShowInfo(id=42, starts_at=STARTS, status="open", currency="EUR", prices={"standard": 1100, "vip": 1900},
                movie=MOVIE, cinema=CINEMA, hall=Hall(7, "Hall 1", 223))
QUEUED_SHOW = ShowInfo(id=43, starts_at=STARTS, status="closed", currency="EUR", prices={"standard": 1100},
                       movie=MOVIE, cinema=CINEMA, hall=Hall(7, "Hall 1", 223),
                       sale_opens_at=datetime(2026, 12, 1, 18, 0, tzinfo=UTC), queue_order="shuffle_before_open")
HOLD = Hold(HOLD_ID, 42, ["F11", "F12"], "ana@example.org", HoldStatus.ACTIVE, NOW_MS + 299_001, NOW_MS)
PAID_HOLD = Hold(PAID_HOLD_ID, 42, ["F13"], "ben@example.org", HoldStatus.CONFIRMED, NOW_MS - 5_000, NOW_MS,
                 booking_id=BOOKING_ID)
BOOKING = Booking(BOOKING_ID, 42, ["F13"], "ben@example.org", 1100, "EUR", "confirmed",
                  datetime(2026, 11, 29, 22, 0, 1, 999999, tzinfo=UTC), datetime(2026, 12, 3, 15, 45, tzinfo=UTC))
CANCELLED = Booking(CANCELLED_ID, 42, ["F14"], "cai@example.org", 1100, "EUR", "cancelled",
                    datetime(2026, 11, 29, 22, 0, 1, tzinfo=UTC), None, Refund(1100, "EUR", refunded=False))
WAITING = WaitlistEntry(ENTRY_ID, 42, EntryStatus.WAITING, 2, None, 3, eta_s=120)
GRANTED = WaitlistEntry("W42-" + "b" * 22 + "-" + "c" * 12, 42, EntryStatus.GRANTED, 2, "vip", None, hold=HOLD)
FORGOTTEN = WaitlistEntry("W42-" + "e" * 22 + "-" + "f" * 12, 42, EntryStatus.EXPIRED, None, None, None)
ADMITTED = QueueTicket("Q42-" + "a" * 22 + "-" + "b" * 12, 42, "ana@example.org", TicketStatus.ADMITTED, None, None,
                       QueuePass("Pabc", NOW_MS + 600_000, NOW_MS + 1))
QUEUED = QueueTicket("Q42-" + "c" * 22 + "-" + "d" * 12, 42, "ben@example.org", TicketStatus.WAITING, 17, 300, None)
UNKNOWN_TICKET = QueueTicket(UNKNOWN_TICKET_ID, 42, None, TicketStatus.EXPIRED, None, None, None)
REPORT = ShowReport(42, "open", "EUR", seats=124, free=100, held=4, sold=20, waiting=2, queued=0, revenue=31000,
                    refunded=1550, bookings=9, cancelled=1)

HOLD_FIELDS = ["hold_id", "show_id", "seats", "customer", "status", "expires_at", "ttl_s"]
SHOW_FIELDS = ["id", "starts_at", "movie", "cinema", "hall", "prices", "status", "sale_opens_at", "queue"]

# (what, its JSON, the OpenAPI component it answers as, the fields docs/API.md lists, in order)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("city", shapes.city_json(City(1, "Amsterdam", "NL", 2)), SCHEMAS["City"],
     ["id", "name", "country", "cinema_count"]),
    ("movie", shapes.movie_json(MOVIE), SCHEMAS["Movie"],
     ["id", "title", "runtime_min", "rating", "release_date", "genres"]),
    ("show", shapes.show_with_queue_json(ShowWithQueue(SHOW, QueueInfo(False, 0, "arrival"))), SCHEMAS["Show"],
     SHOW_FIELDS),
    ("queued show", shapes.show_with_queue_json(ShowWithQueue(QUEUED_SHOW, QueueInfo(True, 1834, "arrival"))),
     SCHEMAS["Show"], SHOW_FIELDS),
    ("hold", shapes.hold_json(HOLD), SCHEMAS["Hold"], HOLD_FIELDS),
    ("paid hold", shapes.hold_json(PAID_HOLD), SCHEMAS["Hold"], [*HOLD_FIELDS, "booking_id"]),
    ("booking", shapes.booking_json(BOOKING), SCHEMAS["Booking"],
     ["booking_id", "show_id", "seats", "customer", "amount", "currency", "status", "created_at", "cancel_until"]),
    ("cancelled booking", shapes.booking_json(CANCELLED), SCHEMAS["Booking"],
     ["booking_id", "show_id", "seats", "customer", "amount", "currency", "status", "created_at", "refund"]),
    ("joined entry", shapes.joined_entry_json(WAITING), SCHEMAS["WaitlistEntry"],
     ["entry_id", "show_id", "count", "category", "position", "status"]),
    ("entry granted at once", shapes.joined_entry_json(GRANTED), SCHEMAS["WaitlistEntry"],
     ["entry_id", "show_id", "count", "category", "position", "status", "hold"]),
    ("waiting entry", shapes.entry_json(WAITING), SCHEMAS["WaitlistEntry"],
     ["entry_id", "show_id", "status", "count", "category", "position", "eta_s", "hold"]),
    ("granted entry", shapes.entry_json(GRANTED), SCHEMAS["WaitlistEntry"],
     ["entry_id", "show_id", "status", "count", "category", "position", "eta_s", "hold"]),
    # Redis no longer knows it: its count and category are gone with it
    ("forgotten entry", shapes.entry_json(FORGOTTEN), SCHEMAS["WaitlistEntry"],
     ["entry_id", "show_id", "status", "position", "eta_s", "hold"]),
    ("admitted ticket", shapes.ticket_json(ADMITTED), SCHEMAS["QueueTicket"],
     ["ticket_id", "show_id", "customer", "status", "position", "eta_s", "pass"]),
    ("waiting ticket", shapes.ticket_json(QUEUED), SCHEMAS["QueueTicket"],
     ["ticket_id", "show_id", "customer", "status", "position", "eta_s", "pass"]),
    ("unknown ticket", shapes.ticket_json(UNKNOWN_TICKET), SCHEMAS["QueueTicket"],
     ["ticket_id", "show_id", "customer", "status", "position", "eta_s", "pass"]),
    ("created cinema", shapes.created_cinema_json(CINEMA), SCHEMAS["Cinema"], ["id", "city_id", "name", "address"]),
    ("created hall", shapes.created_hall_json(Hall(7, "Hall 1", 223)), SCHEMAS["Hall"], ["id", "seat_count"]),
    ("report", shapes.report_json(REPORT), SCHEMAS["Report"],
     ["show_id", "status", "seats", "free", "held", "sold", "waiting", "queued", "revenue", "refunded", "bookings",
      "cancelled"]),
]


def problems(value: Any, schema: dict[str, Any], at: str = "$") -> list[str]:
    """Where `value` breaks `schema` (the OpenAPI subset /openapi.json uses); a field the schema
    does not know counts too: the service answers only what the contract lists."""
    if "$ref" in schema:
        return problems(value, SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], at)
    if "oneOf" in schema:
        fits = [problems(value, option, at) for option in schema["oneOf"]]
        return [] if [] in fits else [f"{at}: fits no option: {fits}"]
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds or []
    python = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list, "null": type(None)}
    if kinds and not any(isinstance(value, python[k]) and not (k == "integer" and isinstance(value, bool))
                         for k in kinds):
        return [f"{at}: {value!r} is not {kinds}"]
    found: list[str] = []
    if isinstance(value, dict):
        found += [f"{at}.{name}: missing" for name in schema.get("required", []) if name not in value]
        known = schema.get("properties", {})
        for name, item in value.items():
            found += problems(item, known[name], f"{at}.{name}") if name in known else [f"{at}.{name}: unknown"]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += problems(item, schema.get("items", {}), f"{at}[{i}]")
    elif isinstance(value, str):
        if "enum" in schema and value not in schema["enum"]:
            found.append(f"{at}: {value!r} not in {schema['enum']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if schema.get("format") == "date-time" and not TIME.fullmatch(value):
            found.append(f"{at}: {value!r} is not RFC 3339 in UTC to the second")
        if schema.get("format") == "date" and not re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            found.append(f"{at}: {value!r} is not a date")
    elif isinstance(value, int) and "minimum" in schema and value < schema["minimum"]:
        found.append(f"{at}: {value} < {schema['minimum']}")
    return found


@pytest.mark.parametrize(("what", "body", "schema", "fields"), CASES, ids=[case[0] for case in CASES])
def test_each_shape_has_the_contracts_fields_in_its_order_and_fits_the_published_schema(
        what: str, body: dict[str, Any], schema: dict[str, Any], fields: list[str]) -> None:
    assert list(body) == fields, what
    assert problems(body, schema) == [], what
    orjson.dumps(body)  # JSON as it is: no value orjson would have to guess about


def test_the_values_are_written_as_the_contract_writes_them() -> None:
    show = shapes.show_with_queue_json(ShowWithQueue(QUEUED_SHOW, QueueInfo(True, 1834, "arrival")))
    assert show["starts_at"] == "2026-12-03T17:45:30Z" and show["sale_opens_at"] == "2026-12-01T18:00:00Z"
    assert show["movie"] == {"id": "7", "title": "Broken Kingdom", "runtime_min": 83, "rating": "PG-13",
                             "release_date": "2026-11-11", "genres": ["comedy", "romance"]}
    assert show["cinema"] == {"id": "3", "name": "Barcelona Cinema 1", "address": "46 Market Square, Barcelona",
                              "city_id": "2"}
    assert show["hall"] == {"id": "7", "name": "Hall 1", "seat_count": 223}
    assert show["prices"] == [{"category": "standard", "amount": 1100, "currency": "EUR"}]
    assert show["queue"] == {"active": True, "length": 1834, "order": "arrival"}
    on_sale = shapes.show_with_queue_json(ShowWithQueue(SHOW, QueueInfo(False, 0, "arrival")))
    assert on_sale["sale_opens_at"] is None
    assert [p["category"] for p in on_sale["prices"]] == ["standard", "vip"]  # the catalog's order: cheapest first

    hold = shapes.hold_json(HOLD)
    assert (hold["show_id"], hold["expires_at"], hold["ttl_s"]) == ("42", "2026-11-29T22:18:19Z", 300)
    assert shapes.hold_json(PAID_HOLD)["ttl_s"] == 0  # only an active hold has time left
    booking = shapes.booking_json(BOOKING)
    assert (booking["created_at"], booking["cancel_until"]) == ("2026-11-29T22:00:01Z", "2026-12-03T15:45:00Z")
    assert shapes.booking_json(CANCELLED)["refund"] == {"amount": 1100, "currency": "EUR", "status": "pending"}

    waiting = shapes.entry_json(WAITING)
    assert (waiting["category"], waiting["position"], waiting["eta_s"], waiting["hold"]) == (None, 3, 120, None)
    assert shapes.entry_json(GRANTED)["hold"] == hold
    assert shapes.joined_entry_json(GRANTED)["hold"] == hold
    assert "hold" not in shapes.joined_entry_json(WAITING)

    admitted = shapes.ticket_json(ADMITTED)
    assert admitted["pass"] == {"token": "Pabc", "expires_at": "2026-11-29T22:23:20Z", "ttl_s": 600}
    assert shapes.ticket_json(UNKNOWN_TICKET) == {"ticket_id": UNKNOWN_TICKET_ID, "show_id": "42", "customer": None,
                                                  "status": "expired", "position": None, "eta_s": None, "pass": None}

    report = shapes.report_json(REPORT)
    assert report["revenue"] == {"amount": 31000, "currency": "EUR"}
    assert report["refunded"] == {"amount": 1550, "currency": "EUR"}


def test_the_browse_lists_wrap_their_items_as_the_contract_names_them() -> None:
    cities = shapes.cities_json([City(1, "Amsterdam", "NL", 2)])
    assert cities == {"cities": [shapes.city_json(City(1, "Amsterdam", "NL", 2))]}
    assert shapes.movies_json([MOVIE]) == {"movies": [shapes.movie_json(MOVIE)]}
    shows = (ShowTime(42, STARTS, 7, "Hall 1", 211), ShowTime(43, STARTS, 8, "Hall 2", 0))
    body = shapes.cinemas_json([CinemaShows(CINEMA, shows)])
    assert list(body) == ["cinemas"] and list(body["cinemas"][0]) == ["id", "name", "address", "shows"]
    assert problems(body["cinemas"][0], SCHEMAS["CinemaShows"]) == []
    first = body["cinemas"][0]["shows"][0]
    assert first == {"id": "42", "starts_at": "2026-12-03T17:45:30Z", "hall": {"id": "7", "name": "Hall 1"},
                     "available": 211}
    assert list(first) == ["id", "starts_at", "hall", "available"]


def test_browse_renders_a_cached_value_once_and_a_new_value_afresh() -> None:
    rendered = RenderedAnswers(max_items=2)
    calls: list[object] = []

    def shape(value: tuple[City, ...]) -> dict[str, Any]:
        calls.append(value)
        return shapes.cities_json(value)

    cached = (City(1, "Amsterdam", "NL", 2),)
    first = rendered.render("cities", cached, shape)
    assert rendered.render("cities", cached, shape) is first and len(calls) == 1
    reloaded = (City(1, "Amsterdam", "NL", 3),)  # the catalog's cache time passed: a new value
    assert orjson.loads(rendered.render("cities", reloaded, shape))["cities"][0]["cinema_count"] == 3
    assert len(calls) == 2
    assert first == orjson.dumps(shapes.cities_json(cached))


def test_browse_answers_a_show_as_show_with_queue_json_writes_it() -> None:
    from boxoffice.api.browse import spliced_show

    for show, queue in ((SHOW, QueueInfo(False, 0, "arrival")), (QUEUED_SHOW, QueueInfo(True, 1834, "arrival"))):
        parts = orjson.dumps(shapes.show_json(show)), orjson.dumps(shapes.queue_json(queue))
        whole = orjson.dumps(shapes.show_with_queue_json(ShowWithQueue(show, queue)))
        assert spliced_show(*parts) == whole
