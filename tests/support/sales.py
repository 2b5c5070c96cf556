"""The books of the confirm tests: what the simulated provider charged and refunded (its
ledger, `simulated_payments`), what PostgreSQL sold, and whether Redis shows it. One
`audit` states every rule of a confirm's end state (docs/CONFIRM.md): each test checks them all."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import text

from boxoffice.engine.wiring import Engine

T = TypeVar("T")


@dataclass
class Audit:
    charges: int = 0  # ledger rows: every charge ever taken
    refunds: int = 0  # ledger rows refunded
    bookings: int = 0
    booked_seats: int = 0
    pending: int = 0  # payment rows still undecided
    pending_cancellations: int = 0  # cancellations not yet refunded
    problems: list[str] = field(default_factory=list)

    @property
    def settled(self) -> bool:
        """Nothing left for the reconciler: no payment undecided, the rules all hold."""
        return self.pending == 0 and self.pending_cancellations == 0 and not self.problems

    def assert_consistent(self) -> None:
        assert not self.problems, "\n".join(self.problems)
        assert self.charges == self.bookings + self.refunds, self


async def audit(ctx: Engine) -> Audit:
    result = Audit()
    async with ctx.sql.connect() as conn:
        ledger = {r[0]: r[1] for r in await conn.execute(
            text("SELECT provider_key, status FROM simulated_payments"))}
        payments = {r[0]: (r[1], r[2]) for r in await conn.execute(
            text("SELECT provider_key, status, booking_id FROM payments"))}
        bookings = {r[0]: (int(r[1]), r[2]) for r in await conn.execute(
            text("SELECT id, show_id, hold_id FROM bookings"))}
        seats = list(await conn.execute(text("SELECT booking_id, show_id, seat_id FROM booked_seats")))
        cancelled = {r[0]: r[1] for r in await conn.execute(text("SELECT booking_id, status FROM cancellations"))}
    result.charges = len(ledger)
    result.refunds = sum(status == "refunded" for status in ledger.values())
    result.bookings = len(bookings) - sum(status == "refunded" for status in cancelled.values())
    result.pending_cancellations = sum(status == "pending" for status in cancelled.values())
    result.booked_seats = len(seats)
    result.pending = sum(status == "pending" for status, _ in payments.values())
    problems = result.problems
    # Every charge ends in exactly one booking or one refund.
    for key, status in ledger.items():
        ours, booking = payments.get(key, (None, None))
        if status == "captured" and ours != "captured":
            problems.append(f"charge {key} is neither booked nor refunded (payment {ours})")
        # A cancelled booking's charge is refunded; any other booking's stands.
        if status == "refunded" and ours == "captured" and cancelled.get(booking) != "refunded":
            problems.append(f"charge {key} was refunded but its booking {booking} stands")
        if status == "captured" and ours == "captured" and cancelled.get(booking) == "refunded":
            problems.append(f"booking {booking} is cancelled but its charge {key} stands")
    for key, (status, booking) in payments.items():
        if status == "captured" and ledger.get(key) != "captured" and cancelled.get(booking) != "refunded":
            problems.append(f"booking {booking} has no standing charge ({ledger.get(key)})")
    booked_by_payment = Counter(b for status, b in payments.values() if status == "captured")
    for booking_id in bookings:
        if booked_by_payment[booking_id] != 1:
            problems.append(f"booking {booking_id} has {booked_by_payment[booking_id]} payments")
    # No seat sold twice, no hold booked twice.
    sold = Counter((show_id, seat) for _, show_id, seat in seats)
    problems += [f"seat {seat} of show {show} sold {n} times" for (show, seat), n in sold.items() if n > 1]
    holds = Counter(hold for _, hold in bookings.values())
    problems += [f"hold {hold} booked {n} times" for hold, n in holds.items() if n > 1]
    # Every booked seat is booked in Redis (shows Redis holds; others load from PostgreSQL).
    for booking_id, show_id, seat in seats:
        base = ctx.keys.show_keys(int(show_id))
        if await ctx.redis.hget(base[0], "loaded") != "1":
            continue
        mark = await ctx.redis.hget(base[2], seat)
        if mark != f"b:{booking_id}":
            problems.append(f"seat {seat} of booking {booking_id} is {mark!r} in Redis")
    return result


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float = 15.0, every_s: float = 0.05) -> T:
    """Polls `check` until it answers something truthy; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s (last: {value!r})"
        await asyncio.sleep(every_s)


async def redis_now_ms(ctx: Engine) -> int:
    seconds, micros = await ctx.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000
