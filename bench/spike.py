"""Release-day spike against a running service:

    python -m bench.spike http://127.0.0.1:8000 --database-url postgresql://... [--redis-url ...]

Makes a new show in a 2,000-seat bench hall (bench/catalog.py), sends N customers
(default 20,000) at it within a few seconds, shows progress, then audits the sale
(bench/audit.py), prints the figures and writes them as JSON. Exits 1 when the audit
fails. The service should run with a short hold time (BOXOFFICE_HOLD_TTL_S=10) and
otherwise its defaults, the abuse limits on: every customer has a name of its own and
comes from an address of its own (X-Forwarded-For, which uvicorn takes from 127.0.0.1 by
default, as from a proxy). DATABASE_URL may be the embedded SQLite file.

--release-queue: the show's sales open as the first customer arrives, behind its release
queue (docs/API.md): the same customers join the queue, wait for their turn, and hold with
their pass (bench/queue_customers.py); the audit adds the queue's checks
(bench/queue_audit.py).

--live-seat-maps: the customers who pick their seats keep the seat map live over its event
stream, as the web page does (the whole map once, then each change), instead of reading the
whole map again after a refusal."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import random
import resource
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson

from bench.audit import audit
from bench.catalog import create_spike_show
from bench.customers import Behaviour, Crowd, Venue, plan_blocks
from bench.httpclient import LeanClient
from bench.queue_audit import audit_queue
from bench.queue_customers import QueueCrowd
from bench.sqldb import BenchDb

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# With --release-queue: time for the set-up calls before the opening, when the first
# customer arrives.
OPENING_LEAD_S = 5.0


def run_async(coro: Any) -> Any:
    """uvloop when it is there (it is, with uvicorn[standard]): the client must stay cheap."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# Options whose values say where things are on the machine that ran a bench: results
# files record the command without them.
LOCAL_OPTIONS = ("--out", "--database-url", "--redis-url")


def recorded_command(module: str, argv: list[str]) -> str:
    """The command line of a bench as its results file keeps it: the machine's own
    paths and server addresses left out."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LOCAL_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(option + "=" for option in LOCAL_OPTIONS)):
            kept.append(arg)
    return " ".join(["python -m", module, *kept])


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


async def wait_until_listed(client: httpx.AsyncClient, city_id: int, movie_id: int, show_id: int,
                            timeout_s: float = 30.0) -> None:
    """The browse answers are cached for a few seconds: wait until the new show is listed."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = await client.get(f"/v1/cities/{city_id}/movies/{movie_id}/shows")
        if answer.status_code == 200 and any(
            s["id"] == str(show_id) for c in answer.json()["cinemas"] for s in c["shows"]
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service does not list show {show_id}: is it using this database?")
        await asyncio.sleep(0.5)


async def progress(crowd: Crowd, total: int, stop: asyncio.Event, stream: Any) -> None:
    if stream is None:
        await stop.wait()
        return
    tty = stream.isatty()
    last_requests, last_at = 0, time.perf_counter()
    next_line = 0.0
    while not stop.is_set():
        await asyncio.sleep(0.5)
        now = time.perf_counter()
        requests = crowd.stats.total
        rate = (requests - last_requests) / (now - last_at)
        last_requests, last_at = requests, now
        t = crowd.tally
        line = (f"{now - crowd.started:6.1f}s customers {t.arrived}/{total} done {t.done} | {rate:6.0f} req/s | "
                f"holds {t.holds_granted} ok {t.holds_refused} refused | waitlist {t.waitlist_joined} "
                f"granted {t.waitlist_granted} | sold {t.seats_booked}/{crowd.venue.seat_count}")
        if tty:
            stream.write("\r" + line + "\x1b[K")
            stream.flush()
        elif now - crowd.started >= next_line:
            stream.write(line + "\n")
            stream.flush()
            next_line = now - crowd.started + 5.0
    if tty:
        stream.write("\n")


async def run_spike(args: argparse.Namespace) -> dict[str, Any]:
    db = BenchDb(args.database_url)
    try:
        first_arrival = datetime.now(UTC) + timedelta(seconds=OPENING_LEAD_S)
        opens_at = first_arrival + timedelta(seconds=args.opens_after_s) if args.release_queue else None
        spike_show = create_spike_show(db, args.seats, sale_opens_at=opens_at)
        target = urlparse(args.url)
        if target.scheme != "http" or not target.hostname:
            raise SystemExit(f"the spike drives a plain http:// service URL, not {args.url!r}")
        async with contextlib.AsyncExitStack() as stack:
            # httpx for the few set-up calls; the customers' requests go through the lean client.
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=args.url.rstrip("/"), timeout=120.0))
            lean = await stack.enter_async_context(
                LeanClient(target.hostname, target.port or 80, args.concurrency))
            health = await client.get("/healthz")
            if health.status_code != 200:
                raise RuntimeError(f"the service is not healthy: {health.status_code} {health.text[:200]}")
            await wait_until_listed(client, spike_show.city_id, spike_show.movie_id, spike_show.show_id)
            plan = (await client.get(f"/v1/shows/{spike_show.show_id}/seats")).json()["seats"]
            venue = Venue(spike_show.city_id, spike_show.movie_id, spike_show.show_id, len(plan), plan_blocks(plan))
            behaviour = Behaviour(patience_s=args.patience_s, think_s=args.think_s, pay_share=args.pay_share,
                                  best_available_share=args.best_available_share,
                                  live_seat_map=args.live_seat_maps)
            tag = uuid.uuid4().hex[:8]
            crowd = (QueueCrowd(lean, venue, behaviour, args.concurrency, tag=tag, seed=args.seed,
                                follow_streams=args.follow_streams) if args.release_queue
                     else Crowd(lean, venue, behaviour, args.concurrency, tag=tag, seed=args.seed))
            arrivals = sorted(random.Random(args.seed).uniform(0, args.arrival_s) for _ in range(args.customers))
            if opens_at is not None:
                await asyncio.sleep(max(0.0, (first_arrival - datetime.now(UTC)).total_seconds()))
            stop = asyncio.Event()
            shower = asyncio.create_task(progress(crowd, args.customers, stop, None if args.quiet else sys.stderr))
            crowd.started = time.perf_counter()
            tasks = []
            # The load generator's own collector off while the crowd runs: its full collections
            # walk 20,000 customers' state (up to 0.45 s each, measured), and every answer in
            # flight would carry that pause as if the service had taken it.
            with collector_paused():
                for number, at in enumerate(arrivals):
                    delay = at - (time.perf_counter() - crowd.started)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(crowd.customer(number)))
                await asyncio.gather(*tasks)
            duration = time.perf_counter() - crowd.started
            stop.set()
            await shower
            ttl = max(crowd.hold_ttls or {10})
            checks = await audit(db, crowd, spike_show.hall_id, args.redis_url, args.key_prefix,
                                 drain_timeout_s=ttl + 15.0)
            if isinstance(crowd, QueueCrowd):
                checks += await audit_queue(db, crowd, args.redis_url, args.key_prefix)
    finally:
        db.close()
    extra = {"queue": asdict(crowd.queue)} if isinstance(crowd, QueueCrowd) else {}
    return {
        "scenario": "spike-release-queue" if args.release_queue else "spike",
        "machine": machine(),
        "command": args.command,
        "config": {k: v for k, v in vars(args).items() if k not in {"database_url", "redis_url", "command", "out"}},
        "show": asdict(spike_show),
        "duration_s": round(duration, 2),
        "time_to_sell_out_s": None if crowd.tally.sold_out_at is None else round(crowd.tally.sold_out_at, 2),
        "hold_ttl_s": ttl,
        "endpoints": crowd.stats.summary(duration),
        # The issue's figure: the buyers' requests under the rush, together.
        "seat_maps_and_holds": crowd.stats.summary_of(is_seat_map_or_hold, duration),
        # Where in the run the slow answers were: every request, and the seat maps and holds.
        "timeline": crowd.stats.timeline(crowd.started),
        "timeline_seat_maps_and_holds": crowd.stats.timeline(crowd.started, endpoints=is_seat_map_or_hold),
        "holds": {"granted": crowd.tally.holds_granted, "refused": crowd.tally.holds_refused,
                  "limited": crowd.tally.holds_limited, "failed": crowd.tally.holds_failed,
                  "refused_share": round(crowd.tally.holds_refused
                                         / max(1, crowd.tally.holds_granted + crowd.tally.holds_refused), 3)},
        "bytes_read_per_seat_sold": round(crowd.tally.bytes_read / max(1, crowd.tally.seats_booked)),
        "requests_per_seat_sold": round(crowd.stats.total / max(1, crowd.tally.seats_booked), 1),
        **extra,
        "waitlist": {"joined": crowd.tally.waitlist_joined, "no_chance": crowd.tally.waitlist_no_chance,
                     "granted": crowd.tally.waitlist_granted, "left": crowd.tally.waitlist_left,
                     "impossible": crowd.tally.waitlist_impossible},
        "tally": asdict(crowd.tally),
        "audit": {"ok": all(c.ok for c in checks), "checks": [c.public() for c in checks]},
    }


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def is_seat_map_or_hold(endpoint: str) -> bool:
    """A buyer's request: a seat map (or its counts) or a hold, not a bot's probe."""
    return endpoint.startswith(("GET /v1/shows/{id}/seats", "POST /v1/shows/{id}/holds")) \
        and not endpoint.endswith("(no pass)")


def print_report(result: dict[str, Any], stream: Any = sys.stdout) -> None:
    w = stream.write
    w(f"\nspike: {result['config']['customers']} customers, {result['show']['seat_count']} seats, "
      f"show {result['show']['show_id']}, {result['duration_s']} s, hold time {result['hold_ttl_s']} s\n")
    w(f"{'endpoint':44} {'count':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}\n")
    for name, e in [*result["endpoints"].items(), ("seat maps and holds", result["seat_maps_and_holds"])]:
        w(f"{name:44} {e['count']:7} {e['per_s']:8.1f} {e['p50_ms']:8.2f} {e['p95_ms']:8.2f} "
          f"{e['p99_ms']:8.2f} {e['max_ms']:8.2f}\n")
    sold = result["time_to_sell_out_s"]
    w(f"time to sell out: {'not sold out' if sold is None else f'{sold} s'}\n")
    w(f"holds: {result['holds']}\nwaitlist: {result['waitlist']}\n")
    w(f"seats sold: {result['tally']['seats_booked']}, bytes read per seat sold: "
      f"{result['bytes_read_per_seat_sold']}, requests per seat sold: {result['requests_per_seat_sold']}\n")
    if "queue" in result:
        w(f"queue: {result['queue']}\n")
    for check in result["audit"]["checks"]:
        detail = {k: v for k, v in check.items() if k not in {"name", "ok"}}
        w(f"audit {'PASS' if check['ok'] else 'FAIL'} {check['name']}: {detail}\n")
    w(f"audit: {'PASSED' if result['audit']['ok'] else 'FAILED'}\n")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.spike", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url", help="base URL of the running service, e.g. http://127.0.0.1:8000")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="the service's database (postgresql://... or the embedded SQLite file); default $DATABASE_URL")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                   help="the service's Redis, for the exact audit checks (default $REDIS_URL; none when embedded)")
    p.add_argument("--key-prefix", default=os.environ.get("BOXOFFICE_KEY_PREFIX", "bo"))
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--seats", type=int, default=2_000, help="seats of the bench hall")
    p.add_argument("--arrival-s", type=float, default=5.0, help="every customer arrives within this window")
    p.add_argument("--concurrency", type=int, default=256, help="requests in flight at most")
    p.add_argument("--pay-share", type=float, default=0.85)
    p.add_argument("--think-s", type=float, default=0.5)
    p.add_argument("--patience-s", type=float, default=20.0, help="how long a waiter stays in line")
    p.add_argument("--best-available-share", type=float, default=0.0,
                   help="share of customers who hold by count (the service picks) instead of reading the map")
    p.add_argument("--release-queue", action="store_true",
                   help="the show's sales open as the first customer arrives, behind its release queue")
    p.add_argument("--opens-after-s", type=float, default=0.0,
                   help="with --release-queue: the sales open this long after the first customer arrives "
                        "(the customers who come earlier wait in the queue for the opening, as in a waiting room)")
    p.add_argument("--follow-streams", action="store_true",
                   help="with --release-queue: each customer follows its ticket over its event stream, as the "
                        "web page does, instead of polling (a connection each: the client and the service "
                        "need as many open files; see `ulimit -n`)")
    p.add_argument("--live-seat-maps", action="store_true",
                   help="customers who pick from the seat map follow its event stream, as the web page does: the "
                        "whole map once, then only the seats that changed, never the map read again")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "spike.json")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.command = recorded_command("bench.spike", sys.argv[1:] if argv is None else argv)
    if not args.database_url:
        sys.exit("--database-url (or DATABASE_URL) is needed for the setup and the audit")
    if args.follow_streams or args.live_seat_maps:  # a connection per stream: as many files as allowed
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = run_async(run_spike(args))
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str))
    print(f"written to {args.out}")
    return 0 if result["audit"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
