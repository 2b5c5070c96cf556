"""A hypothesis state machine drives holds, releases, expiries and clock advances against
the engine and, side by side, against a small pure-Python model of the rules; every answer
must agree. Time moves through the scripts' now-ms override, so a hold time of ten seconds
passes in no time at all.

The model also mirrors what Redis stores between calls: a hold whose deadline passed stays
on its seats until the next script of the show settles it (every script settles first), so
the raw seat state (tests/support/seats.py), deadlines, per-customer counts and stats can be compared after every
step without settling anything."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from boxoffice.engine.errors import HoldNotActive, InvalidRequest, LimitExceeded, SeatsUnavailable
from boxoffice.engine.limits import MAX_SEATS_PER_CUSTOMER, MAX_SEATS_PER_HOLD
from boxoffice.engine.settings import Settings
from boxoffice.engine.statuses import HoldStatus, SeatStatus
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH, empty_embedded_sales
from tests.support.seats import seat_marks
from tests.support.shows import ShowRef, pick_show

TTL_S = 10
TTL_MS = TTL_S * 1000
POOL_SIZE = 14
CUSTOMERS = ["ana@example.org", "bob@example.org"]
UNKNOWN_SEAT = "ZZ999"


@dataclass
class ModelHold:
    hold_id: str
    seats: list[str]
    customer: str
    expires_at: int
    status: str = "active"  # active | expired | released, as stored (settled lazily)


@dataclass
class Rules:
    """The rules of holds in a few lines: what the engine must answer."""

    seat_count: int
    known_seats: set[str]
    now: int
    holds: dict[str, ModelHold] = field(default_factory=dict)

    def settle(self) -> int:
        """What every script does first: holds at or past their deadline expire."""
        due = [h for h in self.holds.values() if h.status == "active" and h.expires_at <= self.now]
        for hold in due:
            hold.status = "expired"
        return len(due)

    def active(self) -> list[ModelHold]:
        return [h for h in self.holds.values() if h.status == "active"]

    def owners(self) -> dict[str, str]:
        return {seat: h.hold_id for h in self.active() for seat in h.seats}

    def held_by(self, customer: str) -> int:
        return sum(len(h.seats) for h in self.active() if h.customer == customer)

    def valid(self, seats: list[str]) -> bool:
        """What hold_seats itself refuses (the list's form is api/validation.py's): seats not
        in the hall or named twice, which would corrupt the show's counts."""
        return len(set(seats)) == len(seats) and set(seats) <= self.known_seats

    def hold(self, seats: list[str], customer: str) -> tuple[str, list[str]]:
        """("invalid"|"limit"|"unavailable"|"held", unavailable seats) of a non-empty list:
        the engine's script settles, checks the seats, then the customer's limit."""
        self.settle()
        if not self.valid(seats):
            return "invalid", []
        owners = self.owners()
        taken = [s for s in seats if s in owners]
        if taken:
            return "unavailable", taken
        if self.held_by(customer) + len(seats) > MAX_SEATS_PER_CUSTOMER:
            return "limit", []
        return "held", []

    def release(self, hold_id: str) -> str | None:
        """None when released, else the status the engine reports."""
        self.settle()
        hold = self.holds.get(hold_id)
        if hold is None:
            return "expired"  # an id Redis never knew reads as long gone
        if hold.status == "released":
            return None  # released before: the same outcome again, nothing changes
        if hold.status != "active":
            return hold.status
        hold.status = "released"
        return None


class HoldMachine(RuleBasedStateMachine):
    # Set by the test before running: one event loop and Engine for all examples.
    loop: asyncio.AbstractEventLoop
    ctx: Engine
    show: ShowRef

    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.pool = self.show.seat_ids[:POOL_SIZE]
        self.rules: Rules

    def call(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def attempt(self, coroutine: Any) -> tuple[Any, BaseException | None]:
        try:
            return self.call(coroutine), None
        except (HoldNotActive, InvalidRequest, LimitExceeded, SeatsUnavailable) as exc:
            return None, exc

    @initialize()
    def fresh_show(self) -> None:
        """Each example starts from a show Redis has never seen (loaded on first touch)."""
        self.call(drop_keys(self.ctx))
        seconds, micros = self.call(self.ctx.redis.time())
        self.rules = Rules(len(self.show.seat_ids), set(self.show.seat_ids),
                           int(seconds) * 1000 + int(micros) // 1000)

    # -- actions --------------------------------------------------------------------

    @rule(target=holds, customer=st.sampled_from(CUSTOMERS), seats=st.one_of(
        st.lists(st.sampled_from(range(POOL_SIZE)), min_size=1, max_size=6, unique=True),
        st.lists(st.sampled_from([*range(POOL_SIZE), -1]), max_size=5),  # duplicates, unknown, empty
        st.lists(st.sampled_from(range(POOL_SIZE)), min_size=11, max_size=11, unique=True),
    ))
    def hold(self, customer: str, seats: list[int]) -> Any:
        return self.check_hold([self.pool[i] if i >= 0 else UNKNOWN_SEAT for i in seats], customer)

    @rule(target=holds, customer=st.sampled_from(CUSTOMERS), beyond=st.sampled_from([0, 1]))
    def hold_up_to_the_limit(self, customer: str, beyond: int) -> Any:
        """Asks for exactly the seats left under the customer's limit, or one more."""
        self.rules.settle()  # (choosing seats only: what the engine would see as free)
        wanted = MAX_SEATS_PER_CUSTOMER - self.rules.held_by(customer) + beyond
        free = [s for s in self.pool if s not in self.rules.owners()]
        return self.check_hold(free[:max(1, min(wanted, MAX_SEATS_PER_HOLD))], customer)

    @rule(target=holds, hold_id=holds, customer=st.sampled_from(CUSTOMERS), data=st.data())
    def hold_over_another(self, hold_id: str, customer: str, data: st.DataObject) -> Any:
        """Another hold's seats, shuffled, plus one more: the refusal names them in request order."""
        extra = data.draw(st.sampled_from(self.pool))
        seats = list(dict.fromkeys([*self.rules.holds[hold_id].seats, extra]))
        return self.check_hold(data.draw(st.permutations(seats)), customer)

    def check_hold(self, seat_ids: list[str], customer: str) -> Any:
        now = self.rules.now
        got, error = self.attempt(self.ctx.holds.hold(self.show.show_id, seat_ids, customer, now_ms=now))
        if not seat_ids:
            self.rules.settle()  # the script settles what is due, then refuses the empty list
            assert isinstance(error, InvalidRequest), (seat_ids, error)
            return multiple()
        expected, unavailable = self.rules.hold(seat_ids, customer)
        if expected == "invalid":
            assert isinstance(error, InvalidRequest), (seat_ids, error)
            return multiple()
        if expected == "limit":
            assert isinstance(error, LimitExceeded), (seat_ids, customer, error)
            return multiple()
        if expected == "unavailable":
            assert isinstance(error, SeatsUnavailable), (seat_ids, error)
            assert error.extra["unavailable"] == unavailable
            return multiple()
        assert error is None, (seat_ids, error)
        assert got.customer == customer and got.status is HoldStatus.ACTIVE
        assert got.seats == seat_ids
        assert got.expires_at_ms == now + TTL_MS
        self.rules.holds[got.hold_id] = ModelHold(got.hold_id, seat_ids, customer, got.expires_at_ms)
        return got.hold_id

    @rule(hold_id=holds)
    def release(self, hold_id: str) -> None:
        _, error = self.attempt(self.ctx.holds.release(hold_id, now_ms=self.rules.now))
        refused_as = self.rules.release(hold_id)
        if refused_as is None:
            assert error is None, error
        else:
            assert isinstance(error, HoldNotActive) and error.extra["status"] == refused_as, error

    # -- a call that ran but whose answer was lost: the caller sends it again ----------

    @rule(target=holds, customer=st.sampled_from(CUSTOMERS),
          seats=st.lists(st.sampled_from(range(POOL_SIZE)), min_size=1, max_size=6, unique=True))
    def hold_answer_lost(self, customer: str, seats: list[int]) -> Any:
        """The script runs; its answer never arrives; the same call (same hold id) is sent again
        and answers what the first run did, changing nothing."""
        seat_ids = [self.pool[i] for i in seats]
        hold_id = self.ctx.signer.new_hold_id(self.show.show_id)

        def send() -> tuple[Any, BaseException | None]:
            return self.attempt(self.ctx.gateway.hold_seats(self.show.show_id, hold_id, customer,
                                                            MAX_SEATS_PER_CUSTOMER, seat_ids, self.rules.now))

        send()  # lost
        again, error = send()
        expected, detail = self.rules.hold(seat_ids, customer)
        if expected == "limit":
            assert isinstance(error, LimitExceeded), error
            return multiple()
        if expected == "unavailable":
            assert isinstance(error, SeatsUnavailable) and error.extra["unavailable"] == detail, error
            return multiple()
        assert error is None, error
        assert (again.hold_id, again.expires_at_ms) == (hold_id, self.rules.now + TTL_MS)
        self.rules.holds[hold_id] = ModelHold(hold_id, seat_ids, customer, again.expires_at_ms)
        return hold_id

    @rule(hold_id=holds)
    def release_answer_lost(self, hold_id: str) -> None:
        """A release whose answer was lost, sent again: both answer what the first did."""
        outcomes = []
        for _ in range(2):
            _, error = self.attempt(self.ctx.holds.release(hold_id, now_ms=self.rules.now))
            outcomes.append(None if error is None else error.extra["status"])
        assert outcomes == [self.rules.release(hold_id)] * 2, outcomes

    @rule()
    def release_a_hold_nobody_made(self) -> None:
        hold_id = self.ctx.signer.new_hold_id(self.show.show_id)
        _, error = self.attempt(self.ctx.holds.release(hold_id, now_ms=self.rules.now))
        assert isinstance(error, HoldNotActive) and error.extra["status"] == self.rules.release(hold_id)

    @rule(hold_id=holds)
    def status(self, hold_id: str) -> None:
        got = self.call(self.ctx.holds.hold_status(hold_id, now_ms=self.rules.now))
        self.rules.settle()
        hold = self.rules.holds[hold_id]
        assert (got.status.value, got.seats, got.customer, got.expires_at_ms) == (
            hold.status, hold.seats, hold.customer, hold.expires_at)
        ttl_s = math.ceil((hold.expires_at - self.rules.now) / 1000) if hold.status == "active" else 0
        assert got.ttl_s == ttl_s

    @rule()
    def status_of_a_hold_nobody_made(self) -> None:
        got = self.call(self.ctx.holds.hold_status(self.ctx.signer.new_hold_id(self.show.show_id),
                                                       now_ms=self.rules.now))
        self.rules.settle()
        assert got.status is HoldStatus.EXPIRED and got.seats == []

    @rule()
    def seat_map(self) -> None:
        got = self.call(self.ctx.holds.seat_statuses(self.show.show_id, now_ms=self.rules.now))
        self.rules.settle()
        assert got == dict.fromkeys(self.rules.owners(), SeatStatus.HELD)

    @rule()
    def sweep(self) -> None:
        ended = self.call(self.ctx.gateway.call("sweep", self.show.show_id, now_ms=self.rules.now))
        assert int(ended) == self.rules.settle()

    # -- time -------------------------------------------------------------------------

    @rule(ms=st.one_of(st.integers(0, TTL_MS // 5), st.integers(0, 2 * TTL_MS)))
    def advance(self, ms: int) -> None:
        self.rules.now += ms

    @rule(hold_id=holds, offset=st.sampled_from([-1, 0, 1]))
    def advance_to_deadline(self, hold_id: str, offset: int) -> None:
        """The boundary: a hold is still active 1 ms before its deadline, expired at it."""
        self.rules.now = max(self.rules.now, self.rules.holds[hold_id].expires_at + offset)

    # -- what Redis stores, read raw (reading settles nothing) ------------------------

    @invariant()
    def stored_state_matches(self) -> None:
        keys = self.ctx.keys.show_keys(self.show.show_id)
        seats, deadlines, customers, stats, first_deadline = self.call(read_raw(self.ctx, keys, self.show.show_id))
        active = self.rules.active()
        assert seats == {seat: f"h:{h.hold_id}" for h in active for seat in h.seats}
        assert deadlines == {h.hold_id: float(h.expires_at) for h in active}
        assert {c: int(n) for c, n in customers.items()} == {
            c: self.rules.held_by(c) for c in CUSTOMERS if self.rules.held_by(c)}
        if stats:  # loaded
            held = sum(len(h.seats) for h in active)
            assert (int(stats["held"]), int(stats["seats"]) - int(stats["booked"])) == (
                held, self.rules.seat_count)
            # The earliest deadline the scripts read with the meta hash (lua/includes/context.lua).
            assert int(first_deadline) == min((h.expires_at for h in active), default=0)
        else:
            assert not self.rules.holds


async def read_raw(ctx: Engine, keys: list[str], show_id: int) -> list[Any]:
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zrange(keys[3], 0, -1, withscores=True)
    pipe.hgetall(keys[4])
    pipe.hgetall(keys[7])
    pipe.hget(keys[0], "first_deadline")
    deadlines, customers, stats, first_deadline = await pipe.execute()
    seats = await seat_marks(ctx.redis, ctx.keys, show_id)
    return [seats, dict(deadlines), customers, stats, first_deadline]


async def drop_keys(ctx: Engine) -> None:
    keys = [k async for k in ctx.redis.scan_iter(match=f"{ctx.keys.prefix}:*", count=1000)]
    if keys:
        await ctx.redis.delete(*keys)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_holds_follow_the_model(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    ctx = loop.run_until_complete(open_engine(
        settings.with_changes(hold_ttl_s=TTL_S, browse_cache_s=60.0), background=False))
    loop.run_until_complete(empty_embedded_sales(ctx))  # the model starts from an unsold show
    try:
        HoldMachine.loop, HoldMachine.ctx = loop, ctx
        HoldMachine.show = loop.run_until_complete(pick_show(ctx, min_seats=POOL_SIZE))
        assert UNKNOWN_SEAT not in HoldMachine.show.seat_ids
        run_state_machine_as_test(HoldMachine, settings=hypothesis_settings(
            max_examples=40, stateful_step_count=40, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow]))
    finally:
        loop.run_until_complete(drop_keys(ctx))
        loop.run_until_complete(ctx.close())
        loop.close()
