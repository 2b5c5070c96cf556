"""Proof of fairness (docs/WAITLIST.md).

1. A hypothesis state machine drives joins, leaves, direct holds, releases, bookings and
   clock advances (expiries) against the service's scripts on real Redis and, side by
   side, against a small pure-Python model of the queue and its rules (docs/DESIGN.md); after
   every step both agree on every entry's status, position and grant, every hold and
   every seat. The model asserts arrival order and waiters first itself as it grants.
2. A contention test: a full show, 300 waiters joining at once over HTTP, holds expiring
   in waves while newcomers try to take the freed seats and several sweepers race;
   grants follow arrival order exactly, no newcomer got a seat while anybody waited,
   and every entry ends in a final state."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from boxoffice.engine.catalog import Seat
from boxoffice.engine.errors import ScriptCode
from boxoffice.engine.limits import MAX_SEATS_PER_CUSTOMER
from boxoffice.engine.settings import Settings
from boxoffice.engine.waitlist import grant_hold_id
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.best_model import Place, best_block, best_scattered, places_of
from tests.support.seats import seat_marks
from tests.waitlist.test_waitlist import SmallShow, book_in_redis, redis_now_ms, small_show

TTL_S = 30
TTL_MS = TTL_S * 1000
CUSTOMERS = [f"p{i}@example.org" for i in range(8)]
CATEGORIES = ["", "standard", "premium", "vip"]


# -- the model ------------------------------------------------------------------------


@dataclass
class MHold:
    seats: list[str]
    customer: str
    expires_at: int
    status: str = "active"


@dataclass
class MEntry:
    customer: str
    count: int
    category: str
    status: str = "waiting"
    hold_id: str | None = None


@dataclass
class Model:
    """The queue and the rules, in plain Python. Seats outside `seats` are sold."""

    seats: dict[str, Seat]
    now: int
    places: dict[str, int]  # seat -> place along its row (an aisle skips a place)
    owner: dict[str, str] = field(default_factory=dict)  # seat -> hold id or "booked"
    holds: dict[str, MHold] = field(default_factory=dict)
    entries: dict[str, MEntry] = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)  # waiting entry ids, in arrival order

    def usable(self, entry: MEntry, seat: str) -> bool:
        return entry.category in ("", self.seats[seat].category)

    def free(self) -> list[str]:
        return [s for s in self.seats if s not in self.owner]

    def unsold(self, category: str) -> int:
        return sum(1 for s, seat in self.seats.items()
                   if self.owner.get(s) != "booked" and category in ("", seat.category))

    def held_by(self, customer: str) -> int:
        return sum(len(h.seats) for h in self.holds.values() if h.status == "active" and h.customer == customer)

    def waiting_entry_of(self, customer: str) -> MEntry | None:
        return next((self.entries[e] for e in self.queue if self.entries[e].customer == customer), None)

    def reserved(self, seat: str) -> bool:
        """Waiters first: a free seat some waiting entry could use is the queue's."""
        return any(self.usable(self.entries[e], seat) for e in self.queue)

    # state changes

    def create_hold(self, hold_id: str, customer: str, seats: list[str]) -> None:
        self.holds[hold_id] = MHold(seats, customer, self.now + TTL_MS)
        for seat in seats:
            self.owner[seat] = hold_id

    def end_hold(self, hold_id: str, status: str) -> None:
        hold = self.holds[hold_id]
        hold.status = status
        for seat in hold.seats:
            if self.owner.get(seat) == hold_id:
                del self.owner[seat]

    def end_entry(self, entry_id: str, status: str) -> None:
        self.entries[entry_id].status = status
        self.queue.remove(entry_id)

    def settle(self) -> None:
        due = [h for h, hold in self.holds.items() if hold.status == "active" and hold.expires_at <= self.now]
        for hold_id in due:
            self.end_hold(hold_id, "expired")
        if due:
            self.grant()

    def grant(self) -> None:
        """The claim policy: in arrival order, an entry takes its seats if enough free seats
        usable by it are unclaimed, else claims them all so no later entry takes them."""
        claimed: set[str] = set()
        for entry_id in list(self.queue):
            entry = self.entries[entry_id]
            eligible = [s for s in self.free() if s not in claimed and self.usable(entry, s)]
            if len(eligible) >= entry.count:
                picked = pick_seats(places_of(self.seats.values(), self.places), eligible, set(self.free()),
                                    entry.count)
                # Arrival order: no earlier waiter still waiting could have used any of these seats.
                for earlier in self.queue[: self.queue.index(entry_id)]:
                    assert not any(self.usable(self.entries[earlier], s) for s in picked)
                hold_id = grant_hold_id(entry_id)
                self.create_hold(hold_id, entry.customer, picked)
                entry.hold_id = hold_id
                self.end_entry(entry_id, "granted")
                claimed.update(picked)
            else:
                claimed.update(eligible)

    def mark_impossible(self) -> None:
        for entry_id in list(self.queue):
            entry = self.entries[entry_id]
            if self.unsold(entry.category) < entry.count:
                self.end_entry(entry_id, "impossible")

    # the operations, answering the script's result code

    def join(self, entry_id: str, customer: str, count: int, category: str) -> int:
        self.settle()
        if self.waiting_entry_of(customer):
            return ScriptCode.ALREADY_WAITING
        if self.held_by(customer) + count > MAX_SEATS_PER_CUSTOMER:
            return ScriptCode.CUSTOMER_LIMIT
        if self.unsold(category) < count:
            return ScriptCode.NO_CHANCE
        self.entries[entry_id] = MEntry(customer, count, category)
        self.queue.append(entry_id)
        self.grant()
        return 1

    def leave(self, entry_id: str) -> int:
        return self.end_live(self.entries, entry_id, "waiting", "cancelled", self.end_entry)

    def hold(self, hold_id: str, customer: str, seats: list[str]) -> int:
        self.settle()
        if any(s in self.owner or self.reserved(s) for s in seats):
            return ScriptCode.SEATS_UNAVAILABLE
        # The customer limit last, once the seats are known to be free.
        waiting = self.waiting_entry_of(customer)
        already = self.held_by(customer) + (waiting.count if waiting else 0)
        if already + len(seats) > MAX_SEATS_PER_CUSTOMER:
            return ScriptCode.CUSTOMER_LIMIT
        self.create_hold(hold_id, customer, seats)
        return 1

    def release(self, hold_id: str) -> int:
        return self.end_live(self.holds, hold_id, "active", "released", self.end_hold)

    def end_live(self, records: Mapping[str, MEntry | MHold], record_id: str, live: str, ended: str,
                 end: Callable[[str, str], None]) -> int:
        """A waiting entry left, an active hold released (leave_waitlist, release_hold): ended
        so before, the same outcome again and nothing changes; any other end, not active."""
        self.settle()
        status = records[record_id].status
        if status == ended:
            return 1
        if status != live:
            return ScriptCode.NOT_ACTIVE
        end(record_id, ended)
        self.grant()
        return 1

    def book(self, hold_id: str) -> None:
        """A paid confirm's last step (confirm_finish) on a hold still active."""
        self.settle()
        hold = self.holds[hold_id]
        assert hold.status == "active"
        hold.status = "confirmed"
        for seat in hold.seats:
            self.owner[seat] = "booked"
        self.mark_impossible()
        self.grant()


def pick_seats(seats: list[Place], eligible: list[str], free: set[str], count: int) -> list[str]:
    """The best block of `count` side-by-side seats (tests/support/best_model.py); without
    one, the `count` best-ranked seats."""
    picked = best_block(seats, set(eligible), free, count) or best_scattered(seats, set(eligible), count)
    assert picked is not None
    return picked


def chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def contested_seats(show: SmallShow) -> list[Seat]:
    """A few seats per category, with adjacent runs and gaps: the rest of the hall is sold."""
    chosen: list[Seat] = []
    for category, wanted_numbers in [("standard", {1, 2, 3, 4}), ("premium", {2, 3, 5, 6}), ("vip", {3, 4, 5})]:
        row = next(r for r in sorted({s.row for s in show.plan.seats if s.category == category}))
        chosen += [s for s in show.plan.seats if s.row == row and s.number in wanted_numbers]
    return chosen


# -- the machine ---------------------------------------------------------------------


class WaitlistMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop
    ctx: Engine
    show: SmallShow
    contested: list[Seat]

    def __init__(self) -> None:
        super().__init__()
        self.run(drop_keys(self.ctx))
        self.show_id = self.show.show_id
        self.keys = self.ctx.keys.show_keys(self.show_id)
        now = self.run(redis_now_ms(self.ctx))
        contested = {s.id for s in self.contested}
        self.run(book_in_redis(self.ctx, self.show_id, [s for s in self.show.ref.seat_ids if s not in contested],
                               now_ms=now))
        self.model = Model({s.id: s for s in self.contested}, now, self.show.plan.row_places())
        # The contested seats start held in small holds ending a second apart, so seats come
        # back a few at a time while people wait: the queue has work to do.
        for i, chunk in enumerate(chunks([s.id for s in self.contested], 2)):
            self.model.now = now + 1000 * i
            hold_id = self.ctx.signer.new_hold_id(self.show_id)
            result = self.script("hold_seats", hold_id, f"early{i}@example.org", MAX_SEATS_PER_CUSTOMER, "", "",
                                     *chunk)
            assert int(result[0]) == self.model.hold(hold_id, f"early{i}@example.org", chunk) == 1

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def script(self, name: str, *args: Any) -> Any:
        return self.run(self.ctx.gateway.call(name, self.show_id, *args, now_ms=self.model.now))

    @rule(customer=st.sampled_from(CUSTOMERS), count=st.integers(1, 4), category=st.sampled_from(CATEGORIES))
    def join(self, customer: str, count: int, category: str) -> None:
        self.join_queue(customer, count, category)

    @rule(customer=st.sampled_from(CUSTOMERS), count=st.integers(1, 4))
    def join_for_any_seat(self, customer: str, count: int) -> None:
        self.join_queue(customer, count, "")

    def join_queue(self, customer: str, count: int, category: str, answer_lost: bool = False) -> None:
        entry_id = self.ctx.signer.new_entry_id(self.show_id)
        result = self.script("join_waitlist", entry_id, customer, count, category, MAX_SEATS_PER_CUSTOMER, "", "")
        if answer_lost:
            # The call ran, its answer never came; the caller sends the same call again.
            first, result = result, self.script("join_waitlist", entry_id, customer, count, category,
                                                MAX_SEATS_PER_CUSTOMER, "", "")
            assert int(first[0]) != 1 or list(result) == list(first), (first, result)
        assert int(result[0]) == self.model.join(entry_id, customer, count, category)

    @rule(customer=st.sampled_from(CUSTOMERS), count=st.integers(1, 4), category=st.sampled_from(CATEGORIES))
    def join_answer_lost(self, customer: str, count: int, category: str) -> None:
        self.join_queue(customer, count, category, answer_lost=True)

    @precondition(lambda self: self.model.queue)
    @rule(pick=st.integers(0, 1000))
    def leave(self, pick: int) -> None:
        self.leave_entry(self.model.queue[pick % len(self.model.queue)])

    @precondition(lambda self: self.model.entries)
    @rule(pick=st.integers(0, 1000))
    def leave_any(self, pick: int) -> None:
        self.leave_entry(list(self.model.entries)[pick % len(self.model.entries)])  # ids are random: keep order

    def leave_entry(self, entry_id: str, answer_lost: bool = False) -> None:
        result = self.script("leave_waitlist", entry_id)
        if answer_lost:
            first, result = result, self.script("leave_waitlist", entry_id)
            assert list(result) == list(first), (first, result)
        assert int(result[0]) == self.model.leave(entry_id)

    @precondition(lambda self: self.model.entries)
    @rule(pick=st.integers(0, 1000))
    def leave_answer_lost(self, pick: int) -> None:
        self.leave_entry(list(self.model.entries)[pick % len(self.model.entries)], answer_lost=True)

    @rule(customer=st.sampled_from([*CUSTOMERS, "newcomer@example.org"]), data=st.data())
    def hold(self, customer: str, data: st.DataObject) -> None:
        seats = data.draw(st.lists(st.sampled_from(sorted(self.model.seats)), min_size=1, max_size=3, unique=True))
        self.hold_seats(customer, seats)

    @precondition(lambda self: self.model.free())
    @rule(pick=st.integers(0, 1000), count=st.integers(1, 3))
    def newcomer_holds_free_seats(self, pick: int, count: int) -> None:
        """Takes free seats while nobody waits (the hall fills up); free seats the queue
        keeps must be refused (waiters first)."""
        free = sorted(self.model.free())
        seats = [free[(pick + i) % len(free)] for i in range(min(count, len(free)))]
        self.hold_seats(f"newcomer{pick % 4}@example.org", seats)

    def hold_seats(self, customer: str, seats: list[str], answer_lost: bool = False) -> None:
        hold_id = self.ctx.signer.new_hold_id(self.show_id)
        result = self.script("hold_seats", hold_id, customer, MAX_SEATS_PER_CUSTOMER, "", "", *seats)
        if answer_lost:
            # The call ran, its answer never came; the same call again answers the hold it made.
            again = self.script("hold_seats", hold_id, customer, MAX_SEATS_PER_CUSTOMER, "", "", *seats)
            if int(result[0]) in (1, 2):
                assert int(again[0]) == 2 and int(again[1]) == int(result[1]), (result, again)
            else:
                assert list(again) == list(result), (result, again)
        assert int(result[0]) == self.model.hold(hold_id, customer, seats)

    @rule(customer=st.sampled_from([*CUSTOMERS, "newcomer@example.org"]), data=st.data())
    def hold_answer_lost(self, customer: str, data: st.DataObject) -> None:
        seats = data.draw(st.lists(st.sampled_from(sorted(self.model.seats)), min_size=1, max_size=3, unique=True))
        self.hold_seats(customer, seats, answer_lost=True)

    @precondition(lambda self: self.model.holds)
    @rule(pick=st.integers(0, 1000), only_active=st.booleans())
    def release(self, pick: int, only_active: bool) -> None:
        holds = [h for h, hold in self.model.holds.items() if hold.status == "active" or not only_active]
        if not holds:
            return
        hold_id = holds[pick % len(holds)]
        result = self.script("release_hold", hold_id)
        if only_active:  # a release whose answer was lost, sent again: the same answer
            first, result = result, self.script("release_hold", hold_id)
            assert list(result) == list(first), (first, result)
        assert int(result[0]) == self.model.release(hold_id)

    @precondition(lambda self: any(h.status == "active" and h.expires_at > self.model.now
                                   for h in self.model.holds.values()))
    @rule(pick=st.integers(0, 1000))
    def book(self, pick: int) -> None:
        active = [h for h, hold in self.model.holds.items()
                  if hold.status == "active" and hold.expires_at > self.model.now]
        hold_id = active[pick % len(active)]
        seats = self.model.holds[hold_id].seats
        assert int(self.script("confirm_finish", hold_id, f"bk_{hold_id[-22:]}", *seats)) == len(seats)
        # Its answer lost, the mark is sent again: nothing more is marked, nothing changes.
        assert int(self.script("confirm_finish", hold_id, f"bk_{hold_id[-22:]}", *seats)) == 0
        self.model.book(hold_id)

    @rule(seconds=st.sampled_from([1, 3, 10]))
    def advance(self, seconds: int) -> None:
        self.move_clock(self.model.now + seconds * 1000)

    @precondition(lambda self: any(h.status == "active" for h in self.model.holds.values()))
    @rule(just_before=st.booleans())
    def advance_to_next_deadline(self, just_before: bool) -> None:
        """To the next deadline (one hold ends, a few seats come back while people wait),
        or to a millisecond before it (nothing ends yet)."""
        deadline = min(h.expires_at for h in self.model.holds.values() if h.status == "active")
        self.move_clock(deadline - 1 if just_before else deadline)

    def move_clock(self, now: int) -> None:
        self.model.now = max(self.model.now, now)
        self.script("sweep")
        self.model.settle()

    @invariant()
    def check_agreement(self) -> None:
        """Every entry's status, position and grant, every hold and seat, as stored."""
        ctx, model = self.ctx, self.model
        entry_ids, hold_ids = sorted(model.entries), sorted(model.holds)
        pipe = ctx.redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.hmget(ctx.keys.entry(self.show_id, entry_id), "status", "hold_id")
            pipe.zrank(self.keys[5], entry_id)
        for hold_id in hold_ids:
            pipe.hmget(ctx.keys.hold(self.show_id, hold_id), "status", "seats")
        answers = self.run(pipe.execute())
        answers.append(self.run(seat_marks(ctx.redis, ctx.keys, self.show_id)))
        for i, entry_id in enumerate(entry_ids):
            (status, hold_id), rank = answers[2 * i], answers[2 * i + 1]
            entry = model.entries[entry_id]
            assert status == entry.status, (entry_id, status, entry)
            position = model.queue.index(entry_id) + 1 if entry.status == "waiting" else None
            assert (None if rank is None else rank + 1) == position
            assert hold_id == entry.hold_id
        for j, hold_id in enumerate(hold_ids):
            status, seats = answers[2 * len(entry_ids) + j]
            hold = model.holds[hold_id]
            assert status == hold.status and seats.split(",") == hold.seats, (hold_id, status, hold)
        stored = {seat: value for seat, value in answers[-1].items() if seat in model.seats}
        expected = {seat: ("b" if owner == "booked" else f"h:{owner}") for seat, owner in model.owner.items()}
        assert {s: (v[0] if v.startswith("b:") else v) for s, v in stored.items()} == expected
        # What a waiter's status is computed from: its position, the seats wanted ahead of
        # it by competing entries, the free seats kept for it.
        for position, entry_id in enumerate(model.queue, start=1):
            entry = model.entries[entry_id]
            status = self.script("entry_status", entry_id)
            ahead = sum(model.entries[e].count for e in model.queue[: position - 1]
                        if entry.category == "" or model.entries[e].category in ("", entry.category))
            free = sum(1 for s in model.free() if model.usable(entry, s))
            assert (int(status[3]), int(status[5]), int(status[9])) == (position, ahead, free)


async def drop_keys(ctx: Engine) -> None:
    keys = [k async for k in ctx.redis.scan_iter(match=f"{ctx.keys.prefix}:*", count=1000)]
    if keys:
        await ctx.redis.delete(*keys)


def test_the_waitlist_follows_the_model_of_the_rules(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    ctx = loop.run_until_complete(open_engine(settings.with_changes(hold_ttl_s=TTL_S, browse_cache_s=60.0),
                                               background=False))
    try:
        WaitlistMachine.loop, WaitlistMachine.ctx = loop, ctx
        WaitlistMachine.show = loop.run_until_complete(small_show(ctx))
        WaitlistMachine.contested = contested_seats(WaitlistMachine.show)
        run_state_machine_as_test(WaitlistMachine, settings=hypothesis_settings(
            max_examples=50, stateful_step_count=30, deadline=None, database=None,
            # no shrinking: a failure prints its steps at once instead of minutes later
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow]))
    finally:
        loop.run_until_complete(drop_keys(ctx))
        loop.run_until_complete(ctx.close())
        loop.close()


# -- contention -----------------------------------------------------------------------

WAITERS = 300
WAVES = 12  # each lets the next 15 deadlines pass; the queue is not through by then


async def test_300_waiters_are_served_in_arrival_order_while_holds_expire_in_waves(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    rng = random.Random(11)
    show = await small_show(ctx)
    keys = ctx.keys.show_keys(show.show_id)
    t0 = await redis_now_ms(ctx)
    # A full show: one seat per hold, deadlines 10 ms apart, so waves of expiry can be cut.
    for i, seat in enumerate(show.ref.seat_ids):
        await ctx.holds.hold(show.show_id, [seat], f"early{i}@example.org", now_ms=t0 + 10 * i)

    # Fewer at once than BOXOFFICE_MAX_IN_FLIGHT: one process sheds past it (test_shedding.py).
    at_once = asyncio.Semaphore(min(WAITERS, ctx.settings.max_in_flight or WAITERS) // 2)

    async def join(i: int) -> httpx.Response:
        async with at_once:
            return await client.post(f"/v1/shows/{show.show_id}/waitlist",
                                     json={"count": rng.randint(1, 4), "customer": f"w{i}@example.org"})

    answers = await asyncio.gather(*(join(i) for i in range(WAITERS)))
    assert all(a.status_code == 201 for a in answers), {a.text for a in answers if a.status_code != 201}
    entries = [a.json() for a in answers]
    assert sorted(e["position"] for e in entries) == list(range(1, WAITERS + 1))

    now, newcomer_attempts, newcomer_successes = t0 + TTL_MS, 0, 0
    granted_seen: set[str] = set()

    async def newcomer(seat: str, at: int) -> bool:
        hold_id = ctx.signer.new_hold_id(show.show_id)
        result = await ctx.gateway.call("hold_seats", show.show_id, hold_id, f"n-{hold_id[-8:]}@example.org",
                                         MAX_SEATS_PER_CUSTOMER, "", "", seat, now_ms=at)
        return int(result[0]) == 1

    for _wave in range(WAVES):
        due = await ctx.redis.zrange(keys[3], 0, 14, withscores=True)
        now = max(now, int(due[-1][1]))
        # Several sweepers race, newcomers try random seats at the same moment...
        targets = rng.sample(show.ref.seat_ids, 20)
        outcomes = await asyncio.gather(*(ctx.gateway.call("sweep", show.show_id, now_ms=now) for _ in range(4)),
                                        *(newcomer(seat, now) for seat in targets))
        # ...and then every seat left free (kept for the queue) is tried by a newcomer.
        taken = set(await seat_marks(ctx.redis, ctx.keys, show.show_id))
        free = [s for s in show.ref.seat_ids if s not in taken]
        outcomes += await asyncio.gather(*(newcomer(seat, now) for seat in free))
        results = [o for o in outcomes if isinstance(o, bool)]
        if await ctx.redis.zcard(keys[5]):  # somebody still waits: nobody else got anything
            newcomer_attempts += len(results)
            newcomer_successes += sum(results)
        # Each new grant is paid, released or left to expire in a later wave.
        for entry in entries:
            entry_id = entry["entry_id"]
            if entry_id in granted_seen or await ctx.redis.hget(ctx.keys.entry(show.show_id, entry_id),
                                                                 "status") != "granted":
                continue
            granted_seen.add(entry_id)
            hold_id = grant_hold_id(entry_id)
            seats = (await ctx.redis.hget(ctx.keys.hold(show.show_id, hold_id), "seats")).split(",")
            fate = rng.random()
            if fate < 0.35:
                await ctx.gateway.call("confirm_finish", show.show_id, hold_id, f"bk_{hold_id[-22:]}", *seats,
                                        now_ms=now)
            elif fate < 0.6:
                await ctx.gateway.call("release_hold", show.show_id, hold_id, now_ms=now)
        # A few waiters give up.
        for entry in rng.sample(entries, 3):
            await ctx.gateway.call("leave_waitlist", show.show_id, entry["entry_id"], now_ms=now)

    assert newcomer_attempts > 100 and newcomer_successes == 0, "waiters first: no seat went to a newcomer"
    assert await ctx.redis.zcard(keys[5]) > 0
    # Nearly everything gets sold: whoever waits for more than two seats has lost its chance.
    seat_values = await seat_marks(ctx.redis, ctx.keys, show.show_id)
    unsold = [s for s in show.ref.seat_ids if not seat_values.get(s, "").startswith("b:")]
    await book_in_redis(ctx, show.show_id, unsold[2:], now_ms=now)
    # The show starts: whoever still waits is told the queue is over.
    starts_at = int(await ctx.redis.hget(keys[0], "starts_at"))
    await ctx.gateway.call("sweep", show.show_id, now_ms=starts_at)

    pipe = ctx.redis.pipeline(transaction=False)
    for entry in entries:
        pipe.hmget(ctx.keys.entry(show.show_id, entry["entry_id"]), "status", "arrival", "end_seq")
    rows = [(status, int(arrival), int(end_seq)) for status, arrival, end_seq in await pipe.execute()]
    statuses = {status for status, _, _ in rows}
    assert statuses <= {"granted", "impossible", "cancelled", "expired"}, "every entry ended, and was told"
    assert {"granted", "impossible", "cancelled", "expired"} <= statuses, "the test reached every ending"
    assert int(await ctx.redis.hget(keys[7], "waiting")) == 0
    granted = sorted((end_seq, arrival) for status, arrival, end_seq in rows if status == "granted")
    assert len(granted) >= 30
    assert [arrival for _, arrival in granted] == sorted(arrival for _, arrival in granted), "arrival order"
    # Stronger: when an entry was granted, every earlier arrival had already ended.
    ended_at = {arrival: end_seq for _, arrival, end_seq in rows}
    for end_seq, arrival in granted:
        assert all(ended_at[a] < end_seq for a in ended_at if a < arrival)
