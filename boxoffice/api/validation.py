"""Request parsing and validation: every input is checked here before the engine sees it.
Problems are collected and answered as 422 with the offending fields named."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
from starlette.requests import Request

from boxoffice.api.errors import PayloadTooLarge
from boxoffice.engine.admin import CinemaRequest, CityRequest, HallRequest, MovieRequest, SeatRequest, ShowRequest
from boxoffice.engine.errors import InvalidRequest
from boxoffice.engine.limits import (
    MAX_CUSTOMER_LENGTH,
    MAX_HALL_SEATS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_SEATS_PER_HOLD,
    MAX_WAITLIST_COUNT,
    SEAT_CATEGORIES,
    SEAT_KINDS,
)
from boxoffice.engine.redis.gateway import BestRequest

# Every pattern is matched whole (fullmatch: "$" would let a trailing newline through)
# and ASCII only (no fullwidth digits or look-alike letters from other scripts).
NUMERIC_ID = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)
OPAQUE_ID = re.compile(r"[A-Za-z0-9_-]{1,80}", re.ASCII)
SEAT_ID = re.compile(r"[A-Z]{1,3}[1-9][0-9]{0,2}", re.ASCII)
# Printable, no spaces or control characters, no quotes, brackets or braces; an e-mail
# address or an opaque customer reference fits.
CUSTOMER = re.compile(r"[A-Za-z0-9._%+\-@:/#=]" + f"{{1,{MAX_CUSTOMER_LENGTH}}}", re.ASCII)
CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,31}", re.ASCII)
KEY_CHARACTER = r"[A-Za-z0-9._:-]"
IDEMPOTENCY_KEY = re.compile(KEY_CHARACTER + f"{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}", re.ASCII)
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
# Enough to name every bad field of any valid-sized request; a flood of unknown
# fields is answered with the first ones only.
MAX_PROBLEMS = 20


# The headers of a call without any (the parsers are also called directly).
NO_HEADERS: Mapping[str, str] = {}

def problem(field: str, text: str) -> dict[str, str]:
    return {"field": field, "problem": text}


def numeric_param(name: str, raw: str) -> int:
    if not NUMERIC_ID.fullmatch(raw):
        raise InvalidRequest(f"{name} is malformed", details=[problem(name, "must be a positive integer id")])
    return int(raw)


def opaque_param(name: str, raw: str) -> str:
    if not OPAQUE_ID.fullmatch(raw):
        raise InvalidRequest(f"{name} is malformed", details=[problem(name, "malformed id")])
    return str(raw)


# The validator of every path parameter by name: the router (api/router.py) checks each
# before an endpoint runs, and the endpoints read them through path_id and opaque_id.
PATH_PARAMS = {"city_id": numeric_param, "movie_id": numeric_param, "show_id": numeric_param,
               "hold_id": opaque_param, "entry_id": opaque_param, "booking_id": opaque_param,
               "ticket_id": opaque_param}


def path_id(request: Request, name: str) -> int:
    value = request.path_params[name]
    return value if isinstance(value, int) else numeric_param(name, value)  # int: the router checked it


def opaque_id(request: Request, name: str) -> str:
    return opaque_param(name, request.path_params[name])


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


def count_field(body: dict[str, Any], problems: list[dict[str, str]], most: int, what: str) -> int:
    """`count` from 1 to `most` (0 when it is not, with the problem noted)."""
    count = body.get("count")
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # JSON has one number type: 2.0 is the integer 2 (JSON Schema agrees)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= most:
        problems.append(problem("count", f"{what} from 1 to {most}"))
        return 0
    return count


def category_field(body: dict[str, Any], problems: list[dict[str, str]]) -> str | None:
    """An optional price category's name (whether the show has it, the engine knows)."""
    category = body.get("category")
    if category is not None and (not isinstance(category, str) or not CATEGORY.fullmatch(category)):
        problems.append(problem("category", "a price category name such as \"standard\""))
        return None
    return category


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
    count = count_field(body, problems, MAX_SEATS_PER_HOLD, "an integer")
    category = category_field(body, problems)
    kind = body.get("kind")
    if kind is not None and kind not in SEAT_KINDS:
        problems.append(problem("kind", f"one of {', '.join(SEAT_KINDS)}"))
        kind = None
    together = body.get("together", True)
    if not isinstance(together, bool):
        problems.append(problem("together", "true or false"))
        together = True
    return BestRequest(count, category, kind, together)


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


def cancel_request(request: Request) -> str:
    """A cancel carries no body; its Idempotency-Key is required."""
    problems: list[dict[str, str]] = []
    key = idempotency_key(request.headers, problems, required=True)
    if problems or key is None:
        raise InvalidRequest("the cancel request is not valid", details=problems)
    return key


def waitlist_request(body: dict[str, Any], headers: Mapping[str, str] = NO_HEADERS,
                     ) -> tuple[str, int, str | None, str | None]:
    """(customer, count, category or None, Idempotency-Key or None); one 422 names every fault."""
    problems: list[dict[str, str]] = []
    key = creation_key(headers, problems)
    reject_unknown(body, {"count", "customer", "category"}, problems)
    count = count_field(body, problems, MAX_WAITLIST_COUNT, "required: an integer")
    category = category_field(body, problems)
    customer = customer_field(body, problems)
    if problems:
        raise InvalidRequest("the waitlist request is not valid", details=problems)
    return customer, count, category, key


# -- the admin API ---------------------------------------------------------------------

COUNTRY = re.compile(r"[A-Z]{2}", re.ASCII)
ROW_LABEL = re.compile(r"[A-Z]{1,3}", re.ASCII)
CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
GENRE = re.compile(r"[A-Za-z][A-Za-z -]{0,31}", re.ASCII)
# A name or an address: any characters but control characters (a seat plan or a log line
# must not be broken by one).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
QUEUE_ORDERS = ("arrival", "shuffle_before_open")


def integer(value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 2.0 is the integer 2
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def text_field(body: dict[str, Any], name: str, longest: int, problems: list[dict[str, str]],
               prefix: str = "") -> str:
    value = body.get(name)
    if (not isinstance(value, str) or not value.strip() or len(value) > longest or CONTROL.search(value)
            or value != value.strip()):
        problems.append(problem(prefix + name, f"required: 1-{longest} characters, no control characters and"
                                " no leading or trailing spaces"))
        return ""
    return value


def id_field(body: dict[str, Any], name: str, problems: list[dict[str, str]]) -> int:
    """An id as the API writes it ("12"), or as a JSON integer."""
    value = body.get(name)
    number = integer(value)
    if isinstance(value, str) and NUMERIC_ID.fullmatch(value):
        return int(value)
    if number is not None and 0 < number < 10**18:
        return number
    problems.append(problem(name, "required: a positive integer id"))
    return 0


def int_field(body: dict[str, Any], name: str, low: int, high: int, problems: list[dict[str, str]],
              prefix: str = "") -> int:
    number = integer(body.get(name))
    if number is None or not low <= number <= high:
        problems.append(problem(prefix + name, f"required: an integer from {low} to {high}"))
        return low
    return number


def time_field(body: dict[str, Any], name: str, problems: list[dict[str, str]],
               required: bool = True) -> datetime | None:
    value = body.get(name)
    if value is None and not required:
        return None
    try:
        if not isinstance(value, str) or not RFC3339.fullmatch(value):
            raise ValueError
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        problems.append(problem(name, "an RFC 3339 time with its offset, such as 2026-12-03T17:45:00Z"))
        return None
    return parsed.astimezone(UTC)


RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})", re.ASCII)


def finish(what: str, problems: list[dict[str, str]]) -> None:
    if problems:
        raise InvalidRequest(f"the {what} is not valid", details=problems[:MAX_PROBLEMS])


def city_request(body: dict[str, Any]) -> CityRequest:
    problems: list[dict[str, str]] = []
    reject_unknown(body, {"name", "country"}, problems)
    name = text_field(body, "name", 100, problems)
    country = body.get("country")
    if not isinstance(country, str) or not COUNTRY.fullmatch(country):
        problems.append(problem("country", "required: an ISO 3166 country code of two capital letters"))
    finish("city", problems)
    return CityRequest(name, str(country))


def cinema_request(body: dict[str, Any]) -> CinemaRequest:
    problems: list[dict[str, str]] = []
    reject_unknown(body, {"city_id", "name", "address"}, problems)
    request = CinemaRequest(id_field(body, "city_id", problems), text_field(body, "name", 100, problems),
                            text_field(body, "address", 200, problems))
    finish("cinema", problems)
    return request


def hall_request(body: dict[str, Any]) -> HallRequest:
    """A hall and its seat plan: every seat well formed, labels unique, no two seats on one
    place (x, y) or one row and number, at most MAX_HALL_SEATS seats."""
    problems: list[dict[str, str]] = []
    reject_unknown(body, {"cinema_id", "name", "seats"}, problems)
    cinema_id = id_field(body, "cinema_id", problems)
    name = text_field(body, "name", 50, problems)
    raw = body.get("seats")
    seats: list[SeatRequest] = []
    if not isinstance(raw, list) or not raw:
        problems.append(problem("seats", "required: a list of at least one seat"))
    elif len(raw) > MAX_HALL_SEATS:
        problems.append(problem("seats", f"at most {MAX_HALL_SEATS} seats in a hall, not {len(raw)}"))
    else:
        for i, seat in enumerate(raw):
            parsed = seat_request(seat, f"seats[{i}].", problems)
            if parsed is not None:
                seats.append(parsed)
        if len(seats) == len(raw):
            plan_faults(seats, problems)
    finish("hall", problems)
    return HallRequest(cinema_id, name, seats)


def seat_request(seat: Any, prefix: str, problems: list[dict[str, str]]) -> SeatRequest | None:
    if not isinstance(seat, dict):
        problems.append(problem(prefix.rstrip("."), "not an object"))
        return None
    before = len(problems)
    reject_unknown(seat, {"id", "row", "number", "x", "y", "category", "kind"}, problems, prefix=prefix)
    label, row = seat.get("id"), seat.get("row")
    if not isinstance(label, str) or not SEAT_ID.fullmatch(label):
        problems.append(problem(prefix + "id", "required: a seat label like F12"))
    if not isinstance(row, str) or not ROW_LABEL.fullmatch(row):
        problems.append(problem(prefix + "row", "required: 1-3 capital letters"))
    number = int_field(seat, "number", 1, 999, problems, prefix)
    x = int_field(seat, "x", 0, 10_000, problems, prefix)
    y = int_field(seat, "y", 0, 10_000, problems, prefix)
    category, kind = seat.get("category"), seat.get("kind", "standard")
    if category not in SEAT_CATEGORIES:
        problems.append(problem(prefix + "category", f"unknown category: one of {', '.join(SEAT_CATEGORIES)}"))
    if kind not in SEAT_KINDS:
        problems.append(problem(prefix + "kind", f"unknown kind: one of {', '.join(SEAT_KINDS)}"))
    if len(problems) == before and label != f"{row}{number}":
        problems.append(problem(prefix + "id", f"the label must be the row and the number: {row}{number}"))
    if len(problems) > before:
        return None
    return SeatRequest(str(label), str(row), number, x, y, str(category), str(kind))


def plan_faults(seats: list[SeatRequest], problems: list[dict[str, str]]) -> None:
    labels = Counter(s.id for s in seats)
    duplicates = sorted(label for label, n in labels.items() if n > 1)
    if duplicates:
        problems.append(problem("seats", f"duplicate labels: {', '.join(duplicates[:20])}"))
    at: dict[tuple[int, int], str] = {}
    overlaps: list[str] = []
    for seat in seats:
        other = at.setdefault((seat.x, seat.y), seat.id)
        if other != seat.id:
            overlaps.append(f"{other} and {seat.id} at ({seat.x}, {seat.y})")
    if overlaps:
        problems.append(problem("seats", f"overlapping places: {'; '.join(overlaps[:10])}"))


def movie_request(body: dict[str, Any]) -> MovieRequest:
    problems: list[dict[str, str]] = []
    reject_unknown(body, {"title", "runtime_min", "rating", "release_date", "genres"}, problems)
    title = text_field(body, "title", 200, problems)
    runtime = int_field(body, "runtime_min", 1, 600, problems)
    rating = text_field(body, "rating", 10, problems)
    released: date | None = None
    raw_date = body.get("release_date")
    try:
        if not isinstance(raw_date, str) or not DATE.fullmatch(raw_date):
            raise ValueError
        released = date.fromisoformat(raw_date)
    except ValueError:
        problems.append(problem("release_date", "required: YYYY-MM-DD"))
    genres = body.get("genres", [])
    if (not isinstance(genres, list) or len(genres) > 10
            or not all(isinstance(g, str) and GENRE.fullmatch(g) for g in genres)):
        problems.append(problem("genres", "at most 10 genre names of letters, spaces and hyphens"))
        genres = []
    finish("movie", problems)
    assert released is not None
    return MovieRequest(title, runtime, rating, released, list(genres))


def show_request(body: dict[str, Any]) -> ShowRequest:
    problems: list[dict[str, str]] = []
    reject_unknown(body, {"hall_id", "movie_id", "starts_at", "prices", "sale_opens_at", "queue_order"}, problems)
    hall_id = id_field(body, "hall_id", problems)
    movie_id = id_field(body, "movie_id", problems)
    starts_at = time_field(body, "starts_at", problems)
    sale_opens_at = time_field(body, "sale_opens_at", problems, required=False)
    if starts_at and sale_opens_at and sale_opens_at >= starts_at:
        problems.append(problem("sale_opens_at", "must be before starts_at"))
    queue_order = body.get("queue_order", "arrival")
    if queue_order not in QUEUE_ORDERS:
        problems.append(problem("queue_order", f"one of {', '.join(QUEUE_ORDERS)}"))
    prices: dict[str, int] = {}
    currencies: set[str] = set()
    raw = body.get("prices")
    if not isinstance(raw, list) or not raw or len(raw) > len(SEAT_CATEGORIES):
        problems.append(problem("prices", f"required: 1-{len(SEAT_CATEGORIES)} prices, one per category"))
    else:
        for i, price in enumerate(raw):
            prefix = f"prices[{i}]."
            if not isinstance(price, dict):
                problems.append(problem(f"prices[{i}]", "not an object"))
                continue
            reject_unknown(price, {"category", "amount", "currency"}, problems, prefix=prefix)
            category, currency = price.get("category"), price.get("currency")
            amount = int_field(price, "amount", 0, 1_000_000, problems, prefix)
            if category not in SEAT_CATEGORIES:
                problems.append(problem(prefix + "category", f"unknown category: one of {', '.join(SEAT_CATEGORIES)}"))
            elif category in prices:
                problems.append(problem(prefix + "category", f"a second price for {category}"))
            else:
                prices[str(category)] = amount
            if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
                problems.append(problem(prefix + "currency", "required: an ISO 4217 code such as EUR"))
            else:
                currencies.add(currency)
        if len(currencies) > 1:
            problems.append(problem("prices", "every price of a show is in one currency"))
    finish("show", problems)
    assert starts_at is not None
    return ShowRequest(hall_id, movie_id, starts_at, prices, currencies.pop(), sale_opens_at, str(queue_order))


def close_request(body: dict[str, Any]) -> str:
    problems: list[dict[str, str]] = []
    reject_unknown(body, {"reason"}, problems)
    reason = text_field(body, "reason", 200, problems) if "reason" in body else ""
    finish("close request", problems)
    return reason
