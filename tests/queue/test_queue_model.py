"""A hypothesis state machine drives the release queue (join, leave, the opening, the
sweeper's admission tick, holds with and without a pass, passes lapsing, selling out by
confirming, closing) against the engine and, side by side, a small pure-Python model of its
rules (docs/API.md, "Release queue"): every answer, admission order, pacing and every
ticket's stored state must agree after every step. Time moves through the scripts' now-ms
override; the model settles the queue exactly when a script of the engine does (joins,
leaves, ticks, holds after the opening, closing), as Redis stores it between calls."""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from boxoffice.engine.admin import HallRequest, MovieRequest, SeatRequest, ShowRequest
from boxoffice.engine.errors import (
    AlreadyQueued,
    BoxOfficeError,
    PassRequired,
    SaleNotOpen,
    SeatsUnavailable,
    ShowClosed,
)
from boxoffice.engine.redis.gateway import BestRequest
from boxoffice.engine.release_queue import QueueTicket
from boxoffice.engine.wiring import Engine, open_engine
from tests.api.test_admin import admin_database, admin_settings
from tests.support.services import RedisServer

__all__ = ["admin_database"]  # a fixture used by name

SEATS = 3
SHOPPERS = 2  # admitted buyers shopping at once
RATE = 1000  # admissions a second: the budget grows by one each millisecond
PASS_MS = 10_000
CUSTOMERS = ["ana", "ben", "cai", "dee", "eli"]
_shows = itertools.count(1)


@dataclass
class Ticket:
    customer: str
    status: str = "waiting"
    used: bool = False
    expires_at: int = 0


@dataclass
class Model:
    """The queue's rules in a few lines (arrival order)."""

    opens: int
    now: int
    tickets: dict[str, Ticket] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)  # in admission order
    ended: str = ""
    closed: bool = False
    free: int = SEATS
    held: int = 0
    budget: float = 0.0
    budget_at: int | None = None
    admitted_order: list[str] = field(default_factory=list)

    def live(self, ticket_id: str) -> bool:
        t = self.tickets[ticket_id]
        return t.status == "waiting" or (t.status == "admitted" and not t.used)

    def shopping(self) -> list[str]:
        return [i for i, t in self.tickets.items() if t.status == "admitted" and not t.used]

    def end_queue(self, status: str) -> None:
        for ticket_id in list(self.waiting) + self.shopping():
            self.tickets[ticket_id].status = status
        self.waiting = []
        self.ended = status

    def settle(self) -> None:
        """lua/includes/queue.lua queue_settle."""
        if self.ended:
            return
        if self.closed:
            self.end_queue("closed")
            return
        for ticket_id in self.shopping():
            if self.tickets[ticket_id].expires_at <= self.now:
                self.tickets[ticket_id].status = "expired"
        if self.free + self.held <= 0:
            self.end_queue("sold_out")

    def admit(self) -> None:
        """lua/includes/queue.lua admit."""
        if self.ended or self.now < self.opens or self.closed:
            return
        at = self.opens if self.budget_at is None else self.budget_at
        budget = min(max(1, RATE), self.budget + (self.now - at) * RATE / 1000)
        n = min(SHOPPERS - len(self.shopping()), math.floor(budget))
        admitted = 0
        for ticket_id in self.waiting[:max(0, n)]:
            self.tickets[ticket_id].status = "admitted"
            self.tickets[ticket_id].expires_at = self.now + PASS_MS
            self.admitted_order.append(ticket_id)
            admitted += 1
        self.waiting = self.waiting[admitted:]
        self.budget, self.budget_at = budget - admitted, self.now

    def customer_queued(self, customer: str) -> bool:
        return any(t.customer == customer and self.live(i) for i, t in self.tickets.items())


class QueueMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    ctx: Engine
    hall_id: int
    movie_id: int

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def outcome(self, coroutine: Any) -> Any:
        try:
            return self.run(coroutine)
        except BoxOfficeError as exc:
            return type(exc)

    @initialize()
    def a_new_show(self) -> None:
        seconds, _ = self.run(self.ctx.redis.time())
        opens = (int(seconds) + 120) * 1000
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        starts = hour + timedelta(days=3, hours=4 * next(_shows))
        made = self.run(self.ctx.admin.create_show_with_queue("model", ShowRequest(
            self.hall_id, self.movie_id, starts, {"standard": 1000}, "EUR",
            datetime.fromtimestamp(opens / 1000, UTC), "arrival")))
        self.show_id = made.show.id
        self.model = Model(opens=opens, now=opens - 60_000)
        self.holds: list[str] = []
        self.confirmed = 0

    def ticket_ids(self) -> list[str]:
        return list(self.model.tickets)

    @rule(customer=st.sampled_from(CUSTOMERS))
    def join(self, customer: str) -> None:
        m = self.model
        got = self.outcome(self.ctx.release_queue.join(self.show_id, customer, now_ms=m.now))
        m.settle()
        if m.closed:
            assert got is ShowClosed
            return
        if not m.ended and m.customer_queued(customer):
            assert got is AlreadyQueued
            return
        assert isinstance(got, QueueTicket), got
        m.tickets[got.ticket_id] = Ticket(customer)
        if m.ended:
            m.tickets[got.ticket_id].status = m.ended
        else:
            m.waiting.append(got.ticket_id)
            m.admit()
        assert got.status == m.tickets[got.ticket_id].status

    @precondition(lambda self: self.model.tickets)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        m = self.model
        ticket_id = data.draw(st.sampled_from(self.ticket_ids()))
        got = self.outcome(self.ctx.release_queue.leave(ticket_id, now_ms=m.now))
        m.settle()
        t = m.tickets[ticket_id]
        if t.status == "left":
            assert got is None
        elif m.live(ticket_id):
            assert got is None
            t.status = "left"
            if ticket_id in m.waiting:
                m.waiting.remove(ticket_id)
            m.admit()
        else:
            assert got is not None and issubclass(got, BoxOfficeError)

    @rule(ms=st.sampled_from([1, 7, 250, 1000, 60_000, PASS_MS + 1]))
    def time_passes(self, ms: int) -> None:
        self.model.now += ms

    @precondition(lambda self: self.model.now < self.model.opens)
    @rule(after_ms=st.sampled_from([0, 1, 1000]))
    def the_opening(self, after_ms: int) -> None:
        self.model.now = self.model.opens + after_ms

    @rule()
    def sweeper_tick(self) -> None:
        m = self.model
        self.run(self.ctx.release_queue.tick(self.show_id, now_ms=m.now))
        m.settle()
        m.admit()

    @rule(with_pass=st.booleans(), data=st.data())
    def hold(self, with_pass: bool, data: st.DataObject) -> None:
        m = self.model
        if with_pass and m.tickets:
            ticket_id: str | None = data.draw(st.sampled_from(self.ticket_ids()))
            assert ticket_id is not None
            customer = m.tickets[ticket_id].customer
            token = self.run(self.ctx.redis.hget(self.ctx.keys.ticket(self.show_id, ticket_id), "token"))
        else:
            ticket_id, customer, token = None, data.draw(st.sampled_from(CUSTOMERS)), ""
        got = self.outcome(self.ctx.holds.hold_best(self.show_id, BestRequest(1), customer, now_ms=m.now,
                                                        queue_pass=token))
        if m.closed:
            assert got is ShowClosed
            return
        if m.now < m.opens:
            assert got is SaleNotOpen
            return
        m.settle()
        active = not m.ended
        valid = ticket_id is not None and m.tickets[ticket_id].status == "admitted" and not m.tickets[ticket_id].used \
            and m.tickets[ticket_id].expires_at > m.now
        if active and not valid:
            assert got is PassRequired
            return
        if m.free < 1:
            assert got is SeatsUnavailable
            return
        assert not isinstance(got, type), got
        self.holds.append(got.hold_id)
        m.free, m.held = m.free - 1, m.held + 1
        if active:
            assert ticket_id is not None
            m.tickets[ticket_id].used = True
            m.admit()

    @precondition(lambda self: self.holds)
    @rule()
    def confirm(self) -> None:
        hold_id = self.holds.pop(0)
        if self.model.closed:
            return
        self.run(self.ctx.confirmations.confirm(hold_id, f"model-{hold_id[-12:]}", "tok_ok"))
        self.model.held -= 1

    @rule()
    def close(self) -> None:
        m = self.model
        self.run(self.ctx.holds.close_show(self.show_id))
        if not m.closed:
            m.closed = True
            m.held = 0  # holds end released (their seats free; nothing sells any more)
            if not m.ended:
                m.end_queue("closed")

    @invariant()
    def stored_tickets_match_the_model(self) -> None:
        m = self.model
        for ticket_id, t in m.tickets.items():
            stored = self.run(self.ctx.redis.hmget(self.ctx.keys.ticket(self.show_id, ticket_id),
                                                   ["status", "used", "expires_at"]))
            assert (stored[0], stored[1] == "1") == (t.status, t.used), (ticket_id, stored, t)
            if t.status == "admitted":
                assert int(stored[2]) == t.expires_at
        waiting = self.run(self.ctx.redis.zrange(self.ctx.keys.queue(self.show_id), 0, -1))
        assert waiting == m.waiting
        order = self.run(self.admission_order())
        assert order == m.admitted_order

    async def admission_order(self) -> list[str]:
        """Redis's own record of the admissions (admit_seq), in order."""
        seqs = []
        for ticket_id in self.model.tickets:
            seq = await self.ctx.redis.hget(self.ctx.keys.ticket(self.show_id, ticket_id), "admit_seq")
            if seq is not None:
                seqs.append((int(seq), ticket_id))
        return [ticket_id for _, ticket_id in sorted(seqs)]


@pytest.fixture
def machine_engine(redis_server: RedisServer, admin_database: str) -> Iterator[None]:
    """An engine at the model's pace, with a hall and a movie of its own, handed to QueueMachine."""
    loop = asyncio.new_event_loop()
    settings = admin_settings(redis_server, admin_database, f"model:{uuid.uuid4().hex}").with_changes(
        queue_shoppers=SHOPPERS, queue_admit_per_s=RATE, queue_pass_s=PASS_MS // 1000, hold_ttl_s=3600)
    ctx = loop.run_until_complete(open_engine(settings, background=False))
    try:
        seats = [SeatRequest(f"A{n}", "A", n, n * 10, 0, "standard", "standard") for n in range(1, SEATS + 1)]
        city = loop.run_until_complete(ctx.admin.create_city("model", _city()))
        cinema = loop.run_until_complete(ctx.admin.create_cinema("model", _cinema(city.id)))
        hall = loop.run_until_complete(ctx.admin.create_hall("model", HallRequest(cinema.id, "Q", seats)))
        movie = loop.run_until_complete(ctx.admin.create_movie("model", MovieRequest(
            f"The Queue {uuid.uuid4().hex[:6]}", 90, "PG", datetime(2026, 11, 1).date(), ["Drama"])))
        QueueMachine.loop, QueueMachine.ctx = loop, ctx
        QueueMachine.hall_id, QueueMachine.movie_id = hall.id, movie.id
        yield
    finally:
        keys = loop.run_until_complete(_keys(ctx))
        if keys:
            loop.run_until_complete(ctx.redis.delete(*keys))
        loop.run_until_complete(ctx.close())
        loop.close()


def test_the_queue_agrees_with_its_model(machine_engine: None) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(QueueMachine, settings=hypothesis_settings(
        max_examples=25, stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow]))


def test_a_tick_before_anyone_joined_leaves_the_pace_to_the_service(machine_engine: None) -> None:
    """Found by the state machine: the sweeper's tick just after the opening, before the
    first join told Redis the service's pace, paced the queue at a built-in 50 a second
    and kept that budget, so the first buyer waited where the service's 1,000 a second
    admitted her at once."""
    machine = QueueMachine()
    machine.a_new_show()
    machine.the_opening(after_ms=0)
    machine.time_passes(ms=1)
    machine.sweeper_tick()
    machine.join(customer="ana")  # asserts the ticket is admitted, as the model says
    machine.stored_tickets_match_the_model()


async def _keys(ctx: Engine) -> list[str]:
    return [k async for k in ctx.redis.scan_iter(match=f"{ctx.keys.prefix}:*", count=1000)]


def _city() -> Any:
    from boxoffice.engine.admin import CityRequest

    return CityRequest(f"Queueville {uuid.uuid4().hex[:6]}", "NL")


def _cinema(city_id: int) -> Any:
    from boxoffice.engine.admin import CinemaRequest

    return CinemaRequest(city_id, f"Model Cinema {uuid.uuid4().hex[:6]}", "Gracht 1")
