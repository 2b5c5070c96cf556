"""The OpenAPI 3.1 document of docs/API.md, served at GET /openapi.json. Exact enough
for schemathesis (tests/hostile/test_schemathesis.py) to hold every answer to it: each status an
operation can answer, the error codes each status carries, ids and the headers
(Retry-After) a client relies on."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from boxoffice.api import validation as rules
from boxoffice.api.errors import TABLE as error_table
from boxoffice.engine import ids
from boxoffice.engine.limits import (
    MAX_CUSTOMER_LENGTH,
    MAX_HALL_SEATS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_SEATS_PER_HOLD,
    MAX_WAITLIST_COUNT,
    SEAT_CATEGORIES,
    SEAT_KINDS,
)
from boxoffice.engine.statuses import EntryStatus, HoldStatus, SeatStatus, TicketStatus


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def array(items: dict[str, Any], **limits: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **limits}


STR = {"type": "string"}
INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_INT = {"type": ["integer", "null"]}


def whole(pattern: re.Pattern[str] | str) -> str:
    """An api/validation.py (or engine/ids.py) pattern, anchored as JSON Schema needs."""
    return "^" + (pattern.pattern if isinstance(pattern, re.Pattern) else pattern) + "$"


def matching(pattern: re.Pattern[str] | str, **limits: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": whole(pattern), **limits}


def one_of(values: Iterable[str]) -> dict[str, Any]:
    return {"type": "string", "enum": [str(value) for value in values]}


# The patterns api/validation.py enforces, taken from it.
NUMERIC_ID = matching(rules.NUMERIC_ID)
OPAQUE_ID = matching(rules.OPAQUE_ID)
SEAT_ID = matching(rules.SEAT_ID)
CUSTOMER = matching(rules.CUSTOMER, minLength=1, maxLength=MAX_CUSTOMER_LENGTH)
CATEGORY = matching(rules.CATEGORY)
IDEMPOTENCY_KEY = matching(rules.IDEMPOTENCY_KEY)
# Optional on holds and joins: the same key, customer and show name the same hold or entry.
OPTIONAL_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "schema": matching(rules.KEY_CHARACTER
                                   + f"{{{rules.MIN_CREATION_KEY_LENGTH},{MAX_IDEMPOTENCY_KEY_LENGTH}}}")}
TOKEN = matching(rules.TOKEN)
# What the service hands out (engine/ids.py): H hold, G hold granted to a waitlist entry,
# W waitlist entry, bk_ booking; 128 random bits each.
HOLD_ID = matching("[HG]" + ids.ID_AFTER_KIND)
ENTRY_ID = matching("W" + ids.ID_AFTER_KIND)
BOOKING_ID = matching(ids.BOOKING_PATTERN)
TICKET_ID = matching("Q" + ids.ID_AFTER_KIND)
# A release queue pass (docs/API.md, "Release queue"): needed by holds and joins while a queue runs.
# Any value is read, never refused for its shape: a token-shaped one is checked inside the hold
# or join script while a queue runs, anything else counts as no pass (403 pass_required then).
QUEUE_PASS = {"name": "X-Queue-Pass", "in": "header", "required": False, "schema": STR,
              "description": f"the pass of an admitted ticket, shaped {whole(ids.PASS_PATTERN)}; any other "
                             "value counts as no pass"}


def codes_by_status() -> dict[str, list[str]]:
    """The error codes each status carries: api/errors.py's table, grouped."""
    out: dict[str, list[str]] = {}
    for status, code in sorted(set(error_table.values())):
        out.setdefault(str(status), []).append(code)
    return out


ERROR_CODES = codes_by_status()
# Answered by api/shedding.py before any engine call, so in no table row.
ERROR_CODES["503"].append("overloaded")
DESCRIPTIONS = {
    "401": "the admin token is missing or wrong",
    "402": "the payment was declined; nothing was booked", "404": "no such resource",
    "403": "the show sells through its release queue: a valid X-Queue-Pass is needed",
    "409": "a conflict with the current state", "410": "the hold has expired",
    "413": "the request body is larger than BOXOFFICE_MAX_BODY_BYTES",
    "422": "the request is not valid; details name each bad field",
    "429": "an abuse limit or the 10-seat customer limit",
    "503": "a dependency (Redis, PostgreSQL, the payment provider) is unavailable, or the process is at "
           "BOXOFFICE_MAX_IN_FLIGHT (overloaded)",
}
RETRY_AFTER = {"schema": {"type": "string", "pattern": "^[0-9]+$"},
               "description": "seconds to wait before trying again"}
# Rate limits answer Retry-After; the 10-seat customer limit has no time to name.
HEADERS = {"401": {"WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}, "required": True}},
           "429": {"Retry-After": {**RETRY_AFTER, "required": False}},
           "503": {"Retry-After": {**RETRY_AFTER, "required": True}}}


# A waiting queue ticket's answers say when to read it again (engine/release_queue.refresh_after_s).
QUEUE_REFRESH = {"X-Queue-Refresh-After": {
    "schema": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}, "required": False,
    "description": "while the ticket waits: seconds after which it is worth reading again"}}


def with_headers(answers: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    for entry in answers.values():
        entry["headers"] = headers
    return answers


def answer(status: str, schema: dict[str, Any] | None, description: str,
           media_type: str = "application/json") -> dict[str, Any]:
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {media_type: {"schema": schema}}}}


def error_schema(status: str) -> dict[str, Any]:
    narrowed = obj([], error={"type": "string", "enum": ERROR_CODES[status]})
    if status == "422":
        narrowed["required"] = ["details"]
    return {"allOf": [ref("Error"), narrowed]}


def errors(*statuses: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        out.update(answer(status, error_schema(status), DESCRIPTIONS[status]))
        if status in HEADERS:
            out[status]["headers"] = HEADERS[status]
    return out


def path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def get(summary: str, ok: dict[str, Any], *statuses: str, params: list[Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**ok, **errors(*statuses)}}
    if params:
        operation["parameters"] = params
    return operation


SHOW_ID = path_param("show_id", NUMERIC_ID)
# The admin API's bodies (api/validation.py checks the same, and what no schema can say:
# unique labels, no two seats on one place, a hall free at the show's time).
VISIBLE, ANY = "[^\\s\\x00-\\x1f\\x7f]", "[^\\x00-\\x1f\\x7f]"  # no control characters, trimmed
NAME = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": f"^{VISIBLE}({ANY}*{VISIBLE})?$"}
ID_IN_BODY = {"oneOf": [NUMERIC_ID, {"type": "integer", "minimum": 1, "maximum": 10**18 - 1}]}
RFC3339 = {"type": "string", "format": "date-time"}
PRICE = {**obj(["category", "amount", "currency"], category=one_of(SEAT_CATEGORIES),
               amount={"type": "integer", "minimum": 0, "maximum": 1_000_000},
               currency=matching(rules.CURRENCY)), "additionalProperties": False}
ADMIN_SCHEMAS: dict[str, Any] = {
    "CityRequest": {**obj(["name", "country"], name=NAME, country=matching(rules.COUNTRY)),
                    "additionalProperties": False},
    "CinemaRequest": {**obj(["city_id", "name", "address"], city_id=ID_IN_BODY, name=NAME,
                            address={**NAME, "maxLength": 200}), "additionalProperties": False},
    "Cinema": obj(["id", "city_id", "name", "address"], id=NUMERIC_ID, city_id=NUMERIC_ID, name=STR, address=STR),
    "HallRequest": {**obj(["cinema_id", "name", "seats"], cinema_id=ID_IN_BODY, name={**NAME, "maxLength": 50},
                          seats=array({**obj(["id", "row", "number", "x", "y", "category"], id=SEAT_ID,
                                             row=matching(rules.ROW_LABEL),
                                             number={"type": "integer", "minimum": 1, "maximum": 999},
                                             x={"type": "integer", "minimum": 0, "maximum": 10_000},
                                             y={"type": "integer", "minimum": 0, "maximum": 10_000},
                                             category=one_of(SEAT_CATEGORIES),
                                             kind=one_of(SEAT_KINDS)),
                                       "additionalProperties": False}, minItems=1, maxItems=MAX_HALL_SEATS)),
                    "additionalProperties": False},
    "Hall": obj(["id", "seat_count"], id=NUMERIC_ID, seat_count={"type": "integer", "minimum": 1}),
    "MovieRequest": {**obj(["title", "runtime_min", "rating", "release_date"], title={**NAME, "maxLength": 200},
                           runtime_min={"type": "integer", "minimum": 1, "maximum": 600},
                           rating={**NAME, "maxLength": 10},
                           release_date={"type": "string", "format": "date",
                                         "pattern": whole(rules.DATE)},
                           genres=array(matching(rules.GENRE), maxItems=10)),
                     "additionalProperties": False},
    "ShowRequest": {**obj(["hall_id", "movie_id", "starts_at", "prices"], hall_id=ID_IN_BODY, movie_id=ID_IN_BODY,
                          starts_at=RFC3339, prices=array(PRICE, minItems=1, maxItems=len(SEAT_CATEGORIES)),
                          sale_opens_at={"oneOf": [RFC3339, {"type": "null"}]},
                          queue_order=one_of(rules.QUEUE_ORDERS)),
                    "additionalProperties": False},
    "CloseRequest": {**obj([], reason={**NAME, "maxLength": 200}), "additionalProperties": False},
    "Report": obj(["show_id", "seats", "free", "held", "sold", "waiting", "queued", "revenue", "refunded",
                   "bookings", "cancelled"], show_id=NUMERIC_ID, status={"type": "string", "enum": ["open", "closed"]},
                  seats=COUNT, free=COUNT, held=COUNT, sold=COUNT, waiting=COUNT, queued=COUNT,
                  revenue=obj(["amount", "currency"], amount=COUNT, currency=STR),
                  refunded=obj(["amount", "currency"], amount=COUNT, currency=STR), bookings=COUNT, cancelled=COUNT),
}
BEARER = [{"bearer": []}]


def admin(summary: str, ok: dict[str, Any], request: str | None, *statuses: str,
          params: list[Any] | None = None) -> dict[str, Any]:
    """An admin operation: 401 without a good token, 404 for every request while
    BOXOFFICE_ADMIN_TOKEN is unset."""
    operation = get(summary, ok, "401", "404", "413", "422", "503", *statuses, params=params)
    operation["security"] = BEARER
    if request:
        operation["requestBody"] = body(ref(request))
    return operation
PLACE = obj(["id", "name"], id=NUMERIC_ID, name=STR)

SCHEMAS: dict[str, Any] = {
    "Error": {**obj(["error", "message"], error=STR, message=STR,
                    details=array(obj(["field", "problem"], field=STR, problem=STR)),
                    unavailable=array(STR), waitlist=obj(["possible", "length"], possible={"type": "boolean"},
                                                         length=COUNT),
                    status=STR, limit=INT, retry_after_s=INT,
                    dependency={"type": "string", "enum": ["redis", "database"]}),
              "additionalProperties": True},
    "City": obj(["id", "name", "country", "cinema_count"], id=NUMERIC_ID, name=STR, country=STR,
                cinema_count=COUNT),
    "Movie": obj(["id", "title", "runtime_min", "rating", "release_date", "genres"], id=NUMERIC_ID, title=STR,
                 runtime_min=COUNT, rating=STR, release_date={"type": "string", "format": "date"},
                 genres=array(STR)),
    "ShowTime": obj(["id", "starts_at", "hall", "available"], id=NUMERIC_ID, starts_at=TIME, hall=PLACE,
                    available=COUNT),
    "CinemaShows": obj(["id", "name", "address", "shows"], id=NUMERIC_ID, name=STR, address=STR,
                       shows=array(ref("ShowTime"))),
    "Show": obj(["id", "starts_at", "movie", "cinema", "hall", "prices", "status"], id=NUMERIC_ID, starts_at=TIME,
                movie=ref("Movie"),
                cinema=obj(["id", "name", "address", "city_id"], id=NUMERIC_ID, name=STR, address=STR,
                           city_id=NUMERIC_ID),
                hall=obj(["id", "name", "seat_count"], id=NUMERIC_ID, name=STR, seat_count=COUNT),
                prices=array(obj(["category", "amount", "currency"], category=STR, amount=COUNT,
                                 currency=matching(rules.CURRENCY))),
                status={"type": "string", "enum": ["open", "closed"]},
                sale_opens_at={"type": ["string", "null"], "format": "date-time"},
                queue=obj(["active", "length", "order"], active={"type": "boolean"}, length=COUNT,
                          order={"type": "string", "enum": ["arrival", "shuffle_before_open"]})),
    "QueueRequest": {**obj(["customer"], customer=CUSTOMER), "additionalProperties": False},
    "QueueTicket": obj(["ticket_id", "show_id", "customer", "status", "position", "eta_s", "pass"],
                       ticket_id=TICKET_ID, show_id=NUMERIC_ID, customer={"type": ["string", "null"]},
                       status=one_of(TicketStatus),
                       position=NULLABLE_INT, eta_s=NULLABLE_INT,
                       **{"pass": {"oneOf": [obj(["token", "expires_at", "ttl_s"], token=STR, expires_at=TIME,
                                                 ttl_s=COUNT), {"type": "null"}]}}),
    "Counts": obj(["available", "held", "booked"], available=COUNT, held=COUNT, booked=COUNT),
    "Seat": obj(["id", "row", "number", "category", "x", "y", "status"], id=SEAT_ID, row=STR, number=INT,
                category=STR, kind=one_of(SEAT_KINDS),
                x=INT, y=INT, status=one_of(SeatStatus)),
    "SeatMap": obj(["show_id", "seats", "counts"], show_id=NUMERIC_ID, seats=array(ref("Seat")),
                   counts=ref("Counts")),
    "SeatCounts": obj(["show_id", "counts"], show_id=NUMERIC_ID, counts=ref("Counts")),
    # Exactly one of the two: the seats named, or how many of the best ones (best available).
    "HoldRequest": {"oneOf": [ref("SeatsHoldRequest"), ref("BestHoldRequest")]},
    "SeatsHoldRequest": {**obj(["seats", "customer"],
                               seats=array(SEAT_ID, minItems=1, maxItems=MAX_SEATS_PER_HOLD, uniqueItems=True),
                               customer=CUSTOMER), "additionalProperties": False},
    "BestHoldRequest": {**obj(["count", "customer"],
                              count={"type": "integer", "minimum": 1, "maximum": MAX_SEATS_PER_HOLD},
                              customer=CUSTOMER, category=CATEGORY,
                              kind=one_of(SEAT_KINDS),
                              together={"type": "boolean"}), "additionalProperties": False},
    "Hold": obj(["hold_id", "show_id", "seats", "customer", "status", "expires_at", "ttl_s"], hold_id=HOLD_ID,
                show_id=NUMERIC_ID, seats=array(STR), customer=STR,
                status=one_of(HoldStatus),
                expires_at=TIME, ttl_s=COUNT, booking_id=BOOKING_ID),
    "ConfirmRequest": {**obj(["payment"], payment={**obj(["method", "token"],
                                                         method={"type": "string", "enum": ["card"]},
                                                         token=TOKEN),
                                                   "additionalProperties": False}),
                       "additionalProperties": False},
    "Booking": obj(["booking_id", "show_id", "seats", "customer", "amount", "currency", "status",
                    "created_at"], booking_id=BOOKING_ID, show_id=NUMERIC_ID, seats=array(SEAT_ID),
                   customer=STR, amount=COUNT, currency=matching(rules.CURRENCY),
                   status={"type": "string", "enum": ["confirmed", "cancelled"]}, created_at=TIME,
                   cancel_until=TIME,
                   refund=obj(["amount", "currency", "status"], amount=COUNT, currency=STR,
                              status={"type": "string", "enum": ["pending", "refunded"]})),
    "WaitlistRequest": {**obj(["count", "customer"],
                              count={"type": "integer", "minimum": 1, "maximum": MAX_WAITLIST_COUNT},
                              customer=CUSTOMER, category=CATEGORY),
                        "additionalProperties": False},
    "WaitlistEntry": obj(["entry_id", "status", "position"], entry_id=ENTRY_ID, show_id=NUMERIC_ID,
                         count={"type": "integer", "minimum": 1, "maximum": MAX_WAITLIST_COUNT},
                         category={"type": ["string", "null"]},
                         status=one_of(EntryStatus),
                         position=NULLABLE_INT, eta_s=NULLABLE_INT,
                         hold={"oneOf": [ref("Hold"), {"type": "null"}]}),
    **ADMIN_SCHEMAS,
    "Health": obj(["status", "checks"], status={"type": "string", "enum": ["ok", "unavailable"]},
                  checks={"type": "object", "additionalProperties": {"type": "string", "enum": ["ok", "down"]}}),
}

SSE = answer("200", STR, "Server-Sent Events: `data:` lines of JSON, `: keepalive` comments",
             media_type="text/event-stream")

PATHS: dict[str, Any] = {
    "/": {"get": {"summary": "The seat-picking web page",
                  "responses": answer("200", STR, "the page", media_type="text/html")}},
    "/v1/cities": {"get": get("Cities with affiliate cinemas",
                              answer("200", obj(["cities"], cities=array(ref("City"))), "ok"), "413", "503")},
    "/v1/cities/{city_id}/movies": {"get": get(
        "Movies with an upcoming show in the city",
        answer("200", obj(["movies"], movies=array(ref("Movie"))), "ok"), "404", "413", "422", "503",
        params=[path_param("city_id", NUMERIC_ID)])},
    "/v1/cities/{city_id}/movies/{movie_id}/shows": {"get": get(
        "Cinemas of the city running the movie, with show times",
        answer("200", obj(["cinemas"], cinemas=array(ref("CinemaShows"))), "ok"), "404", "413", "422", "503",
        params=[path_param("city_id", NUMERIC_ID), path_param("movie_id", NUMERIC_ID),
                {"name": "date", "in": "query", "required": False,
                 "schema": {"type": "string", "format": "date", "pattern": whole(rules.DATE)}}])},
    "/v1/shows/{show_id}": {"get": get("A show", answer("200", ref("Show"), "ok"), "404", "413", "422", "503",
                                       params=[SHOW_ID])},
    "/v1/shows/{show_id}/seats": {"get": get(
        "The seating plan with each seat's status", answer("200", ref("SeatMap"), "ok"),
        "404", "413", "422", "503", params=[SHOW_ID])},
    "/v1/shows/{show_id}/seats/counts": {"get": get(
        "How many seats are available, held and booked (the seat map's counts alone)",
        answer("200", ref("SeatCounts"), "ok"), "404", "413", "422", "503", params=[SHOW_ID])},
    "/v1/shows/{show_id}/seats/events": {"get": get(
        "Live seat map (SSE): the whole map, then changes", SSE, "404", "413", "422", "503", params=[SHOW_ID])},
    "/v1/shows/{show_id}/holds": {"post": {
        "summary": "Hold seats, all or nothing, for the hold time: the seats named, or the best free ones",
        "parameters": [SHOW_ID, OPTIONAL_KEY, QUEUE_PASS], "requestBody": body(ref("HoldRequest")),
        "responses": {**answer("201", ref("Hold"), "held"),
                      **errors("403", "404", "409", "413", "422", "429", "503")}}},
    "/v1/holds/{hold_id}": {
        "get": get("A hold", answer("200", ref("Hold"), "ok"), "404", "413", "422", "503",
                   params=[path_param("hold_id", OPAQUE_ID)]),
        "delete": get("Release an active hold", answer("204", None, "released"), "404", "409", "413", "422", "503",
                      params=[path_param("hold_id", OPAQUE_ID)])},
    "/v1/holds/{hold_id}/confirm": {"post": {
        "summary": "Pay and book",
        "parameters": [path_param("hold_id", OPAQUE_ID),
                       {"name": "Idempotency-Key", "in": "header", "required": True, "schema": IDEMPOTENCY_KEY}],
        "requestBody": body(ref("ConfirmRequest")),
        "responses": {**answer("201", ref("Booking"), "booked"),
                      **errors("402", "404", "409", "410", "413", "422", "503")}}},
    "/v1/bookings/{booking_id}": {"get": get(
        "A booking", answer("200", ref("Booking"), "ok"), "404", "413", "422", "503",
        params=[path_param("booking_id", OPAQUE_ID)])},
    "/v1/shows/{show_id}/waitlist": {"post": {
        "summary": "Wait for seats held by others (first come, first served)",
        "parameters": [SHOW_ID, OPTIONAL_KEY, QUEUE_PASS], "requestBody": body(ref("WaitlistRequest")),
        "responses": {**answer("201", ref("WaitlistEntry"), "queued"),
                      **errors("403", "404", "409", "413", "422", "429", "503")}}},
    "/v1/shows/{show_id}/queue": {"post": {
        "summary": "Join the show's release queue (fair access at the opening of sales)",
        "parameters": [SHOW_ID, OPTIONAL_KEY], "requestBody": body(ref("QueueRequest")),
        "responses": {**with_headers(answer("201", ref("QueueTicket"), "joined"), QUEUE_REFRESH),
                      **errors("404", "409", "413", "422", "429", "503")}}},
    "/v1/queue/{ticket_id}": {
        "get": get("A queue ticket with position, eta and pass",
                   with_headers(answer("200", ref("QueueTicket"), "ok"), QUEUE_REFRESH),
                   "404", "413", "422", "503", params=[path_param("ticket_id", OPAQUE_ID)]),
        "delete": get("Leave the release queue", answer("204", None, "left"), "404", "409", "413", "422", "503",
                      params=[path_param("ticket_id", OPAQUE_ID)])},
    "/v1/queue/{ticket_id}/events": {"get": get(
        "Live queue ticket (SSE)", SSE, "404", "413", "422", "503", params=[path_param("ticket_id", OPAQUE_ID)])},
    "/v1/waitlist/{entry_id}": {
        "get": get("A waitlist entry with position and eta", answer("200", ref("WaitlistEntry"), "ok"),
                   "404", "413", "422", "503", params=[path_param("entry_id", OPAQUE_ID)]),
        "delete": get("Leave the queue", answer("204", None, "left"), "404", "409", "413", "422", "503",
                      params=[path_param("entry_id", OPAQUE_ID)])},
    "/v1/waitlist/{entry_id}/events": {"get": get(
        "Live waitlist entry (SSE)", SSE, "404", "413", "422", "503", params=[path_param("entry_id", OPAQUE_ID)])},
    "/v1/bookings/{booking_id}/cancel": {"post": {
        "summary": "Cancel a booking and refund it (until BOXOFFICE_CANCEL_CUTOFF_S before the show)",
        "parameters": [path_param("booking_id", OPAQUE_ID),
                       {"name": "Idempotency-Key", "in": "header", "required": True, "schema": IDEMPOTENCY_KEY}],
        "responses": {**answer("200", ref("Booking"), "cancelled (now or before)"),
                      **errors("404", "409", "413", "422", "503")}}},
    "/v1/admin/cities": {"post": admin("Create a city", answer("201", ref("City"), "created"), "CityRequest")},
    "/v1/admin/cinemas": {"post": admin("Create a cinema", answer("201", ref("Cinema"), "created"),
                                        "CinemaRequest")},
    "/v1/admin/halls": {"post": admin("Create a hall with its seat plan", answer("201", ref("Hall"), "created"),
                                      "HallRequest")},
    "/v1/admin/movies": {"post": admin("Create a movie", answer("201", ref("Movie"), "created"), "MovieRequest")},
    "/v1/admin/shows": {"post": admin("Create a show", answer("201", ref("Show"), "created"), "ShowRequest")},
    "/v1/admin/shows/{show_id}/close": {"post": {
        **admin("Close a show's sale (idempotent)", answer("200", ref("Show"), "closed"), None, params=[SHOW_ID]),
        "requestBody": {"required": False, "content": {"application/json": {"schema": ref("CloseRequest")}}}}},
    "/v1/admin/shows/{show_id}/report": {"get": admin("A show's sales", answer("200", ref("Report"), "ok"), None,
                                                      params=[SHOW_ID])},
    "/healthz": {"get": {"summary": "Health of Redis and the database",
                         "responses": {**answer("200", ref("Health"), "healthy"),
                                       "503": {**answer("503", ref("Health"), "a dependency is down")["503"],
                                               "headers": HEADERS["503"]}}}},
    "/metrics": {"get": {"summary": "Prometheus metrics",
                         "responses": answer("200", STR, "text exposition format", media_type="text/plain")}},
    "/openapi.json": {"get": {"summary": "This document",
                              "responses": answer("200", {"type": "object"}, "the OpenAPI document")}},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "boxoffice", "version": "1.0.0",
             "description": "Movie-ticket booking: all-or-nothing holds, fair waitlist, ACID sales."},
    "paths": PATHS,
    "components": {"schemas": SCHEMAS,
                   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                  "description": "BOXOFFICE_ADMIN_TOKEN (admin routes only)"}}},
}
