"""The waitlist under load: joins per second, and how long after a hold's deadline its
waiter hears the grant, with the service's own sweeper doing the expiring.

    BOXOFFICE_HOLD_TTL_S=20 boxoffice serve     # the abuse limits on, as by default
    python -m bench.waitlist_bench http://127.0.0.1:8000 --database-url postgresql://... \\
        --redis-url redis://127.0.0.1:6379/0 [--seats 1000] [--listeners 200] [--clients 50]

1. A new show in the bench hall (bench/catalog.py); every seat is held by a one-seat hold
   of its own (not timed). Their deadlines are read from Redis: the k-th deadline frees
   the k-th seat.
2. As many waiters as seats join, one seat each, from C concurrent clients (timed: joins
   per second, latency). Nobody leaves, so the waiter at position k is the one served by
   the k-th deadline: first come, first served.
3. A sample of waiters listen on GET /v1/waitlist/{id}/events. Nothing else touches the
   show: only the service's sweeper ends the holds. For each listener, the delay is the
   arrival of its `granted` event minus its deadline; split into deadline -> grant in
   Redis (the entry's ended_at, Redis's clock) and grant -> event at the client.
Checks: every waiter granted, in arrival order (end_seq), with the seat of its deadline.
The client and Redis must share a clock (one machine), or the offset is measured and
reported."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from bench.catalog import create_spike_show
from bench.loadgen import client_address
from bench.spike import machine, run_async
from bench.sqldb import BenchDb
from bench.stats import latency_summary, percentile
from boxoffice.engine.redis.keys import Keys

RESULTS = Path(__file__).resolve().parent / "results" / "waitlist.json"


async def redis_offset_ms(redis: Redis) -> float:
    """Redis's clock minus ours (ms), from the quickest of a few round trips."""
    samples = []
    for _ in range(7):
        before = time.time()
        seconds, micros = await redis.time()
        after = time.time()
        samples.append((after - before, int(seconds) * 1000 + int(micros) / 1000 - (before + after) / 2 * 1000))
    return min(samples)[1]


async def fill(client: httpx.AsyncClient, show_id: int, seats: list[str], clients: int) -> None:
    gate = asyncio.Semaphore(clients)
    run = uuid.uuid4().hex[:6]

    async def hold(i: int, seat: str) -> None:
        async with gate:
            answer = await client.post(f"/v1/shows/{show_id}/holds",
                                       json={"seats": [seat], "customer": f"h-{run}-{i}@example.org"},
                                       headers={"X-Forwarded-For": client_address(i)})
        if answer.status_code != 201:
            raise RuntimeError(f"hold refused: {answer.status_code} {answer.text[:200]}")

    await asyncio.gather(*(hold(i, seat) for i, seat in enumerate(seats)))


async def join_all(client: httpx.AsyncClient, show_id: int, count: int, clients: int
                   ) -> tuple[list[dict[str, Any]], list[float], float]:
    run = uuid.uuid4().hex[:6]
    entries: list[dict[str, Any]] = []
    latencies: list[float] = []
    next_index = iter(range(count))

    async def worker() -> None:
        for i in next_index:
            began = time.perf_counter()
            answer = await client.post(f"/v1/shows/{show_id}/waitlist",
                                       json={"count": 1, "customer": f"w-{run}-{i}@example.org"},
                                       headers={"X-Forwarded-For": client_address(1_000_000 + i)})
            latencies.append(time.perf_counter() - began)
            if answer.status_code != 201:
                raise RuntimeError(f"join refused: {answer.status_code} {answer.text[:200]}")
            entries.append(answer.json())

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return entries, latencies, time.perf_counter() - began


async def listen(client: httpx.AsyncClient, entry_id: str, ready: asyncio.Event, heard: dict[str, float],
                 timeout_s: float) -> None:
    """Records when (our clock, ms) the entry's `granted` event arrives."""
    async with client.stream("GET", f"/v1/waitlist/{entry_id}/events", timeout=timeout_s) as answer:
        async for line in answer.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = orjson.loads(line[6:])
            if event["status"] == "waiting":
                ready.set()
            elif event["status"] == "granted":
                heard[entry_id] = time.time() * 1000
                return
            else:
                raise RuntimeError(f"{entry_id} ended {event['status']}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db = BenchDb(args.database_url)
    show = create_spike_show(db, args.seats)
    db.close()
    redis = Redis.from_url(args.redis_url, decode_responses=True)
    keys = Keys(args.key_prefix).show_keys(show.show_id)
    limits = httpx.Limits(max_connections=args.listeners + args.clients + 10,
                          max_keepalive_connections=args.clients + 10)
    async with httpx.AsyncClient(base_url=args.url, timeout=30, limits=limits) as client:
        seat_ids = [s["id"] for s in (await client.get(f"/v1/shows/{show.show_id}/seats")).json()["seats"]]
        await fill(client, show.show_id, seat_ids, args.clients)
        deadlines = [int(score) for _, score in await redis.zrange(keys[3], 0, -1, withscores=True)]
        assert len(deadlines) == len(seat_ids), "every seat is held by a hold of its own"
        entries, join_latencies, join_seconds = await join_all(client, show.show_id, len(seat_ids), args.clients)
        if (time.time() * 1000) > deadlines[0] - 2000:
            raise RuntimeError("the holds end too soon for this run: raise BOXOFFICE_HOLD_TTL_S")

        by_position = sorted(entries, key=lambda e: e["position"])
        assert [e["position"] for e in by_position] == list(range(1, len(entries) + 1))
        step = max(1, len(by_position) // args.listeners)
        sampled = by_position[::step][: args.listeners]
        heard: dict[str, float] = {}
        wait_s = (deadlines[-1] / 1000 - time.time()) + 30
        readies = [asyncio.Event() for _ in sampled]
        tasks = [asyncio.create_task(listen(client, e["entry_id"], ready, heard, wait_s))
                 for e, ready in zip(sampled, readies, strict=True)]
        async with asyncio.timeout(30):
            await asyncio.gather(*(r.wait() for r in readies))
        listening_at = time.time() * 1000
        async with asyncio.timeout(wait_s):
            await asyncio.gather(*tasks)
    # The last waiters need not be among the listeners: wait for the queue to empty.
    until = time.monotonic() + 30
    while await redis.zcard(keys[5]) > 0:
        if time.monotonic() > until:
            raise RuntimeError("the queue did not empty: grants are missing")
        await asyncio.sleep(0.05)
    offset_ms = await redis_offset_ms(redis)

    # What Redis recorded: when each entry was granted, in which order, with which seat.
    pipe = redis.pipeline(transaction=False)
    for entry in by_position:
        pipe.hmget(Keys(args.key_prefix).entry(show.show_id, entry["entry_id"]), "status", "ended_at", "end_seq")
    stored = await pipe.execute()
    await redis.aclose()
    assert all(s[0] == "granted" for s in stored), "every waiter was granted"
    end_seqs = [int(s[2]) for s in stored]
    assert end_seqs == sorted(end_seqs), "granted in arrival order"

    sweep_lag = [int(s[1]) - deadline for s, deadline in zip(stored, deadlines, strict=True)]
    event_delay, event_after_grant = [], []
    for entry in sampled:
        position = entry["position"]
        if deadlines[position - 1] < listening_at + offset_ms:
            continue  # its deadline came before every listener was surely subscribed
        heard_redis_ms = heard[entry["entry_id"]] + offset_ms
        event_delay.append(heard_redis_ms - deadlines[position - 1])
        event_after_grant.append(heard_redis_ms - int(stored[position - 1][1]))
    return {
        "machine": {**machine(), "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "config": {"seats": len(seat_ids), "waiters": len(entries), "clients": args.clients,
                   "listeners": len(sampled), "measured_listeners": len(event_delay)},
        "joins": latency_summary(join_latencies, join_seconds),
        "deadline_to_grant_in_redis_ms": summary_ms(sweep_lag),
        "deadline_to_event_ms": summary_ms(event_delay),
        "grant_to_event_ms": summary_ms(event_after_grant),
        "clock_offset_ms": round(offset_ms, 2),
    }


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"count": len(ordered), "p50": round(percentile(ordered, 0.5), 1),
            "p99": round(percentile(ordered, 0.99), 1), "max": round(ordered[-1] if ordered else 0.0, 1)}


def report(result: dict[str, Any]) -> str:
    joins, config = result["joins"], result["config"]
    lines = [
        f"machine: {result['machine']['nproc']} cores, {result['machine']['cpu']},"
        f" load average {result['machine']['load_average_1m_at_end']} (this client and the service share it)",
        f"{config['waiters']} waiters joined a full show of {config['seats']} seats from {config['clients']} clients:"
        f" {joins['per_s']} joins/s, latency p50 {joins['p50_ms']} ms, p99 {joins['p99_ms']} ms",
        "",
        "| from the hold's deadline to ... (ms) | count | median | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for key, label in [("deadline_to_grant_in_redis_ms", "the grant in Redis (sweeper + script)"),
                       ("deadline_to_event_ms", "the waiter's `granted` SSE event"),
                       ("grant_to_event_ms", "(the event, counted from the grant)")]:
        s = result[key]
        lines.append(f"| {label} | {s['count']} | {s['p50']} | {s['p99']} | {s['max']} |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="base URL of the running service")
    p.add_argument("--database-url", required=True, help="the service's database (to make the bench show)")
    p.add_argument("--redis-url", required=True, help="the service's Redis (deadlines and grant times)")
    p.add_argument("--key-prefix", default="bo", help="the service's BOXOFFICE_KEY_PREFIX")
    p.add_argument("--seats", type=int, default=1000, help="hall size = number of waiters")
    p.add_argument("--clients", type=int, default=50, help="concurrent joining clients")
    p.add_argument("--listeners", type=int, default=200, help="waiters listening on their SSE stream")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = run_async(run(args))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
