"""Simulated release-day customers: browse, pick seats (mostly the best ones), hold, retry or
wait in line, then pay or walk away. Everything goes through the public HTTP API."""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from bench.httpclient import EventStream, LeanClient, TransportError, open_stream
from bench.loadgen import client_address
from bench.stats import EndpointStats

SIZES = (1, 2, 2, 2, 3, 4, 4, 5, 6)  # how many seats a party wants
# The customer a request is made for (each customer is a task): earlier ones go first.
CUSTOMER_NUMBER: contextvars.ContextVar[int] = contextvars.ContextVar("customer_number", default=0)


@dataclass(frozen=True)
class Behaviour:
    best_seekers: float = 0.8  # share of customers who go for the best free block
    # share of customers who let the service pick (a hold by count: no seat map read)
    best_available_share: float = 0.0
    pay_share: float = 0.85  # share of holders who pay; the others walk away
    decline_first: float = 0.03  # share of payers whose first card is declined
    waitlist_share: float = 0.6  # share of refused customers who join the waitlist
    retries: int = 3  # hold attempts before giving up on picking seats
    think_s: float = 0.5  # most time spent between getting seats and paying
    patience_s: float = 20.0  # how long a waiter waits before leaving the line
    poll_s: float = 1.0  # how often a waiter looks at its entry
    # Map readers follow the seat map's event stream, as the web page does, instead of
    # reading the whole map again: the whole map once, then only the seats that changed.
    live_seat_map: bool = False


class Served(Protocol):
    """One customer's line record as the load client saw it (a waitlist entry, a queue ticket)."""

    join_sent: float
    join_answered: float
    last_waiting_poll_sent: float


@dataclass
class WaitRecord:
    """What the client saw of one waitlist entry (the client-side fairness check uses it)."""

    entry_id: str
    count: int
    join_sent: float
    join_answered: float
    status: str = "waiting"
    granted_seen: float | None = None
    last_waiting_poll_sent: float = 0.0


@dataclass
class Tally:
    arrived: int = 0
    done: int = 0
    holds_granted: int = 0
    holds_refused: int = 0
    holds_limited: int = 0
    holds_failed: int = 0
    gave_up: int = 0
    waitlist_joined: int = 0
    waitlist_no_chance: int = 0
    waitlist_granted: int = 0
    waitlist_left: int = 0
    waitlist_impossible: int = 0
    paid: int = 0
    declined: int = 0
    abandoned: int = 0
    confirm_failed: int = 0
    seats_booked: int = 0
    transport_errors: int = 0
    bytes_read: int = 0  # answer bodies, all customers, all endpoints
    live_maps: int = 0  # seat maps followed over their event stream (Behaviour.live_seat_map)
    live_map_events: int = 0  # the changes those streams told
    live_maps_failed: int = 0  # could not be opened: those customers read the map instead
    max_ttl_s: int = 0
    sold_out_at: float | None = None


@dataclass
class Venue:
    """What every customer needs to know about the show, learned once from its seat map."""

    city_id: int
    movie_id: int
    show_id: int
    seat_count: int
    blocks: dict[int, list[tuple[str, ...]]]  # size -> adjacent blocks, best first


def plan_blocks(seats: list[dict[str, Any]]) -> dict[int, list[tuple[str, ...]]]:
    """Adjacent blocks of 1..6 seats per row, best first: centred, about two thirds back."""
    xs = [s["x"] for s in seats]
    ys = [s["y"] for s in seats]
    centre_x, best_y = (min(xs) + max(xs)) / 2, min(ys) + (max(ys) - min(ys)) * 0.66
    score = {s["id"]: abs(s["x"] - centre_x) + 1.5 * abs(s["y"] - best_y) for s in seats}
    rows: dict[str, list[dict[str, Any]]] = {}
    for seat in seats:
        rows.setdefault(seat["row"], []).append(seat)
    blocks: dict[int, list[tuple[float, tuple[str, ...]]]] = {k: [] for k in range(1, 7)}
    for row in rows.values():
        row.sort(key=lambda s: s["number"])
        for size in range(1, 7):
            for start in range(len(row) - size + 1):
                part = row[start:start + size]
                if part[-1]["number"] - part[0]["number"] == size - 1:
                    ids = tuple(s["id"] for s in part)
                    blocks[size].append((sum(score[i] for i in ids), ids))
    return {size: [ids for _, ids in sorted(found)] for size, found in blocks.items()}


def free_seats(seat_map: bytes) -> set[str]:
    """The seats a seat map (GET /v1/shows/{id}/seats, or a stream's first event) shows free."""
    # The counts close the answer: a sold-out map needs no parsing (the client stays cheap).
    tail = seat_map.rfind(b'"counts":')
    if tail > 0 and orjson.loads(seat_map[tail + 9:-1])["available"] == 0:
        return set()
    return {s["id"] for s in orjson.loads(seat_map)["seats"] if s["status"] == "available"}


class LiveSeatMap:
    """The seats one customer sees free on a seat map kept live by its event stream, as the
    web page keeps it (api/static/booking.js): the whole map first, then each change's seats
    (docs/API.md, "Live seat map"). `free` is updated in place as changes come."""

    def __init__(self, stream: EventStream, free: set[str], tally: Tally) -> None:
        self.stream = stream
        self.free = free
        self.tally = tally
        self.follower = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while (data := await self.stream.next()) is not None:
            self.tally.live_map_events += 1
            self.tally.bytes_read += len(data)
            if data.startswith(b'{"show_id"'):  # the whole map again: the stream may have missed changes
                self.free.clear()
                self.free.update(free_seats(data))
                continue
            for seat in orjson.loads(data).get("seats", ()):
                if seat["status"] == "available":
                    self.free.add(seat["id"])
                else:
                    self.free.discard(seat["id"])

    def close(self) -> None:
        self.follower.cancel()
        self.stream.close()


class PrioritySlots:
    """A semaphore that lets the earliest customer through first. A plain FIFO semaphore
    would make every one of 20,000 arrivals finish browsing before anybody holds a seat
    (an artefact of one client with few connections); real customers each proceed at the
    service's pace, those who came first ahead."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self.waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self.order = itertools.count()

    async def acquire(self, priority: int) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (priority, next(self.order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            raise

    def release(self) -> None:
        while self.waiting:
            _, _, future = heapq.heappop(self.waiting)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


class Crowd:
    """Runs the customers against one service; keeps the tally and the records the audit needs."""

    def __init__(self, client: LeanClient, venue: Venue, behaviour: Behaviour, concurrency: int,
                 tag: str, seed: int) -> None:
        self.client = client
        self.venue = venue
        self.behaviour = behaviour
        self.slots = PrioritySlots(concurrency)
        self.tag = tag
        self.seed = seed
        self.stats = EndpointStats()
        self.tally = Tally()
        self.started = time.perf_counter()
        self.bookings: list[dict[str, Any]] = []
        self.waits: list[WaitRecord] = []
        self.hold_ttls: set[int] = set()

    # -- HTTP -------------------------------------------------------------------------

    async def call(self, method: str, path: str, endpoint: str, body: Any = None,
                   headers: dict[str, str] | None = None, raw: bool = False) -> tuple[int, Any]:
        content = orjson.dumps(body) if body is not None else None
        number = CUSTOMER_NUMBER.get()
        # Each customer from an address of its own, as a load balancer in front would tell
        # the service: the per-address abuse limit is on, as in production.
        headers = {**(headers or {}), "X-Forwarded-For": client_address(number)}
        await self.slots.acquire(number)
        began = time.perf_counter()
        try:
            status, answer = await self.client.request(method, path, content, headers)
        except (TransportError, TimeoutError):
            self.stats.record(endpoint, 0, time.perf_counter() - began)
            self.tally.transport_errors += 1
            return 0, None
        finally:
            self.slots.release()
        self.stats.record(endpoint, status, time.perf_counter() - began)
        self.tally.bytes_read += len(answer) if answer else 0
        if raw:
            return status, answer
        return status, orjson.loads(answer) if answer else None

    async def seat_view(self) -> set[str]:
        """The seats the customer sees free."""
        status, content = await self.call("GET", f"/v1/shows/{self.venue.show_id}/seats",
                                          "GET /v1/shows/{id}/seats", raw=True)
        if status != 200:
            return set()
        return free_seats(content)

    async def live_seat_map(self) -> LiveSeatMap | None:
        """The show's seat map followed over its event stream, once its first event (the whole
        map) came; None when the stream could not be opened (the customer reads the map instead)."""
        number = CUSTOMER_NUMBER.get()
        endpoint = "GET /v1/shows/{id}/seats/events (first map)"
        await self.slots.acquire(number)
        began = time.perf_counter()
        stream: EventStream | None = None
        try:
            stream = await open_stream(self.client.host, self.client.port,
                                       f"/v1/shows/{self.venue.show_id}/seats/events",
                                       {"X-Forwarded-For": client_address(number)})
            first = await stream.next() if stream.status == 200 else None
        except TransportError:
            first = None
        finally:
            self.slots.release()
        self.stats.record(endpoint, stream.status if stream is not None and first is not None else 0,
                          time.perf_counter() - began)
        if stream is None or first is None:
            if stream is not None:
                stream.close()
            self.tally.live_maps_failed += 1
            return None
        self.tally.live_maps += 1
        self.tally.bytes_read += len(first)
        return LiveSeatMap(stream, free_seats(first), self.tally)

    # -- one customer -----------------------------------------------------------------

    async def customer(self, number: int) -> None:
        self.tally.arrived += 1
        CUSTOMER_NUMBER.set(number)
        try:
            await self._customer(number, random.Random(self.seed * 1_000_003 + number))
        finally:
            self.tally.done += 1

    async def _customer(self, number: int, rng: random.Random) -> None:
        name = self.customer_name(number)
        await self.browse()
        hold = await self.get_seats(name, number, rng)
        if hold is not None:
            await self.pay_or_walk_away(hold, rng)

    def customer_name(self, number: int) -> str:
        return f"{self.tag}-{number}@spike.example"

    async def browse(self) -> None:
        """The pages a customer reads before the show's seats: cities, movies, shows."""
        venue = self.venue
        await self.call("GET", "/v1/cities", "GET /v1/cities")
        await self.call("GET", f"/v1/cities/{venue.city_id}/movies", "GET /v1/cities/{id}/movies")
        await self.call("GET", f"/v1/cities/{venue.city_id}/movies/{venue.movie_id}/shows",
                        "GET /v1/cities/{id}/movies/{id}/shows")

    async def get_seats(self, name: str, number: int, rng: random.Random) -> dict[str, Any] | None:
        """Holds seats by count or from the seat map, and when refused may wait on the
        waitlist: the hold, or None when the customer ends up without one."""
        # Drawn apart from `rng`, so the other customers' choices stay as in a run without it.
        by_count = random.Random(self.seed * 7_000_003 + number).random() < self.behaviour.best_available_share
        if by_count:
            size = rng.choice(SIZES)
            hold = await self.hold_best_available(name, size)
        else:
            hold, size = await self.pick_and_hold(name, rng)
        if hold is False:
            return None
        if hold is None:
            if rng.random() >= self.behaviour.waitlist_share:
                self.tally.gave_up += 1
                return None
            return await self.wait_in_line(name, size)
        return hold  # type: ignore[return-value]

    async def hold_best_available(self, name: str, size: int) -> dict[str, Any] | bool | None:
        """Asks the service for the best `size` seats side by side, then anywhere: the hold,
        None when nothing fits (refused, or too few seats free to ask), False when the
        service answered otherwise. Like a map reader who sees nothing free, it does not ask
        for a hold when the counts (80 bytes, not the map) say too few seats are available."""
        status, body = await self.call("GET", f"/v1/shows/{self.venue.show_id}/seats/counts",
                                       "GET /v1/shows/{id}/seats/counts")
        if status != 200:
            return False
        if body["counts"]["available"] < size:
            return None
        path = f"/v1/shows/{self.venue.show_id}/holds"
        for together in (True, False):
            status, body = await self.call("POST", path, "POST /v1/shows/{id}/holds (count)",
                                           {"count": size, "customer": name, "together": together})
            if status == 201:
                self.tally.holds_granted += 1
                return body  # type: ignore[no-any-return]
            if status == 409 and body and body.get("error") == "seats_unavailable":
                self.tally.holds_refused += 1
                continue
            if status == 429:
                self.tally.holds_limited += 1
            else:
                self.tally.holds_failed += 1
            return False
        return None

    async def pick_and_hold(self, name: str, rng: random.Random) -> tuple[dict[str, Any] | bool | None, int]:
        """Reads the seat map, picks a block, holds it (up to `retries` tries): (the hold, None
        when refused every time, or False when the service answered otherwise; the size)."""
        live = await self.live_seat_map() if self.behaviour.live_seat_map else None
        try:
            return await self._pick_and_hold(name, rng, live)
        finally:
            if live is not None:
                live.close()

    async def _pick_and_hold(self, name: str, rng: random.Random,
                             live: LiveSeatMap | None) -> tuple[dict[str, Any] | bool | None, int]:
        venue = self.venue
        view = live.free if live is not None else await self.seat_view()
        size = rng.choice(SIZES)
        hold: dict[str, Any] | None = None
        for attempt in range(self.behaviour.retries):
            if attempt >= 2 and live is None:
                view = await self.seat_view()  # a live map needs no second read
            seats = self.pick(view, size, rng)
            if seats is None:
                break
            status, body = await self.call("POST", f"/v1/shows/{venue.show_id}/holds",
                                           "POST /v1/shows/{id}/holds", {"seats": list(seats), "customer": name})
            if status == 201:
                self.tally.holds_granted += 1
                hold = body
                break
            if status == 409 and body and body.get("error") == "seats_unavailable":
                self.tally.holds_refused += 1
                for seat in body.get("unavailable", ()):
                    view.discard(seat)
                continue
            if status == 429:
                self.tally.holds_limited += 1
            else:
                self.tally.holds_failed += 1
            return False, size
        return hold, size

    def pick(self, view: set[str], size: int, rng: random.Random) -> tuple[str, ...] | None:
        blocks = self.venue.blocks[size]

        def free(block: tuple[str, ...]) -> bool:
            return all(s in view for s in block)

        if len(view) < size:
            return None

        if rng.random() >= self.behaviour.best_seekers:
            # Anywhere will do: a few random tries before a full scan (keeps the client cheap).
            for _ in range(20):
                block = rng.choice(blocks)
                if free(block):
                    return block
        found: list[tuple[str, ...]] = []
        for block in blocks:
            if free(block):
                found.append(block)
                if len(found) == 3:
                    break
        return rng.choice(found) if found else None

    async def wait_in_line(self, name: str, size: int) -> dict[str, Any] | None:
        show_id = self.venue.show_id
        sent = time.perf_counter()
        status, body = await self.call("POST", f"/v1/shows/{show_id}/waitlist", "POST /v1/shows/{id}/waitlist",
                                       {"count": size, "customer": name})
        if status != 201:
            if status == 409 and body and body.get("error") == "no_chance":
                self.tally.waitlist_no_chance += 1
            return None
        self.tally.waitlist_joined += 1
        record = WaitRecord(body["entry_id"], size, sent, time.perf_counter(), body["status"])
        self.waits.append(record)
        entry_path = f"/v1/waitlist/{record.entry_id}"
        deadline = time.perf_counter() + self.behaviour.patience_s
        entry = body
        left = False
        while entry.get("status") == "waiting":
            if time.perf_counter() > deadline and not left:
                left = True
                status, _ = await self.call("DELETE", entry_path, "DELETE /v1/waitlist/{id}")
                if status == 204:
                    record.status = "cancelled"
                    self.tally.waitlist_left += 1
                    return None
                # The grant (or the end of every chance) came first: look what it was.
            else:
                await asyncio.sleep(self.behaviour.poll_s)
            answer = await self.poll(record, entry_path, "GET /v1/waitlist/{id}")
            if answer is None:
                return None
            entry = answer
        record.status = str(entry.get("status"))
        if record.status == "granted":
            record.granted_seen = time.perf_counter() if entry is not body else record.join_answered
            self.tally.waitlist_granted += 1
            return entry.get("hold")  # type: ignore[no-any-return]
        if record.status == "impossible":
            self.tally.waitlist_impossible += 1
        return None

    async def poll(self, record: Served, path: str, endpoint: str) -> dict[str, Any] | None:
        """Reads a waitlist entry or queue ticket once: its answer, None when not 200. While it
        still waits, the record keeps when this poll was sent (the client-side order check)."""
        polled = time.perf_counter()
        status, answer = await self.call("GET", path, endpoint)
        if status != 200:
            return None
        if answer.get("status") == "waiting":
            record.last_waiting_poll_sent = polled
        return answer  # type: ignore[no-any-return]

    async def pay_or_walk_away(self, hold: dict[str, Any], rng: random.Random) -> None:
        self.hold_ttls.add(int(hold.get("ttl_s") or 0))
        await asyncio.sleep(rng.random() * self.behaviour.think_s)
        if rng.random() >= self.behaviour.pay_share:
            self.tally.abandoned += 1  # the hold runs out on its own
            return
        path = f"/v1/holds/{hold['hold_id']}/confirm"
        tokens = ["tok_decline", "tok_ok"] if rng.random() < self.behaviour.decline_first else ["tok_ok"]
        for token in tokens:
            status, body = await self.call(
                "POST", path, "POST /v1/holds/{id}/confirm", {"payment": {"method": "card", "token": token}},
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            if status == 201:
                self.tally.paid += 1
                self.bookings.append(body)
                self.tally.seats_booked += len(body["seats"])
                if self.tally.seats_booked >= self.venue.seat_count and self.tally.sold_out_at is None:
                    self.tally.sold_out_at = time.perf_counter() - self.started
                return
            if status == 402:
                self.tally.declined += 1
                continue
            self.tally.confirm_failed += 1
            return
