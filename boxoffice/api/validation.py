"""Request parsing and validation: every input is checked here before the engine sees it.
Problems are collected and answered as 422 with the offending fields named."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

import orjson
from starlette.requests import Request

from boxoffice.engine.errors import InvalidRequest, PayloadTooLarge
from boxoffice.engine.gateway import BestRequest
from boxoffice.engine.inventory import SEAT_KINDS
from boxoffice.engine.limits import (
    MAX_CUSTOMER_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_SEATS_PER_HOLD,
    MAX_WAITLIST_COUNT,
)

# Every pattern is matched whole (fullmatch: "$" would let a trailing newline through)
# and ASCII only (no fullwidth digits or look-alike letters from other scripts).
NUMERIC_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)
OPAQUE_ID = re.compile(r"[A-Za-z0-9_\-]{1,80}", re.ASCII)
SEAT_ID = re.compile(r"[A-Z]{1,3}[1-9][0-9]{0,2}", re.ASCII)
# Printable, no spaces or control characters, no quotes, brackets or braces; an e-mail
# address or an opaque customer reference fits.
CUSTOMER = re.compile(r"[A-Za-z0-9._%+\-@:/#=]{1,254}", re.ASCII)
CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,31}", re.ASCII)
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,200}", re.ASCII)
TOKEN = re.compile(r"[A-Za-z0-9_\-]{1,64}", re.ASCII)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
# Enough to name every bad field of any valid-sized request; a flood of unknown
# fields is answered with the first ones only.
MAX_PROBLEMS = 20


# The headers of a call without any (the parsers are also called directly).
NO_HEADERS: Mapping[str, str] = {}

def problem(field: str, text: str) -> dict[str, str]:
    return {"field": field, "problem": text}


def path_id(request: Request, name: str) -> int:
    raw = request.path_params[name]
    if not NUMERIC_ID.fullmatch(raw):
        raise InvalidRequest(f"{name} is malformed", details=[problem(name, "must be a positive integer id")])
    return int(raw)


def opaque_id(request: Request, name: str) -> str:
    raw = request.path_params[name]
    if not OPAQUE_ID.fullmatch(raw):
        raise InvalidRequest(f"{name} is malformed", details=[problem(name, "malformed id")])
    return str(raw)


def query_date(request: Request) -> date | None:
    raw = request.query_params.get("date")
    if raw is None:
        return None
    try:
        if not DATE.fullmatch(raw):
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest("date is malformed", details=[problem("date", "must be YYYY-MM-DD")]) from None


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise InvalidRequest("the body must be JSON",
                             details=[problem("content-type", "must be application/json")])
    # api/bodylimit.py already refused a declared or streamed body over the limit;
    # counting again here keeps this function safe on its own.
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"the body is larger than {max_bytes} bytes", limit=max_bytes)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON", details=[problem("body", "invalid JSON")]) from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("the body must be a JSON object", details=[problem("body", "not an object")])
    return parsed


def reject_unknown(body: dict[str, Any], allowed: set[str], problems: list[dict[str, str]],
                   prefix: str = "") -> None:
    for key in body:
        if key not in allowed and len(problems) < MAX_PROBLEMS:
            problems.append(problem(prefix + str(key)[:50], "unknown field"))


def customer_field(body: dict[str, Any], problems: list[dict[str, str]]) -> str:
    value = body.get("customer")
    if not isinstance(value, str) or len(value) > MAX_CUSTOMER_LENGTH or not CUSTOMER.fullmatch(value):
        problems.append(problem("customer", "required: 1-254 characters of letters, digits and ._%+-@:/#="))
        return ""
    return value


# Fields of a hold by count ("best available") besides count and customer.
BEST_FIELDS = {"category", "kind", "together"}


def hold_request(body: dict[str, Any], headers: Mapping[str, str] = NO_HEADERS,
                 ) -> tuple[list[str] | BestRequest, str, str | None]:
    """(seats named, or what a hold by count asks for; customer; Idempotency-Key or None).
    A hold names its seats (`seats`) or asks for the best ones (`count`): exactly one.
    One 422 names every fault."""
    problems: list[dict[str, str]] = []
    key = creation_key(headers, problems)
    reject_unknown(body, {"seats", "customer", "count", *BEST_FIELDS}, problems)
    wanted: list[str] | BestRequest
    if "count" in body:
        if "seats" in body:
            problems.append(problem("seats", "give seats or count, not both"))
        wanted = best_request(body, problems)
    else:
        for name in sorted(BEST_FIELDS & body.keys()):
            problems.append(problem(name, "only with count"))
        wanted = seat_list(body.get("seats"), problems)
    customer = customer_field(body, problems)
    if problems:
        raise InvalidRequest("the hold request is not valid", details=problems)
    return wanted, customer, key


def seat_list(seats: Any, problems: list[dict[str, str]]) -> list[str]:
    out: list[str] = []
    if not isinstance(seats, list):
        problems.append(problem("seats", "required: a list of seat ids (or count, for the best seats)"))
    elif not seats:
        problems.append(problem("seats", "at least one seat is required"))
    elif len(seats) > MAX_SEATS_PER_HOLD:
        problems.append(problem("seats", f"at most {MAX_SEATS_PER_HOLD} seats per hold"))
    else:
        for i, seat in enumerate(seats):
            if not isinstance(seat, str) or not SEAT_ID.fullmatch(seat):
                problems.append(problem(f"seats[{i}]", "not a seat id like F12"))
            else:
                out.append(seat)
        duplicates = sorted({s for s in out if out.count(s) > 1})
        if duplicates:
            problems.append(problem("seats", f"duplicate seats: {', '.join(duplicates)}"))
    return out


def best_request(body: dict[str, Any], problems: list[dict[str, str]]) -> BestRequest:
    count = body.get("count")
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # JSON has one number type: 2.0 is the integer 2 (JSON Schema agrees)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_SEATS_PER_HOLD:
        problems.append(problem("count", f"an integer from 1 to {MAX_SEATS_PER_HOLD}"))
        count = 1
    category = body.get("category")
    if category is not None and (not isinstance(category, str) or not CATEGORY.fullmatch(category)):
        problems.append(problem("category", "a price category name such as \"standard\""))
        category = None
    kind = body.get("kind")
    if kind is not None and kind not in SEAT_KINDS:
        problems.append(problem("kind", f"one of {', '.join(SEAT_KINDS)}"))
        kind = None
    together = body.get("together", True)
    if not isinstance(together, bool):
        problems.append(problem("together", "true or false"))
        together = True
    return BestRequest(int(count), category, kind, together)


def idempotency_key(headers: Mapping[str, str], problems: list[dict[str, str]], required: bool,
                    min_length: int = 1) -> str | None:
    """The Idempotency-Key header: required on confirms, optional on holds and joins."""
    key = headers.get("idempotency-key")
    if key is None and not required:
        return None
    if (key is None or not min_length <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
            or not IDEMPOTENCY_KEY.fullmatch(key)):
        need = "required" if required else "optional"
        problems.append(problem("Idempotency-Key",
                                f"{need} header: {min_length}-200 characters of A-Z a-z 0-9 . _ : -"))
        return None
    return key


# A hold's or entry's key names it for anyone who also knows the customer and the show, so
# it must be as hard to guess as the id it stands for: a random key (a UUID is 36).
MIN_CREATION_KEY_LENGTH = 16


def creation_key(headers: Mapping[str, str], problems: list[dict[str, str]]) -> str | None:
    """The optional key of a hold or a waitlist join (at least 16 characters)."""
    return idempotency_key(headers, problems, required=False, min_length=MIN_CREATION_KEY_LENGTH)


def confirm_request(request: Request, body: dict[str, Any]) -> tuple[str, str]:
    problems: list[dict[str, str]] = []
    key = idempotency_key(request.headers, problems, required=True) or ""
    reject_unknown(body, {"payment"}, problems)
    payment = body.get("payment")
    token = ""
    if not isinstance(payment, dict):
        problems.append(problem("payment", "required: {\"method\": \"card\", \"token\": ...}"))
    else:
        reject_unknown(payment, {"method", "token"}, problems, prefix="payment.")
        if payment.get("method") != "card":
            problems.append(problem("payment.method", "must be \"card\""))
        raw_token = payment.get("token")
        if not isinstance(raw_token, str) or not TOKEN.fullmatch(raw_token):
            problems.append(problem("payment.token", "required: 1-64 characters of A-Z a-z 0-9 _ -"))
        else:
            token = raw_token
    if problems:
        raise InvalidRequest("the confirm request is not valid", details=problems)
    return key, token


def waitlist_request(body: dict[str, Any], headers: Mapping[str, str] = NO_HEADERS,
                     ) -> tuple[str, int, str | None, str | None]:
    """(customer, count, category or None, Idempotency-Key or None); one 422 names every fault."""
    problems: list[dict[str, str]] = []
    key = creation_key(headers, problems)
    reject_unknown(body, {"count", "customer", "category"}, problems)
    count = body.get("count")
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # JSON has one number type: 2.0 is the integer 2 (JSON Schema agrees)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_WAITLIST_COUNT:
        problems.append(problem("count", f"required: an integer from 1 to {MAX_WAITLIST_COUNT}"))
        count = 0
    category = body.get("category")
    if category is not None and (not isinstance(category, str) or not CATEGORY.fullmatch(category)):
        problems.append(problem("category", "a price category name such as \"standard\""))
        category = None
    customer = customer_field(body, problems)
    if problems:
        raise InvalidRequest("the waitlist request is not valid", details=problems)
    return customer, int(count), category, key
