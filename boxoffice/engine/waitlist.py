"""The fair waitlist: join, leave, status with an honest eta. Grants happen inside the
scripts that free seats (lua/includes/waitlist.lua); this module validates and reads.
The policy and the eta are explained in docs/WAITLIST.md."""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from boxoffice.engine.catalog import Catalog
from boxoffice.engine.errors import (
    EntryNotWaiting,
    InvalidRequest,
    NotFound,
)
from boxoffice.engine.holds import Hold, Holds
from boxoffice.engine.ids import IdSigner
from boxoffice.engine.limits import MAX_SEATS_PER_CUSTOMER
from boxoffice.engine.redis.gateway import NO_LIMITS, RateLimits, ShowScripts, text
from boxoffice.engine.statuses import EntryStatus

# The share of holds that end unpaid starts from this prior, worth PRIOR_WEIGHT ended
# holds, and moves to the show's measured share as its holds end.
PRIOR_UNPAID_SHARE = 0.3
PRIOR_WEIGHT = 10
# Holds looked at for an eta, earliest deadlines first; an eta beyond them is unknown.
# They are read once per show and shared by all its waiters for ETA_HOLDS_MAX_AGE_S.
DEADLINES_FOR_ETA = 2000
ETA_HOLDS_MAX_AGE_S = 1.0
ETA_HOLDS_CACHED_SHOWS = 1000
# Up to this many seats still needed the exact distribution is computed (0.6 ms at 40);
# beyond, the normal approximation (whose median is the mean) is close and costs nothing.
EXACT_UP_TO = 40
FINAL_ENTRY_STATES = frozenset({EntryStatus.GRANTED, EntryStatus.IMPOSSIBLE, EntryStatus.CANCELLED,
                                EntryStatus.EXPIRED})

def unpaid_share(holds_paid: int, holds_unpaid: int) -> float:
    """The share of holds expected to end unpaid: the show's measured share, smoothed."""
    ended = holds_paid + holds_unpaid
    return (holds_unpaid + PRIOR_UNPAID_SHARE * PRIOR_WEIGHT) / (ended + PRIOR_WEIGHT)


def estimate_eta_s(wanted: int, free_now: int, deadlines: list[tuple[int, int]], share: float,
                   now_ms: int, starts_at_ms: int = 0) -> int | None:
    """Median seconds until `wanted` seats are free for an entry, or None when unknown.

    `wanted` counts the entry's seats and those of the competing entries ahead of it;
    `free_now` the seats already free for them. Each active hold (deadline_ms, seats),
    earliest first, gives its seats back at its deadline with probability `share` (it
    expires or is released unpaid) and keeps them otherwise. The answer is the first
    deadline by which enough seats are back with probability at least one half; None when
    no such deadline is known or it falls after the show starts (the entry would expire)."""
    needed = wanted - free_now
    if needed <= 0:
        return 0
    if share <= 0:
        return None
    if needed <= EXACT_UP_TO:
        # distribution[k]: probability that k seats are back (k == needed: at least needed)
        distribution = [1.0] + [0.0] * needed
        for deadline_ms, seats in deadlines:
            for k in range(needed, -1, -1):
                if distribution[k] and k < needed:
                    moved = distribution[k] * share
                    distribution[k] -= moved
                    distribution[min(needed, k + seats)] += moved
            if distribution[needed] >= 0.5:
                return _seconds_until(deadline_ms, now_ms, starts_at_ms)
        return None
    expected = 0.0
    for deadline_ms, seats in deadlines:
        expected += seats * share
        if expected >= needed:
            return _seconds_until(deadline_ms, now_ms, starts_at_ms)
    return None


def _seconds_until(deadline_ms: int, now_ms: int, starts_at_ms: int) -> int | None:
    if starts_at_ms and deadline_ms >= starts_at_ms:
        return None
    return max(0, math.ceil((deadline_ms - now_ms) / 1000))


@dataclass(frozen=True)
class HoldsAhead:
    """A show's active holds, earliest deadline first, with their seats per category."""

    holds: list[tuple[int, dict[str, int]]]

    @classmethod
    def parse(cls, flat: list[Any]) -> HoldsAhead:
        holds = []
        for i in range(1, len(flat) - 1, 2):
            counts = {}
            for part in text(flat[i + 1]).split(","):
                category, _, n = part.partition("=")
                counts[category] = int(n)
            holds.append((int(flat[i]), counts))
        return cls(holds)

    def deadlines(self, category: str | None, after_ms: int) -> list[tuple[int, int]]:
        """(deadline, seats usable by an entry of `category`) of the holds still running."""
        out = []
        for deadline, counts in self.holds:
            seats = counts.get(category, 0) if category else sum(counts.values())
            if seats and deadline > after_ms:
                out.append((deadline, seats))
        return out


@dataclass(frozen=True)
class WaitlistEntry:
    """A waitlist entry as the engine answers it (api/shapes.py writes its JSON)."""

    entry_id: str
    show_id: int
    status: EntryStatus
    count: int | None  # None: Redis no longer knows the entry, nor its count and category
    category: str | None  # None: any seat will do
    position: int | None  # 1 is served next; None unless waiting
    eta_s: int | None = None  # the median estimate of the wait; None unless waiting and known
    hold: Hold | None = None  # the hold granted to it; None unless granted

    @property
    def ended(self) -> bool:
        return self.status in FINAL_ENTRY_STATES


class Waitlist:
    def __init__(self, gateway: ShowScripts, catalog: Catalog, signer: IdSigner, holds: Holds) -> None:
        self.gateway = gateway
        self.catalog = catalog
        self.signer = signer
        self.holds = holds
        self._holds: dict[int, tuple[float, HoldsAhead]] = {}
        self._holds_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def holds_ahead(self, show_id: int, now_ms: int | None = None) -> HoldsAhead:
        """The show's holds for etas: one script call per show and moment, however many
        waiters ask (each stream of a long queue asks twice a second)."""
        if now_ms is not None:  # tests moving time: always fresh
            return HoldsAhead.parse(await self.gateway.eta_holds(show_id, DEADLINES_FOR_ETA, now_ms))
        async with self._holds_locks[show_id]:
            cached = self._holds.get(show_id)
            if cached is not None and time.monotonic() - cached[0] < ETA_HOLDS_MAX_AGE_S:
                return cached[1]
            fresh = HoldsAhead.parse(await self.gateway.eta_holds(show_id, DEADLINES_FOR_ETA))
            if len(self._holds) >= ETA_HOLDS_CACHED_SHOWS:
                self._holds.clear()
            self._holds[show_id] = (time.monotonic(), fresh)
            return fresh

    def parse_entry_id(self, entry_id: str) -> int:
        parsed = self.signer.parse(entry_id, "W")
        if parsed is None:
            raise NotFound("no such waitlist entry")
        return parsed.show_id

    async def join(self, show_id: int, customer: str, count: int, category: str | None,
                   now_ms: int | None = None, idempotency_key: str | None = None,
                   limits: RateLimits = NO_LIMITS, queue_pass: str = "") -> WaitlistEntry:
        """Queues the customer (the 201 answer). With an idempotency key the entry's id derives from
        it, so a repeated request answers the entry its first run made. now_ms (tests only)
        moves the scripts' clock."""
        show = await self.catalog.show(show_id)
        # The count's range is api/validation.py's; the show's categories are the engine's.
        if category is not None and category not in show.prices:
            raise InvalidRequest("unknown price category",
                                 details=[{"field": "category", "problem": f"not a category of show {show_id}"}])
        entry_id = self.signer.new_entry_id(show_id, customer, idempotency_key)
        joined = await self.gateway.join_waitlist(show_id, entry_id, customer, count, category or "",
                                                  MAX_SEATS_PER_CUSTOMER, now_ms, limits, queue_pass)
        status = EntryStatus(joined.status)
        hold = None
        if status == EntryStatus.GRANTED:
            # Seats were free for it: granted at once, the hold comes with the answer.
            hold = await self.holds.hold_status(grant_hold_id(entry_id), now_ms=now_ms)
        return WaitlistEntry(entry_id, show_id, status, count, category, joined.position or None, hold=hold)

    async def leave(self, entry_id: str, now_ms: int | None = None) -> None:
        show_id = self.parse_entry_id(entry_id)
        status = await self.gateway.leave_waitlist(show_id, entry_id, now_ms)
        if status is not None:
            status = status or EntryStatus.EXPIRED.value
            raise EntryNotWaiting(f"the entry is {status}, not waiting", status=status)

    async def status(self, entry_id: str, now_ms: int | None = None) -> WaitlistEntry:
        show_id = self.parse_entry_id(entry_id)
        entry = await self.gateway.entry_status(show_id, entry_id, now_ms)
        if entry is None:
            # A genuine id Redis no longer knows: long gone, or lost with a wiped Redis.
            return WaitlistEntry(entry_id, show_id, EntryStatus.EXPIRED, None, None, None)
        status, category, count = EntryStatus(entry.status), entry.category or None, entry.count
        if status == EntryStatus.WAITING:
            share = unpaid_share(entry.holds_paid, entry.holds_unpaid)
            holds = await self.holds_ahead(show_id, now_ms)
            eta_s = estimate_eta_s(entry.wanted_ahead + count, entry.free_for_entry,
                                   holds.deadlines(category, entry.now_ms), share, entry.now_ms, entry.starts_at_ms)
            return WaitlistEntry(entry_id, show_id, status, count, category, entry.position, eta_s)
        hold = None
        if status == EntryStatus.GRANTED and entry.hold_id:
            hold = await self.holds.hold_status(entry.hold_id, now_ms=now_ms)
        return WaitlistEntry(entry_id, show_id, status, count, category, None, hold=hold)


def grant_hold_id(entry_id: str) -> str:
    """The id of the hold granted to an entry (lua/includes/waitlist.lua derives it)."""
    return "G" + entry_id[1:]
