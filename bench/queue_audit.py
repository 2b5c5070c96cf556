"""The audit of a spike behind a release queue (bench.spike --release-queue), beside the
checks of bench/audit.py (sold once, Redis agrees, charges balance, waitlist in order):

1. queue_tickets_final: every customer got a ticket (the abuse limits are off: a refused
   join is a customer turned away), and once the rush is over every ticket is in a final
   state (admitted and used, expired, sold_out, left, closed), none still waiting: nobody
   dropped silently.
2. queue_admission_order: nobody was admitted while a ticket that surely joined before it
   still waited (the show's order is arrival): from what the clients saw, and exactly from
   Redis's own record of each ticket (its arrival and admission numbers).
3. no_hold_without_pass: every hold straight at the seats without a pass was refused (403
   pass_required while the queue ran), and every booking of the show belongs to a customer whose ticket was
   admitted (as the clients saw it) and whose pass was used (Redis's record: a pass is
   spent by the hold or waitlist entry made with it)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import orjson

from bench.audit import Check, RedisOrder, client_side_order_violations, line_order_check
from bench.queue_customers import FINAL_STATUSES, QueueCrowd, TicketRecord
from bench.sqldb import BenchDb
from boxoffice.engine.redis.keys import Keys


async def final_statuses(crowd: QueueCrowd, batch: int = 256) -> Counter[str]:
    """Every ticket's status as the service answers it now, read `batch` at a time."""
    counts: Counter[str] = Counter()

    async def read(record: TicketRecord) -> str:
        status, body = await crowd.client.request("GET", f"/v1/queue/{record.ticket_id}")
        return str(orjson.loads(body)["status"]) if status == 200 else f"http_{status}"

    for start in range(0, len(crowd.tickets), batch):
        counts.update(await asyncio.gather(*(read(r) for r in crowd.tickets[start:start + batch])))
    return counts


def check_tickets_final(statuses: Counter[str], joined: int, refused: int) -> Check:
    ok = joined > 0 and refused == 0 and sum(statuses.values()) == joined and all(
        status in FINAL_STATUSES for status in statuses)
    return Check("queue_tickets_final", ok, {"tickets": joined, "joins_refused": refused,
                                             "statuses": dict(statuses)})


def client_side_admission_violations(tickets: list[TicketRecord]) -> int:
    """The queue's order as the clients saw it (bench/audit.py client_side_order_violations)."""
    return client_side_order_violations(tickets, lambda t: t.admitted_seen)


def redis_order_violations(redis_url: str, key_prefix: str, show_id: int,
                           tickets: list[TicketRecord]) -> RedisOrder:
    """Exact, from Redis's own record of each ticket (lua/includes/queue.lua: its arrival
    number, admission number admit_seq, admitted_at and ended_at): a ticket admitted while
    one that arrived before it was still waiting (admitted after it, or ended after its
    admission, or never) is a violation. For the arrival order, the spike's."""
    import redis

    base = Keys(key_prefix).show_base(show_id)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for t in tickets:
            pipe.hmget(base + "ticket:" + t.ticket_id, "arrival", "admit_seq", "admitted_at", "ended_at")
        rows = pipe.execute()
    finally:
        client.close()

    def number(value: str | None) -> int | None:
        return None if value is None or value == "" else int(value)

    found = sorted((int(r[0]), number(r[1]), number(r[2]), number(r[3])) for r in rows if r[0] is not None)
    violations = 0
    last_seq_ahead = 0  # the highest admission number among the tickets ahead
    waited_until_ahead = 0.0  # the latest end among those ahead never admitted (inf: never ended)
    for _arrival, seq, admitted_at, ended_at in found:
        if seq is not None and admitted_at is not None and (
                last_seq_ahead > seq or waited_until_ahead > admitted_at):
            violations += 1
        if seq is not None:
            last_seq_ahead = max(last_seq_ahead, seq)
        else:
            waited_until_ahead = max(waited_until_ahead, math.inf if ended_at is None else ended_at)
    return RedisOrder(violations, found=len(found))


def check_order(crowd: QueueCrowd, redis_url: str | None, key_prefix: str) -> Check:
    detail: dict[str, Any] = {
        "admitted": sum(1 for t in crowd.tickets if t.admitted_seen is not None),
        "client_side_violations": client_side_admission_violations(crowd.tickets),
    }
    exact = redis_order_violations(redis_url, key_prefix, crowd.venue.show_id, crowd.tickets) if redis_url else None
    if exact is None:
        detail["redis_record"] = "no Redis URL (embedded service): client-side check only"
    return line_order_check("queue_admission_order", detail, crowd.tickets, exact,
                            violations_key="redis_order_violations", found_key="tickets_found_in_redis")


def used_pass_customers(redis_url: str, key_prefix: str, show_id: int, tickets: list[TicketRecord]) -> set[str]:
    """The customers whose ticket's pass Redis records as used."""
    import redis

    base = Keys(key_prefix).show_base(show_id)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for t in tickets:
            pipe.hmget(base + "ticket:" + t.ticket_id, "customer", "used")
        return {customer for customer, used in pipe.execute() if customer and used == "1"}
    finally:
        client.close()


def check_passes(db: BenchDb, crowd: QueueCrowd, redis_url: str | None, key_prefix: str) -> Check:
    admitted = {t.customer for t in crowd.tickets if t.admitted_seen is not None}
    customers = [row[0] for row in db.rows("SELECT customer FROM bookings WHERE show_id = %s",
                                           (crowd.venue.show_id,))]
    mine = [c for c in customers if c.startswith(f"{crowd.tag}-")]
    without = [c for c in mine if c not in admitted]
    q = crowd.queue
    ok = q.probes_held == 0 and q.probes_refused == q.probes and not without and len(mine) == len(customers)
    detail: dict[str, Any] = {
        "holds_tried_without_pass": q.probes, "refused": q.probes_refused, "refused_by_code": q.probe_refusals,
        "granted_without_pass": q.probes_held, "bookings": len(customers),
        "bookings_of_customers_never_admitted": len(without),
    }
    if redis_url:
        used = used_pass_customers(redis_url, key_prefix, crowd.venue.show_id, crowd.tickets)
        detail["bookings_without_a_used_pass_in_redis"] = sum(1 for c in customers if c not in used)
        ok = ok and detail["bookings_without_a_used_pass_in_redis"] == 0
    return Check("no_hold_without_pass", ok, detail)


async def audit_queue(db: BenchDb, crowd: QueueCrowd, redis_url: str | None, key_prefix: str) -> list[Check]:
    statuses = await final_statuses(crowd)
    return [
        check_tickets_final(statuses, len(crowd.tickets), crowd.queue.join_refused),
        check_order(crowd, redis_url, key_prefix),
        check_passes(db, crowd, redis_url, key_prefix),
    ]
