"""Confirms per second through HTTP, and where their time goes:

    python -m bench.confirm_bench http://127.0.0.1:8000 --database-url postgresql://...

Makes new shows in the bench hall (bench/catalog.py), holds N pairs of seats (not timed),
then confirms every hold with `tok_ok` from C concurrent clients and times that. The
service's own step timings (boxoffice_confirm_step_seconds on /metrics, boxoffice/engine/confirm.py)
are read before and after, so the figures split each confirm into its PostgreSQL, Redis
and payment steps. Checks afterwards that every confirm booked and charged exactly once.
The service runs at its defaults, the abuse limits on: every customer has a name and an
address of its own (X-Forwarded-For, which uvicorn takes from 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from bench.catalog import create_spike_show
from bench.loadgen import client_address
from bench.procstat import cpu_seconds, cpu_spent
from bench.spike import machine, recorded_command, run_async
from bench.sqldb import BenchDb
from bench.stats import latency_summary

HALL_SEATS = 5000
STEP_LINE = re.compile(r'^boxoffice_confirm_step_seconds_(sum|count)\{step="(\w+)"\} ([0-9.e+-]+)$', re.MULTILINE)
# What each step is, for the table (boxoffice/engine/confirm.py times them).
STEPS = {
    "replay": "PostgreSQL: idempotency look-up",
    "pin": "Redis: confirm_begin (pin + fence)",
    "intent": "PostgreSQL: payment intent row (commit)",
    "payment": "provider: simulated charge (a PostgreSQL commit)",
    "check": "Redis: confirm_check (fence)",
    "commit": "PostgreSQL: the sale transaction (commit)",
    "mark": "Redis: confirm_finish (seats booked)",
}


async def step_totals(client: httpx.AsyncClient) -> dict[str, tuple[float, float]]:
    """step -> (seconds, count) so far, summed over the service's workers."""
    text = (await client.get("/metrics")).text
    totals: dict[str, list[float]] = {}
    for kind, step, value in STEP_LINE.findall(text):
        totals.setdefault(step, [0.0, 0.0])[0 if kind == "sum" else 1] += float(value)
    return {step: (v[0], v[1]) for step, v in totals.items()}


async def make_holds(client: httpx.AsyncClient, show_ids: list[int], seat_ids: list[str], count: int,
                     per_hold: int, concurrency: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    slots = [(show_ids[i // (len(seat_ids) // per_hold)], i % (len(seat_ids) // per_hold)) for i in range(count)]
    holds: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        show_id, slot = slots[i]
        seats = seat_ids[slot * per_hold : (slot + 1) * per_hold]
        async with gate:
            answer = await client.post(f"/v1/shows/{show_id}/holds",
                                       json={"seats": seats, "customer": f"bench-{run}-{i}@example.org"},
                                       headers={"X-Forwarded-For": client_address(i)})
        if answer.status_code != 201:
            raise RuntimeError(f"hold refused: {answer.status_code} {answer.text[:200]}")
        holds.append(answer.json()["hold_id"])

    await asyncio.gather(*(one(i) for i in range(count)))
    return holds


async def confirm_all(client: httpx.AsyncClient, holds: list[str], clients: int) -> tuple[list[float], Counter[int],
                                                                                        float]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for hold_id in holds:
        queue.put_nowait(hold_id)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    body = orjson.dumps({"payment": {"method": "card", "token": "tok_ok"}})

    async def worker() -> None:
        while not queue.empty():
            hold_id = queue.get_nowait()
            began = time.perf_counter()
            answer = await client.post(f"/v1/holds/{hold_id}/confirm", content=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": f"bench-{hold_id[-12:]}"})
            latencies.append(time.perf_counter() - began)
            statuses[answer.status_code] += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - began


def cpu_groups(args: argparse.Namespace) -> dict[str, Callable[[str], bool]]:
    """The processes of this run on this machine, by their command lines (when local)."""
    service, database = urlparse(args.url), urlparse(args.database_url)
    if service.hostname not in ("127.0.0.1", "localhost") or not database.path:
        return {}
    port, dbname = f"--port {service.port}", database.path.lstrip("/")
    groups: dict[str, Callable[[str], bool]] = {
        "service": lambda c: port in c and ("boxoffice" in c or "uvicorn" in c),
        "postgresql": lambda c: c.startswith("postgres: ") and f" {dbname} " in c,
        "bench client": lambda c: "bench.confirm_bench" in c,
    }
    if args.redis_url:
        redis_port = f":{urlparse(args.redis_url).port or 6379}"
        groups["redis"] = lambda c: c.split(" ")[0].endswith("redis-server") and c.split(" ")[1].endswith(redis_port)
    return groups


def check_books(db: BenchDb, show_ids: list[int], expected: int) -> dict[str, int]:
    marks = ", ".join(["%s"] * len(show_ids))
    bookings = int(db.value(f"SELECT count(*) FROM bookings WHERE show_id IN ({marks})", show_ids))
    charges = int(db.value(
        "SELECT count(*) FROM simulated_payments s JOIN payments p ON p.provider_key = s.provider_key"
        f" WHERE p.show_id IN ({marks})", show_ids))
    captured = int(db.value(f"SELECT count(*) FROM payments WHERE status = 'captured' AND show_id IN ({marks})",
                            show_ids))
    books = {"bookings": bookings, "charges": charges, "captured_payments": captured}
    if not bookings == charges == captured == expected:
        raise RuntimeError(f"the books do not balance: {books}, expected {expected} each")
    return books


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db = BenchDb(args.database_url)
    first = create_spike_show(db, seats=HALL_SEATS)
    seat_ids = [r[0] for r in db.rows("SELECT id FROM seats WHERE hall_id = %s ORDER BY id", (first.hall_id,))]
    per_show = len(seat_ids) // args.seats_per_hold
    more = [create_spike_show(db, seats=HALL_SEATS) for _ in range(-(-args.confirms // per_show) - 1)]
    show_ids = [s.show_id for s in [first, *more]]
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=60.0) as client:
        holds = await make_holds(client, show_ids, seat_ids, args.confirms, args.seats_per_hold, args.clients)
        groups = cpu_groups(args)
        before, cpu_before = await step_totals(client), cpu_seconds(groups)
        latencies, statuses, duration = await confirm_all(client, holds, args.clients)
        after, cpu_after = await step_totals(client), cpu_seconds(groups)
    books = check_books(db, show_ids, args.confirms if statuses[201] == args.confirms else -1)
    db.close()
    steps = {}
    for step, (seconds, count) in after.items():
        delta_s, delta_n = seconds - before.get(step, (0.0, 0.0))[0], count - before.get(step, (0.0, 0.0))[1]
        if delta_n:
            steps[step] = {"mean_ms": round(1000 * delta_s / delta_n, 3), "calls": int(delta_n)}
    return {
        "bench": "confirm", "machine": machine(), "url": args.url, "confirms": args.confirms,
        "clients": args.clients, "seats_per_hold": args.seats_per_hold,
        "latency": latency_summary(latencies, duration), "statuses": {str(k): v for k, v in statuses.items()},
        "duration_s": round(duration, 2), "steps": steps, "books": books,
        "cpu_ms_per_confirm": {name: round(1000 * seconds / args.confirms, 2)
                               for name, seconds in cpu_spent(cpu_before, cpu_after).items()},
        "load_average": os.getloadavg(),
        "command": args.command or recorded_command("bench.confirm_bench", sys.argv[1:]),
    }


def report(result: dict[str, Any]) -> str:
    lat = result["latency"]
    lines = [
        f"confirm bench: {result['confirms']} confirms, {result['clients']} clients,"
        f" {result['seats_per_hold']} seats each ({result['machine']['nproc']} CPUs, {result['machine']['cpu']})",
        f"  {lat['per_s']} confirms/s; latency p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms,"
        f" p99 {lat['p99_ms']} ms; statuses {result['statuses']}; {result['duration_s']} s",
        f"  books: {result['books']}; load average {', '.join(f'{v:.2f}' for v in result['load_average'])}",
        "  CPU per confirm: " + ", ".join(f"{name} {ms} ms" for name, ms in result["cpu_ms_per_confirm"].items()),
        "  where a confirm's time goes (mean per confirm, inside the service):",
    ]
    steps = result["steps"]
    total = steps.get("total", {}).get("mean_ms", 0.0)
    accounted = 0.0
    for step, what in STEPS.items():
        if step in steps:
            mean = steps[step]["mean_ms"]
            accounted += mean
            share = f"{100 * mean / total:5.1f}%" if total else "   - "
            lines.append(f"    {step:8} {mean:8.2f} ms  {share}  {what}")
    if total:
        lines.append(f"    {'other':8} {total - accounted:8.2f} ms  {100 * (total - accounted) / total:5.1f}%"
                     "  prices from the catalog cache, Python between the steps")
        lines.append(f"    {'total':8} {total:8.2f} ms  in the engine; p50 over HTTP {lat['p50_ms']} ms")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.confirm_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="base URL of the running service, e.g. http://127.0.0.1:8000")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="the service's database (setup and the check of the books)")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="only to count Redis's CPU")
    p.add_argument("--confirms", type=int, default=2000)
    p.add_argument("--clients", type=int, default=32, help="confirms in flight at once")
    p.add_argument("--seats-per-hold", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    p.add_argument("--command", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not args.database_url:
        parser().error("--database-url (or DATABASE_URL) is required")
    if not 1 <= args.seats_per_hold <= 10:
        parser().error("--seats-per-hold must be 1 to 10")
    result = run_async(run(args))
    print(report(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
