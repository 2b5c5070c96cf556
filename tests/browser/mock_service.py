"""An in-memory stand-in for the boxoffice API, for developing the web page only.

It follows docs/API.md closely enough to drive every screen of the page, but
proves nothing about the real service: the browser tests run against the real
app unless BOXOFFICE_BROWSER_MOCK=1 is set. Run it by hand with
    python -m uvicorn tests.browser.mock_service:create_app --factory --port 8000
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[2] / "boxoffice" / "api" / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_SEATS = 10


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def error(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def build_hall() -> list[dict]:
    """Rows A-J; aisles after seat 3 and seat 11; wheelchair spaces in the last row."""
    seats = []
    for row_index, row in enumerate("ABCDEFGHIJ"):
        for number in range(1, 15):
            x = number + (1 if number > 3 else 0) + (1 if number > 11 else 0)
            kind = "standard"
            if row == "J" and number in (1, 2, 13, 14):
                kind = "wheelchair" if number in (1, 14) else "companion"
            seats.append(
                {
                    "id": f"{row}{number}",
                    "row": row,
                    "number": number,
                    "category": "premium" if row in "HIJ" else "standard",
                    "x": x * 10,
                    "y": row_index * 10 + (4 if row_index >= 5 else 0),
                    "kind": kind,
                    "status": "available",
                }
            )
    return seats


@dataclass
class Show:
    id: str
    starts_at: datetime
    seats: dict[str, dict] = field(default_factory=lambda: {s["id"]: s for s in build_hall()})
    listeners: set[asyncio.Queue] = field(default_factory=set)
    waiters: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = {"available": 0, "held": 0, "booked": 0}
        for seat in self.seats.values():
            counts[seat["status"]] += 1
        return counts

    def snapshot(self) -> dict:
        return {"show_id": self.id, "seats": list(self.seats.values()), "counts": self.counts()}

    def set_status(self, ids: list[str], status: str) -> None:
        for seat_id in ids:
            self.seats[seat_id]["status"] = status
        event = {"seats": [{"id": i, "status": status} for i in ids], "counts": self.counts()}
        for queue in self.listeners:
            queue.put_nowait(event)


class Store:
    def __init__(self) -> None:
        self.ttl = int(os.environ.get("BOXOFFICE_HOLD_TTL_S", "300"))
        start = (now() + timedelta(days=1)).replace(hour=19, minute=30, second=0, microsecond=0)
        self.shows = {
            f"show-{i}": Show(f"show-{i}", start + timedelta(hours=3 * (i % 3), days=i // 3)) for i in range(1, 25)
        }
        self.holds: dict[str, dict] = {}
        self.bookings: dict[str, dict] = {}
        self.idempotency: dict[str, dict] = {}
        self.entries: dict[str, dict] = {}
        self.entry_listeners: dict[str, set[asyncio.Queue]] = {}

    def end_hold(self, hold: dict, status: str) -> None:
        hold["status"] = status
        show = self.shows[hold["show_id"]]
        show.set_status(hold["seats"], "available")
        self.serve_waiters(show)

    def serve_waiters(self, show: Show) -> None:
        """First come, first served: grant the head of the queue while seats suffice."""
        while show.waiters:
            entry = self.entries[show.waiters[0]]
            free = [s["id"] for s in show.seats.values() if s["status"] == "available"]
            if len(free) < entry["count"]:
                break
            show.waiters.pop(0)
            hold = self.new_hold(show, free[: entry["count"]], entry["customer"])
            entry.update(status="granted", position=None, eta_s=None, hold=hold)
            self.publish_entry(entry)
            for position, entry_id in enumerate(show.waiters, start=1):
                self.entries[entry_id]["position"] = position
                self.publish_entry(self.entries[entry_id])

    def new_hold(self, show: Show, seats: list[str], customer: str) -> dict:
        hold = {
            "hold_id": secrets.token_urlsafe(16),
            "show_id": show.id,
            "seats": seats,
            "customer": customer,
            "status": "active",
            "expires_at": iso(now() + timedelta(seconds=self.ttl)),
            "ttl_s": self.ttl,
        }
        self.holds[hold["hold_id"]] = hold
        show.set_status(seats, "held")
        return hold

    def publish_entry(self, entry: dict) -> None:
        public = {k: entry[k] for k in ("entry_id", "status", "position", "eta_s", "hold")}
        for queue in self.entry_listeners.get(entry["entry_id"], set()):
            queue.put_nowait(public)

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            for hold in list(self.holds.values()):
                expires = datetime.strptime(hold["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
                if hold["status"] == "active" and expires.replace(tzinfo=UTC) <= now():
                    self.end_hold(hold, "expired")


def create_app() -> Starlette:
    store = Store()
    movie = {
        "id": "dune-3",
        "title": "Dune: Part Three",
        "runtime_min": 166,
        "rating": "PG-13",
        "release_date": "2026-12-18",
        "genres": ["sci-fi", "drama"],
    }
    other = {
        "id": "paddington-4",
        "title": "Paddington 4",
        "runtime_min": 104,
        "rating": "PG",
        "release_date": "2026-11-27",
        "genres": ["family"],
    }
    cinemas = [
        {"id": "odeon", "name": "Odeon Riverside", "address": "1 Quay Street"},
        {"id": "palace", "name": "Palace Cinema", "address": "22 High Road"},
    ]
    prices = [
        {"category": "standard", "amount": 1250, "currency": "EUR"},
        {"category": "premium", "amount": 1600, "currency": "EUR"},
    ]

    def show_of(request: Request) -> Show | None:
        return store.shows.get(request.path_params["show_id"])

    def show_body(show: Show) -> dict:
        index = int(show.id.split("-")[1])
        return {
            "id": show.id,
            "starts_at": iso(show.starts_at),
            "movie": movie,
            "cinema": cinemas[index % 2],
            "hall": {"id": f"hall-{index % 2 + 1}", "name": f"Hall {index % 2 + 1}"},
            "prices": prices,
            "status": "open",
        }

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=SECURITY_HEADERS)

    async def cities(request: Request) -> Response:
        return JSONResponse(
            {
                "cities": [
                    {"id": "lisbon", "name": "Lisbon", "country": "PT", "cinema_count": 2},
                    {"id": "porto", "name": "Porto", "country": "PT", "cinema_count": 0},
                ]
            }
        )

    async def movies(request: Request) -> Response:
        if request.path_params["city_id"] != "lisbon":
            return JSONResponse({"movies": []})
        return JSONResponse({"movies": [movie, other]})

    async def shows(request: Request) -> Response:
        listed = [show_body(s) for s in store.shows.values()]
        return JSONResponse(
            {
                "cinemas": [
                    {
                        **cinema,
                        "shows": [
                            {
                                "id": s["id"],
                                "starts_at": s["starts_at"],
                                "hall": s["hall"],
                                "available": store.shows[s["id"]].counts()["available"],
                            }
                            for s in listed
                            if s["cinema"]["id"] == cinema["id"]
                        ],
                    }
                    for cinema in cinemas
                ]
            }
        )

    async def show(request: Request) -> Response:
        found = show_of(request)
        return JSONResponse(show_body(found)) if found else error(404, "not_found", "No such show.")

    async def seats(request: Request) -> Response:
        found = show_of(request)
        return JSONResponse(found.snapshot()) if found else error(404, "not_found", "No such show.")

    def sse(queue: asyncio.Queue, first: dict | None, done: set[asyncio.Queue]) -> Response:
        async def stream() -> AsyncIterator[str]:
            try:
                if first is not None:
                    yield f"data: {json.dumps(first)}\n\n"
                while True:
                    try:
                        yield f"data: {json.dumps(await asyncio.wait_for(queue.get(), 15))}\n\n"
                    except TimeoutError:
                        yield ": keep-alive\n\n"
            finally:
                done.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def seat_events(request: Request) -> Response:
        found = show_of(request)
        if not found:
            return error(404, "not_found", "No such show.")
        queue: asyncio.Queue = asyncio.Queue()
        found.listeners.add(queue)
        return sse(queue, found.snapshot(), found.listeners)

    async def create_hold(request: Request) -> Response:
        found = show_of(request)
        if not found:
            return error(404, "not_found", "No such show.")
        body = await request.json()
        wanted, customer = body.get("seats") or [], body.get("customer") or ""
        if (
            not wanted
            or len(wanted) > MAX_SEATS
            or len(set(wanted)) != len(wanted)
            or any(s not in found.seats for s in wanted)
            or "@" not in customer
        ):
            return error(422, "invalid_request", "Those seats or that customer are not valid.", details=["seats"])
        taken = [s for s in wanted if found.seats[s]["status"] != "available"]
        if taken:
            held = found.counts()["held"] + found.counts()["available"]
            return error(
                409,
                "seats_unavailable",
                "Some of those seats are already taken.",
                unavailable=taken,
                waitlist={"possible": held >= len(wanted), "length": len(found.waiters)},
            )
        return JSONResponse(store.new_hold(found, wanted, customer), status_code=201)

    async def get_hold(request: Request) -> Response:
        hold = store.holds.get(request.path_params["hold_id"])
        return JSONResponse(hold) if hold else error(404, "not_found", "No such hold.")

    async def release_hold(request: Request) -> Response:
        hold = store.holds.get(request.path_params["hold_id"])
        if not hold:
            return error(404, "not_found", "No such hold.")
        if hold["status"] != "active":
            return error(409, "hold_not_active", "That hold is no longer active.")
        store.end_hold(hold, "released")
        return Response(status_code=204)

    async def confirm(request: Request) -> Response:
        hold = store.holds.get(request.path_params["hold_id"])
        key = request.headers.get("idempotency-key", "")
        if not hold:
            return error(404, "not_found", "No such hold.")
        if key in store.idempotency:
            return JSONResponse(store.idempotency[key], status_code=201)
        if hold["status"] == "expired":
            return error(410, "hold_expired", "Your hold has expired.")
        if hold["status"] != "active":
            return error(409, "hold_not_active", "That hold is no longer active.")
        card = (await request.json())["payment"]["token"]
        if card == "tok_slow":
            await asyncio.sleep(2)
        if card == "tok_decline":
            return error(402, "payment_declined", "The card was declined.")
        if card == "tok_error":
            return error(503, "unavailable", "The payment provider is unavailable.")
        show = store.shows[hold["show_id"]]
        hold["status"] = "confirmed"
        show.set_status(hold["seats"], "booked")
        booking = {
            "booking_id": "bk_" + secrets.token_urlsafe(16),
            "show_id": show.id,
            "seats": hold["seats"],
            "customer": hold["customer"],
            "amount": sum(1600 if show.seats[s]["category"] == "premium" else 1250 for s in hold["seats"]),
            "currency": "EUR",
            "status": "confirmed",
            "created_at": iso(now()),
        }
        hold["booking_id"] = booking["booking_id"]
        store.idempotency[key] = store.bookings[booking["booking_id"]] = booking
        return JSONResponse(booking, status_code=201)

    async def get_booking(request: Request) -> Response:
        booking = store.bookings.get(request.path_params["booking_id"])
        return JSONResponse(booking) if booking else error(404, "not_found", "No such booking.")

    async def join_waitlist(request: Request) -> Response:
        found = show_of(request)
        if not found:
            return error(404, "not_found", "No such show.")
        body = await request.json()
        count = body.get("count")
        if found.counts()["held"] + found.counts()["available"] < count:
            return error(409, "no_chance", "Not enough seats can ever come free for that.")
        entry = {
            "entry_id": secrets.token_urlsafe(16),
            "show_id": found.id,
            "count": count,
            "customer": body.get("customer"),
            "status": "waiting",
            "position": len(found.waiters) + 1,
            "eta_s": None,
            "hold": None,
        }
        store.entries[entry["entry_id"]] = entry
        found.waiters.append(entry["entry_id"])
        public = {k: entry[k] for k in ("entry_id", "show_id", "count", "position", "status")}
        return JSONResponse(public, status_code=201)

    def public_entry(entry: dict) -> dict:
        return {k: entry[k] for k in ("entry_id", "status", "position", "eta_s", "hold")}

    async def get_entry(request: Request) -> Response:
        entry = store.entries.get(request.path_params["entry_id"])
        return JSONResponse(public_entry(entry)) if entry else error(404, "not_found", "No entry.")

    async def leave_waitlist(request: Request) -> Response:
        entry = store.entries.get(request.path_params["entry_id"])
        if not entry:
            return error(404, "not_found", "No such entry.")
        show = store.shows[entry["show_id"]]
        if entry["entry_id"] in show.waiters:
            show.waiters.remove(entry["entry_id"])
        entry["status"] = "cancelled"
        store.publish_entry(entry)
        return Response(status_code=204)

    async def entry_events(request: Request) -> Response:
        entry = store.entries.get(request.path_params["entry_id"])
        if not entry:
            return error(404, "not_found", "No such entry.")
        queue: asyncio.Queue = asyncio.Queue()
        listeners = store.entry_listeners.setdefault(entry["entry_id"], set())
        listeners.add(queue)
        return sse(queue, public_entry(entry), listeners)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(store.sweep())
        yield
        sweeper.cancel()

    routes = [
        Route("/", index),
        Mount("/static", StaticFiles(directory=STATIC)),
        Route("/v1/cities", cities),
        Route("/v1/cities/{city_id}/movies", movies),
        Route("/v1/cities/{city_id}/movies/{movie_id}/shows", shows),
        Route("/v1/shows/{show_id}", show),
        Route("/v1/shows/{show_id}/seats", seats),
        Route("/v1/shows/{show_id}/seats/events", seat_events),
        Route("/v1/shows/{show_id}/holds", create_hold, methods=["POST"]),
        Route("/v1/holds/{hold_id}", get_hold, methods=["GET"]),
        Route("/v1/holds/{hold_id}", release_hold, methods=["DELETE"]),
        Route("/v1/holds/{hold_id}/confirm", confirm, methods=["POST"]),
        Route("/v1/bookings/{booking_id}", get_booking),
        Route("/v1/shows/{show_id}/waitlist", join_waitlist, methods=["POST"]),
        Route("/v1/waitlist/{entry_id}", get_entry, methods=["GET"]),
        Route("/v1/waitlist/{entry_id}", leave_waitlist, methods=["DELETE"]),
        Route("/v1/waitlist/{entry_id}/events", entry_events),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
