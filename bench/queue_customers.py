"""The spike's customers behind a release queue (docs/API.md, "Release queue"): the same
people as bench/customers.py (same arrivals, party sizes, choices, payers), who join the
show's queue first, wait for their turn, and then pick, hold (with the pass), wait on the
waitlist or pay exactly as before.

A browser follows its ticket over Server-Sent Events; 20,000 open streams from one client
process would measure the client, so these customers poll the ticket instead, as often as
the service tells them (X-Queue-Refresh-After, from the ticket's estimated wait: about three
times over it, between 0.5 and 30 s apart; engine/release_queue.refresh_after_s, the rule
the ticket's stream follows too): every poll is counted in the requests per seat sold."""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.customers import Crowd
from bench.httpclient import TransportError, open_stream
from boxoffice.engine.release_queue import refresh_after_s

# When the ticket says no estimate (the service's rule needs one), look again after this.
UNKNOWN_ETA_POLL_S = 7.5
# One customer in PROBE_EVERY also tries a hold without a pass right after joining, as a
# bot skipping the queue would: it must never be granted (403 pass_required while the
# queue runs; 409 sale_not_open before the opening; after the queue ended sold out, the
# seats are gone).
PROBE_EVERY = 50
# The pass of the customer a request is made for: sent with its holds and waitlist joins.
QUEUE_PASS: contextvars.ContextVar[str | None] = contextvars.ContextVar("queue_pass", default=None)
FINAL_STATUSES = ("admitted", "expired", "sold_out", "left", "closed")


@dataclass
class TicketRecord:
    """What the client saw of one queue ticket (the client-side order check uses it)."""

    ticket_id: str
    customer: str
    join_sent: float
    join_answered: float
    status: str = "waiting"
    first_position: int | None = None
    admitted_seen: float | None = None
    last_waiting_poll_sent: float = 0.0
    held: bool = False


@dataclass
class QueueTally:
    joined: int = 0
    join_refused: int = 0
    admitted: int = 0
    sold_out: int = 0
    expired: int = 0
    left: int = 0
    closed: int = 0
    polls: int = 0
    streams: int = 0  # tickets followed over their event stream (--follow-streams)
    stream_events: int = 0
    streams_failed: int = 0  # could not be opened or broke: those tickets polled instead
    probes: int = 0
    probes_refused: int = 0  # refused, as they must be (probe_refusals says how)
    probes_held: int = 0  # a hold granted without a pass: must stay 0
    probe_refusals: dict[str, int] = field(default_factory=dict)


class QueueCrowd(Crowd):
    """Crowd whose customers go through the show's release queue first."""

    def __init__(self, *args: Any, follow_streams: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = QueueTally()
        self.tickets: list[TicketRecord] = []
        self.follow_streams = follow_streams

    async def call(self, method: str, path: str, endpoint: str, body: Any = None,
                   headers: dict[str, str] | None = None, raw: bool = False) -> tuple[int, Any]:
        queue_pass = QUEUE_PASS.get()
        if queue_pass and method == "POST" and path.startswith("/v1/shows/"):
            headers = {**(headers or {}), "X-Queue-Pass": queue_pass}
        return await super().call(method, path, endpoint, body, headers, raw)

    async def _customer(self, number: int, rng: random.Random) -> None:
        name = self.customer_name(number)
        await self.browse()
        joined = await self.join(name)
        if joined is None:
            return
        record, ticket = joined
        if number % PROBE_EVERY == 0:
            await self.hold_without_pass(name)
        ticket = await self.wait_for_turn(record, ticket)
        if ticket is None:
            return
        QUEUE_PASS.set(ticket["pass"]["token"])
        # From here on the same steps as without a queue (bench/customers.py).
        hold = await self.get_seats(name, number, rng)
        if hold is None:
            await self.leave(record)  # the place goes to the next in line
            return
        record.held = True
        await self.pay_or_walk_away(hold, rng)

    async def join(self, name: str) -> tuple[TicketRecord, dict[str, Any]] | None:
        sent = time.perf_counter()
        status, body = await self.call("POST", f"/v1/shows/{self.venue.show_id}/queue",
                                       "POST /v1/shows/{id}/queue", {"customer": name})
        if status != 201:
            self.queue.join_refused += 1
            return None
        self.queue.joined += 1
        record = TicketRecord(body["ticket_id"], name, sent, time.perf_counter(), body["status"],
                              first_position=body.get("position"))
        self.tickets.append(record)
        return record, body

    async def hold_without_pass(self, name: str) -> None:
        """A bot's hold straight at the seats: must be refused while the queue runs."""
        self.queue.probes += 1
        seat = self.venue.blocks[1][0]
        status, body = await self.call("POST", f"/v1/shows/{self.venue.show_id}/holds",
                                       "POST /v1/shows/{id}/holds (no pass)",
                                       {"seats": list(seat), "customer": name})
        if status in (403, 409) and body:
            self.queue.probes_refused += 1
            code = str(body.get("error"))
            self.queue.probe_refusals[code] = self.queue.probe_refusals.get(code, 0) + 1
        elif status == 201:
            self.queue.probes_held += 1
            await self.call("DELETE", f"/v1/holds/{body['hold_id']}", "DELETE /v1/holds/{id}")

    async def wait_for_turn(self, record: TicketRecord, ticket: dict[str, Any]) -> dict[str, Any] | None:
        """Follows the ticket (its stream, or polls) until it is admitted (the ticket, with its
        pass) or ends (None)."""
        path = f"/v1/queue/{record.ticket_id}"
        if self.follow_streams and ticket.get("status") == "waiting":
            ticket = await self.follow(path, ticket)
        while ticket.get("status") == "waiting":
            eta = ticket.get("eta_s")
            await asyncio.sleep(refresh_after_s(eta) if isinstance(eta, int) else UNKNOWN_ETA_POLL_S)
            self.queue.polls += 1
            answer = await self.poll(record, path, "GET /v1/queue/{id}")
            if answer is None:
                return None
            ticket = answer
        record.status = str(ticket.get("status"))
        if record.status == "admitted" and ticket.get("pass"):
            record.admitted_seen = time.perf_counter()
            self.queue.admitted += 1
            return ticket
        self.count_ending(record.status)
        return None

    async def follow(self, path: str, ticket: dict[str, Any]) -> dict[str, Any]:
        """The ticket as its event stream last told it, read until it stops waiting (or the
        stream fails: the ticket as last known, which the caller then polls). Waiting events
        are not used by the client-side order check (when Redis read them is not known);
        the exact check from Redis's record covers these tickets."""
        began = time.perf_counter()
        try:
            stream = await open_stream(self.client.host, self.client.port, path + "/events")
        except TransportError:
            self.queue.streams_failed += 1
            return ticket
        self.stats.record("GET /v1/queue/{id}/events (head)", stream.status, time.perf_counter() - began)
        try:
            if stream.status != 200:
                self.queue.streams_failed += 1
                return ticket
            self.queue.streams += 1
            first = True
            while (data := await stream.next()) is not None:
                ticket = orjson.loads(data)
                self.queue.stream_events += 1
                if first:
                    self.stats.record("GET /v1/queue/{id}/events (first event)", 200, time.perf_counter() - began)
                    first = False
                if ticket.get("status") != "waiting":
                    return ticket
            self.queue.streams_failed += 1  # ended while waiting: not as the contract says
            return ticket
        finally:
            stream.close()

    async def leave(self, record: TicketRecord) -> None:
        status, _ = await self.call("DELETE", f"/v1/queue/{record.ticket_id}", "DELETE /v1/queue/{id}")
        if status == 204:
            record.status = "left"

    def count_ending(self, status: str) -> None:
        if status in ("sold_out", "expired", "left", "closed"):
            setattr(self.queue, status, getattr(self.queue, status) + 1)
