"""The audit after a spike: what was sold, charged and granted must add up exactly.

1. sold_exactly_once: no seat in two bookings (PostgreSQL and what the clients were told),
   every booking a client was given is in PostgreSQL with its seats.
2. redis_agrees_with_postgres: once the last holds ran out, the live seat map (and Redis
   itself when its URL is known) shows booked exactly the seats PostgreSQL sold.
3. charges_balance: the simulated provider's ledger for this show = bookings + refunds,
   in count and amount; nothing left pending.
4. waitlist_fifo: no waiter was granted seats while an earlier waiter still waited
   (exact from Redis's arrival numbers when Redis is reachable; from what the clients
   saw otherwise)."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from bench.customers import Crowd, Served, WaitRecord
from bench.sqldb import BenchDb
from boxoffice.engine.redis.keys import Keys

T = TypeVar("T", bound=Served)


@dataclass
class Check:
    name: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, **self.detail}


def booked_in_postgres(db: BenchDb, show_id: int) -> dict[str, str]:
    return {seat: booking for seat, booking in
            db.rows("SELECT seat_id, booking_id FROM booked_seats WHERE show_id = %s", (show_id,))}


def check_sold_once(db: BenchDb, show_id: int, hall_id: int, crowd: Crowd) -> Check:
    doubles = db.rows("SELECT seat_id, count(*) FROM booked_seats WHERE show_id = %s"
                      " GROUP BY seat_id HAVING count(*) > 1", (show_id,))
    foreign = db.value("SELECT count(*) FROM booked_seats b WHERE b.show_id = %s AND NOT EXISTS"
                       " (SELECT 1 FROM seats s WHERE s.hall_id = %s AND s.id = b.seat_id)", (show_id, hall_id))
    booked = booked_in_postgres(db, show_id)
    told: dict[str, str] = {}
    told_twice: list[str] = []
    missing: list[str] = []
    for booking in crowd.bookings:
        for seat in booking["seats"]:
            if seat in told:
                told_twice.append(seat)
            told[seat] = booking["booking_id"]
            if booked.get(seat) != booking["booking_id"]:
                missing.append(seat)
    bookings_in_db = int(db.value("SELECT count(*) FROM bookings WHERE show_id = %s", (show_id,)))
    unseen = bookings_in_db - len(crowd.bookings)
    # A booking nobody heard of is only excusable when an answer was lost in transit.
    ok = not doubles and not foreign and not told_twice and not missing and (
        unseen == 0 or (unseen > 0 and crowd.tally.transport_errors > 0))
    return Check("sold_exactly_once", ok, {
        "seats_sold": len(booked), "bookings": bookings_in_db, "bookings_told_to_clients": len(crowd.bookings),
        "seats_in_two_bookings": len(doubles) + len(told_twice), "seats_not_in_hall": int(foreign),
        "client_bookings_missing_in_db": len(missing),
    })


async def drain_holds(crowd: Crowd, timeout_s: float) -> dict[str, Any]:
    """Waits until no seat is held (every customer is done; unpaid holds run out)."""
    deadline = time.monotonic() + timeout_s
    path = f"/v1/shows/{crowd.venue.show_id}/seats"
    while True:
        status, content = await crowd.client.request("GET", path)
        if status != 200:
            raise RuntimeError(f"the seat map answered {status} while draining the holds")
        body = orjson.loads(content)
        if body["counts"]["held"] == 0 or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        await asyncio.sleep(0.25)


def check_redis_agrees(db: BenchDb, show_id: int, seat_map: dict[str, Any], redis_url: str | None,
                       key_prefix: str) -> Check:
    booked = booked_in_postgres(db, show_id)
    shown = {s["id"]: s["status"] for s in seat_map["seats"]}
    shown_booked = {seat for seat, status in shown.items() if status == "booked"}
    held = [seat for seat, status in shown.items() if status == "held"]
    detail: dict[str, Any] = {
        "seat_map_booked": len(shown_booked), "postgres_booked": len(booked), "still_held": len(held),
        "booked_in_map_not_in_db": len(shown_booked - set(booked)),
        "booked_in_db_not_in_map": len(set(booked) - shown_booked),
    }
    ok = shown_booked == set(booked) and not held
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            base = Keys(key_prefix).show_base(show_id)
            in_redis = client.hgetall(base + "seats")
            stats = client.hgetall(base + "stats")
            # Held seats are in the status map alone (lua/includes/statusmap.lua).
            status_map = client.get(base + "statusmap") or ""
        finally:
            client.close()
        redis_booked = {seat: value[2:] for seat, value in in_redis.items() if value.startswith("b:")}
        detail["redis_booked_same_bookings"] = redis_booked == booked
        detail["redis_holds_left"] = status_map.count("h") + sum(1 for v in in_redis.values() if v.startswith("h:"))
        # The stats keep the hall's seats, not the free ones (lua/includes/context.lua, seat_counts).
        counts = {k: int(stats.get(k, -1)) for k in ("seats", "held", "booked")}
        counts["free"] = counts["seats"] - counts["held"] - counts["booked"]
        detail["redis_stats"] = counts
        in_map = {"free": status_map.count("0"), "held": status_map.count("h"), "booked": status_map.count("b")}
        ok = ok and redis_booked == booked and detail["redis_holds_left"] == 0 and \
            counts["booked"] == len(booked) and counts["seats"] == len(shown) and \
            all(counts[k] == n for k, n in in_map.items())
    return Check("redis_agrees_with_postgres", ok, detail)


def check_charges(db: BenchDb, show_id: int) -> Check:
    # The provider only sees its own keys; our payments rows (written before any charge)
    # tie each key to a show. A ledger row with no payments row at all is a charge nobody
    # can account for, whatever its show.
    ledger = db.rows("SELECT l.status, count(*), coalesce(sum(l.amount), 0) FROM simulated_payments l"
                     " JOIN payments p ON p.provider_key = l.provider_key WHERE p.show_id = %s"
                     " GROUP BY l.status", (show_id,))
    by_status = {status: (int(n), int(total)) for status, n, total in ledger}
    charges = sum(n for n, _ in by_status.values())
    captured, captured_amount = by_status.get("captured", (0, 0))
    refunds = by_status.get("refunded", (0, 0))[0]
    orphans = db.value("SELECT count(*) FROM simulated_payments l WHERE NOT EXISTS"
                       " (SELECT 1 FROM payments p WHERE p.provider_key = l.provider_key)")
    bookings, booked_amount = db.rows("SELECT count(*), coalesce(sum(amount), 0) FROM bookings"
                                      " WHERE show_id = %s", (show_id,))[0]
    unmatched = db.value(
        "SELECT count(*) FROM bookings b WHERE b.show_id = %s AND NOT EXISTS (SELECT 1 FROM payments p"
        " JOIN simulated_payments l ON l.provider_key = p.provider_key"
        " WHERE p.booking_id = b.id AND p.status = 'captured' AND l.status = 'captured')", (show_id,))
    pending = db.value("SELECT count(*) FROM payments WHERE show_id = %s AND status = 'pending'", (show_id,))
    ok = (charges == int(bookings) + refunds and captured == int(bookings) and int(orphans) == 0
          and captured_amount == int(booked_amount) and int(unmatched) == 0 and int(pending) == 0)
    return Check("charges_balance", ok, {
        "charges": charges, "bookings": int(bookings), "refunds": refunds,
        "charged_amount": captured_amount, "booked_amount": int(booked_amount),
        "bookings_without_their_charge": int(unmatched), "charges_without_a_payment_row": int(orphans),
        "payments_pending": int(pending),
    })


@dataclass(frozen=True)
class RedisOrder:
    """A line's order by Redis's own record: the violations, and how many of the clients'
    records Redis holds."""

    violations: int
    found: int


def line_order_check(name: str, detail: dict[str, Any], records: Sequence[Served], exact: RedisOrder | None,
                     violations_key: str, found_key: str) -> Check:
    """A line kept its order: none out of order as the clients saw it (detail's
    client_side_violations) and, when Redis could be read (`exact`), none by Redis's record,
    which holds every record the clients made."""
    ok = detail["client_side_violations"] == 0
    if exact is not None:
        detail[violations_key] = exact.violations
        detail[found_key] = exact.found
        ok = ok and exact.violations == 0 and exact.found == len(records)
    return Check(name, ok, detail)


def client_side_order_violations(records: Sequence[T], served_seen: Callable[[T], float | None]) -> int:
    """b served (granted, admitted) while a record that surely joined before it (its join was
    answered before b's was sent) was seen still waiting by a poll sent after b was seen
    served. `served_seen`: when the client saw b served, None if never."""
    earlier = sorted(records, key=lambda r: r.join_answered)
    answered = [r.join_answered for r in earlier]
    latest_waiting: list[float] = []
    running = 0.0
    for r in earlier:
        running = max(running, r.last_waiting_poll_sent)
        latest_waiting.append(running)
    violations = 0
    for b in records:
        seen = served_seen(b)
        if seen is None:
            continue
        before = bisect.bisect_left(answered, b.join_sent)
        if before and latest_waiting[before - 1] > seen:
            violations += 1
    return violations


def client_side_fifo_violations(waits: list[WaitRecord]) -> int:
    """The waitlist's order as the clients saw it (client_side_order_violations)."""
    return client_side_order_violations(waits, lambda w: w.granted_seen if w.status == "granted" else None)


def redis_fifo_violations(redis_url: str, key_prefix: str, show_id: int, waits: list[WaitRecord]) -> RedisOrder:
    """Exact: by Redis's arrival numbers, every entry ahead of a granted one had ended (granted,
    cancelled, impossible) no later than that grant."""
    import redis

    keys = Keys(key_prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for w in waits:
            pipe.hmget(keys.entry(show_id, w.entry_id), "arrival", "status", "ended_at")
        rows = pipe.execute()
    finally:
        client.close()
    entries = sorted((int(a), s, int(e) if e else None) for a, s, e in rows if a is not None)
    violations = 0
    ended_ahead_max = 0  # latest end among the entries ahead; infinity once one never ended
    never_ended_ahead = False
    for _, status, ended in entries:
        if status == "granted" and ended is not None and (never_ended_ahead or ended_ahead_max > ended):
            violations += 1
        if ended is None:
            never_ended_ahead = True
        else:
            ended_ahead_max = max(ended_ahead_max, ended)
    return RedisOrder(violations, found=len(entries))


def check_waitlist(crowd: Crowd, redis_url: str | None, key_prefix: str) -> Check:
    detail: dict[str, Any] = {
        "entries": len(crowd.waits),
        "granted": sum(1 for w in crowd.waits if w.status == "granted"),
        "client_side_violations": client_side_fifo_violations(crowd.waits),
    }
    exact = redis_fifo_violations(redis_url, key_prefix, crowd.venue.show_id, crowd.waits) if redis_url else None
    return line_order_check("waitlist_fifo", detail, crowd.waits, exact,
                            violations_key="redis_arrival_order_violations", found_key="entries_found_in_redis")


async def audit(db: BenchDb, crowd: Crowd, hall_id: int, redis_url: str | None, key_prefix: str,
                drain_timeout_s: float) -> list[Check]:
    seat_map = await drain_holds(crowd, drain_timeout_s)
    show_id = crowd.venue.show_id
    return [
        check_sold_once(db, show_id, hall_id, crowd),
        check_redis_agrees(db, show_id, seat_map, redis_url, key_prefix),
        check_charges(db, show_id),
        check_waitlist(crowd, redis_url, key_prefix),
    ]
