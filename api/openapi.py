"""The OpenAPI 3.1 document of shared/API.md, served at GET /openapi.json."""

from __future__ import annotations

from typing import Any


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


STR = {"type": "string"}
INT = {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
NUMERIC_ID = {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}
OPAQUE_ID = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,80}$"}
SEAT_ID = {"type": "string", "pattern": "^[A-Z]{1,3}[1-9][0-9]{0,2}$"}
CUSTOMER = {"type": "string", "pattern": "^[A-Za-z0-9._%+\\-@:/#=]{1,254}$", "maxLength": 254}

ERROR_CODES = {
    "402": "payment_declined", "404": "not_found", "409": "conflict (seats_unavailable, hold_not_active, "
    "no_chance, show_closed, already_waiting, entry_not_waiting)", "410": "hold_expired",
    "413": "payload_too_large", "422": "invalid_request", "429": "limit_exceeded", "503": "unavailable",
}


def answer(status: str, schema: dict[str, Any] | None, description: str) -> dict[str, Any]:
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {"application/json": {"schema": schema}}}}


def errors(*statuses: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in statuses:
        out.update(answer(status, ref("Error"), ERROR_CODES[status]))
    return out


def path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SCHEMAS: dict[str, Any] = {
    "Error": {**obj(["error", "message"], error=STR, message=STR,
                    details={"type": "array", "items": obj(["field", "problem"], field=STR, problem=STR)}),
              "additionalProperties": True},
    "City": obj(["id", "name", "country", "cinema_count"], id=STR, name=STR, country=STR, cinema_count=INT),
    "Movie": obj(["id", "title", "runtime_min", "rating", "release_date", "genres"], id=STR, title=STR,
                 runtime_min=INT, rating=STR, release_date={"type": "string", "format": "date"},
                 genres={"type": "array", "items": STR}),
    "ShowTime": obj(["id", "starts_at", "hall", "available"], id=STR, starts_at=TIME,
                    hall=obj(["id", "name"], id=STR, name=STR), available=INT),
    "CinemaShows": obj(["id", "name", "address", "shows"], id=STR, name=STR, address=STR,
                       shows={"type": "array", "items": ref("ShowTime")}),
    "Show": obj(["id", "starts_at", "movie", "cinema", "hall", "prices", "status"], id=STR, starts_at=TIME,
                movie=ref("Movie"), cinema=obj(["id", "name", "address"], id=STR, name=STR, address=STR),
                hall=obj(["id", "name"], id=STR, name=STR),
                prices={"type": "array", "items": obj(["category", "amount", "currency"], category=STR,
                                                      amount=INT, currency=STR)},
                status={"type": "string", "enum": ["open", "closed"]}),
    "Counts": obj(["available", "held", "booked"], available=INT, held=INT, booked=INT),
    "Seat": obj(["id", "row", "number", "category", "x", "y", "status"], id=STR, row=STR, number=INT,
                category=STR, kind={"type": "string", "enum": ["standard", "wheelchair", "companion"]},
                x=INT, y=INT, status={"type": "string", "enum": ["available", "held", "booked"]}),
    "SeatMap": obj(["show_id", "seats", "counts"], show_id=STR, seats={"type": "array", "items": ref("Seat")},
                   counts=ref("Counts")),
    "HoldRequest": {**obj(["seats", "customer"],
                          seats={"type": "array", "items": SEAT_ID, "minItems": 1, "maxItems": 10},
                          customer=CUSTOMER), "additionalProperties": False},
    "Hold": obj(["hold_id", "show_id", "seats", "customer", "status", "expires_at", "ttl_s"], hold_id=STR,
                show_id=STR, seats={"type": "array", "items": STR}, customer=STR,
                status={"type": "string", "enum": ["active", "expired", "released", "confirmed"]},
                expires_at=TIME, ttl_s=INT, booking_id=STR),
    "ConfirmRequest": {**obj(["payment"], payment={**obj(["method", "token"],
                                                         method={"type": "string", "enum": ["card"]},
                                                         token={"type": "string",
                                                                "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
                                                   "additionalProperties": False}),
                       "additionalProperties": False},
    "Booking": obj(["booking_id", "show_id", "seats", "customer", "amount", "currency", "status",
                    "created_at"], booking_id=STR, show_id=STR, seats={"type": "array", "items": STR},
                   customer=STR, amount=INT, currency=STR, status=STR, created_at=TIME),
    "WaitlistRequest": {**obj(["count", "customer"], count={"type": "integer", "minimum": 1, "maximum": 10},
                              customer=CUSTOMER,
                              category={"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"}),
                        "additionalProperties": False},
    "WaitlistEntry": obj(["entry_id", "status", "position"], entry_id=STR, show_id=STR, count=INT,
                         category={"type": ["string", "null"]},
                         status={"type": "string",
                                 "enum": ["waiting", "granted", "impossible", "cancelled", "expired"]},
                         position={"type": ["integer", "null"]}, eta_s={"type": ["integer", "null"]},
                         hold={"oneOf": [ref("Hold"), {"type": "null"}]}),
    "Health": obj(["status", "checks"], status=STR, checks={"type": "object"}),
}

SSE = {"200": {"description": "Server-Sent Events", "content": {"text/event-stream": {"schema": STR}}}}

PATHS: dict[str, Any] = {
    "/v1/cities": {"get": {"summary": "Cities with affiliate cinemas",
                           "responses": answer("200", obj(["cities"], cities={"type": "array",
                                                                              "items": ref("City")}), "ok")}},
    "/v1/cities/{city_id}/movies": {"get": {
        "summary": "Movies with an upcoming show in the city",
        "parameters": [path_param("city_id", NUMERIC_ID)],
        "responses": {**answer("200", obj(["movies"], movies={"type": "array", "items": ref("Movie")}), "ok"),
                      **errors("404", "422")}}},
    "/v1/cities/{city_id}/movies/{movie_id}/shows": {"get": {
        "summary": "Cinemas of the city running the movie, with show times",
        "parameters": [path_param("city_id", NUMERIC_ID), path_param("movie_id", NUMERIC_ID),
                       {"name": "date", "in": "query", "required": False,
                        "schema": {"type": "string", "format": "date"}}],
        "responses": {**answer("200", obj(["cinemas"], cinemas={"type": "array", "items": ref("CinemaShows")}),
                               "ok"), **errors("404", "422")}}},
    "/v1/shows/{show_id}": {"get": {"summary": "A show", "parameters": [path_param("show_id", NUMERIC_ID)],
                                    "responses": {**answer("200", ref("Show"), "ok"), **errors("404", "422")}}},
    "/v1/shows/{show_id}/seats": {"get": {
        "summary": "The seating plan with each seat's status", "parameters": [path_param("show_id", NUMERIC_ID)],
        "responses": {**answer("200", ref("SeatMap"), "ok"), **errors("404", "422", "503")}}},
    "/v1/shows/{show_id}/seats/events": {"get": {
        "summary": "Live seat map (SSE): the whole map, then changes",
        "parameters": [path_param("show_id", NUMERIC_ID)], "responses": {**SSE, **errors("404", "422")}}},
    "/v1/shows/{show_id}/holds": {"post": {
        "summary": "Hold seats, all or nothing, for the hold time",
        "parameters": [path_param("show_id", NUMERIC_ID)], "requestBody": body(ref("HoldRequest")),
        "responses": {**answer("201", ref("Hold"), "held"),
                      **errors("404", "409", "413", "422", "429", "503")}}},
    "/v1/holds/{hold_id}": {
        "get": {"summary": "A hold", "parameters": [path_param("hold_id", OPAQUE_ID)],
                "responses": {**answer("200", ref("Hold"), "ok"), **errors("404", "422", "503")}},
        "delete": {"summary": "Release an active hold", "parameters": [path_param("hold_id", OPAQUE_ID)],
                   "responses": {**answer("204", None, "released"), **errors("404", "409", "422", "503")}}},
    "/v1/holds/{hold_id}/confirm": {"post": {
        "summary": "Pay and book",
        "parameters": [path_param("hold_id", OPAQUE_ID),
                       {"name": "Idempotency-Key", "in": "header", "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,200}$"}}],
        "requestBody": body(ref("ConfirmRequest")),
        "responses": {**answer("201", ref("Booking"), "booked"),
                      **errors("402", "404", "409", "410", "413", "422", "503")}}},
    "/v1/bookings/{booking_id}": {"get": {
        "summary": "A booking", "parameters": [path_param("booking_id", OPAQUE_ID)],
        "responses": {**answer("200", ref("Booking"), "ok"), **errors("404", "422", "503")}}},
    "/v1/shows/{show_id}/waitlist": {"post": {
        "summary": "Wait for seats held by others (first come, first served)",
        "parameters": [path_param("show_id", NUMERIC_ID)], "requestBody": body(ref("WaitlistRequest")),
        "responses": {**answer("201", ref("WaitlistEntry"), "queued"),
                      **errors("404", "409", "413", "422", "429", "503")}}},
    "/v1/waitlist/{entry_id}": {
        "get": {"summary": "A waitlist entry with position and eta",
                "parameters": [path_param("entry_id", OPAQUE_ID)],
                "responses": {**answer("200", ref("WaitlistEntry"), "ok"), **errors("404", "422", "503")}},
        "delete": {"summary": "Leave the queue", "parameters": [path_param("entry_id", OPAQUE_ID)],
                   "responses": {**answer("204", None, "left"), **errors("404", "409", "422", "503")}}},
    "/v1/waitlist/{entry_id}/events": {"get": {
        "summary": "Live waitlist entry (SSE)", "parameters": [path_param("entry_id", OPAQUE_ID)],
        "responses": {**SSE, **errors("404", "422")}}},
    "/healthz": {"get": {"summary": "Health of Redis and the database",
                         "responses": {**answer("200", ref("Health"), "healthy"),
                                       **answer("503", ref("Health"), "a dependency is down")}}},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "boxoffice", "version": "1.0.0",
             "description": "Movie-ticket booking: all-or-nothing holds, fair waitlist, ACID sales."},
    "paths": PATHS,
    "components": {"schemas": SCHEMAS},
}
