"""Ceiling comparisons, each side measured in the same run, alternating, so a noisy machine
moves both sides alike:

  engine hold      Holds.hold in-process   vs  redis-py EVALSHA of a trivial script
  HTTP hold        POST /v1/shows/{id}/holds   vs  a bare Starlette endpoint making one Redis call
  seat map         GET /v1/shows/{id}/seats    vs  a bare endpoint answering the same bytes
  cluster cpu      worker CPU per HTTP hold, one Redis server vs a local Redis Cluster
                   (bench/cluster_cpu.py)
  two workers      the HTTP hold path, uvicorn --workers 2 vs --workers 1: as they are, and
                   with every worker held to the same share of a core (bench/cpubudget.py),
                   so the load client and Redis keep room of their own on a small machine

    python -m bench.ceilings --database-url postgresql://... --redis-url redis://...

The apps run under uvicorn exactly alike (bench/servers.py), driven by one lean client
(bench/loadgen.py) at the same concurrency. Everything runs at the production defaults, the
abuse limits on: every simulated customer has a name and an address of its own (sent as
X-Forwarded-For, which the servers trust from the load generator as from a proxy). Needs
the real servers; the database must be migrated (the bench makes its own hall and shows in
it, bench/catalog.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench import best_available, cluster_cpu, cpubudget, hold_cost, procstat
from bench.catalog import create_spike_show
from bench.loadgen import LoadResult, client_address, request_bytes, run_load
from bench.redis_keys import forget_prefix
from bench.results_file import write_result
from bench.servers import uvicorn_app
from bench.spike import RESULTS_DIR, machine, recorded_command, run_async
from bench.sqldb import BenchDb
from bench.stats import latency_summary
from boxoffice.engine.redis.gateway import RateLimits
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import open_engine

TRIVIAL_SCRIPT = "return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])"
TWO_WORKERS_PREFIX = "w2"


class Seats:
    """Fresh seats for hold benches: new shows of the bench hall, as many as needed."""

    def __init__(self, db: BenchDb, hall_seats: int) -> None:
        self.db = db
        self.hall_seats = hall_seats
        self.hall_seat_ids: dict[int, list[str]] = {}

    def new_show(self) -> tuple[int, list[str]]:
        """A new show of the bench hall and the hall's seats, front to back."""
        show = create_spike_show(self.db, self.hall_seats)
        if show.hall_id not in self.hall_seat_ids:
            self.hall_seat_ids[show.hall_id] = [r[0] for r in self.db.rows(
                "SELECT id FROM seats WHERE hall_id = %s ORDER BY y, x", (show.hall_id,))]
        return show.show_id, self.hall_seat_ids[show.hall_id]

    def take(self, count: int) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        while len(out) < count:
            show_id, seat_ids = self.new_show()
            out += [(show_id, seat) for seat in seat_ids]
        return out[:count]


async def timed_ops(ops: list[Any], concurrency: int, op: Callable[[Any], Awaitable[Any]]) -> dict[str, Any]:
    latencies: list[float] = []
    work = iter(ops)

    async def worker() -> None:
        for item in work:
            began = time.perf_counter()
            await op(item)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latency_summary(latencies, time.perf_counter() - began)


# -- engine ---------------------------------------------------------------------------------

async def engine_round(settings: Settings, seats: list[tuple[int, str]], concurrency: int) -> dict[str, Any]:
    ctx = await open_engine(settings, background=False)
    try:
        for show_id in sorted({s for s, _ in seats}):
            await ctx.holds.seat_statuses(show_id)  # loads the show: not part of the hold path
        numbered = list(enumerate(seats))

        async def hold(item: tuple[int, tuple[int, str]]) -> None:
            i, (show_id, seat) = item
            # Counted against the abuse limits as the API counts a customer's hold.
            limits = RateLimits(settings.rate_limit_holds_per_min, settings.rate_limit_ip_per_min, client_address(i))
            await ctx.holds.hold(show_id, [seat], f"e{i}@ceiling.example", limits=limits)

        return await timed_ops(numbered, concurrency, hold)
    finally:
        await ctx.close()


async def baseline_round(redis_url: str, prefix: str, ops: int, concurrency: int, pool: int) -> dict[str, Any]:
    from redis.asyncio import BlockingConnectionPool, Redis

    client = Redis(connection_pool=BlockingConnectionPool.from_url(
        redis_url, decode_responses=True, max_connections=pool, timeout=5))
    try:
        sha = await client.script_load(TRIVIAL_SCRIPT)
        key = f"{prefix}:baseline:{{{uuid.uuid4().hex[:8]}}}"

        async def call(i: int) -> None:
            await client.evalsha(sha, 1, key, f"S{i}", f"b{i}@ceiling.example")

        result = await timed_ops(list(range(ops)), concurrency, call)
        await client.delete(key)
        return result
    finally:
        await client.aclose()


# -- HTTP -----------------------------------------------------------------------------------

def hold_requests(seats: list[tuple[int, str]], tag: str) -> list[bytes]:
    return [request_bytes("POST", f"/v1/shows/{show}/holds", {"seats": [seat], "customer": f"{tag}{i}@c.example"},
                          client=client_address(i))
            for i, (show, seat) in enumerate(seats)]


def fresh_holds(port: int, seats: Seats, count: int, tag: str) -> list[bytes]:
    """Hold requests for new seats, their shows first touched (loaded into Redis, in the caches):
    a show's first load is not the hold path."""
    taken = seats.take(count)
    load(port, [request_bytes("GET", f"/v1/shows/{show}/seats") for show in sorted({s for s, _ in taken})], 1)
    return hold_requests(taken, tag)


def bare_hold_requests(count: int, tag: str) -> list[bytes]:
    return [request_bytes("POST", "/hold", {"seats": [f"S{i}"], "customer": f"{tag}{i}@c.example"},
                          client=client_address(i))
            for i in range(count)]


def load(port: int, requests: list[bytes], concurrency: int, keep_last_body: bool = False) -> LoadResult:
    return run_async(run_load("127.0.0.1", port, iter(requests), concurrency, keep_last_body))


def load_measuring_cpu(port: int, requests: list[bytes], concurrency: int, redis_ports: Sequence[int] = (),
                       ) -> dict[str, Any]:
    """The load's figures plus where the machine's CPU went meanwhile: the service's
    processes (all workers), each Redis node of `redis_ports` (those that run here) and all
    of them together, this client, and how busy all the cores were (neighbours included),
    each per request."""
    groups: dict[str, Callable[[str], bool]] = {"service": lambda cmdline: f"--port {port} " in cmdline + " "}
    for redis_port in redis_ports:
        groups[f"redis:{redis_port}"] = lambda cmdline, p=redis_port: procstat.is_redis_server(cmdline, p)
    before, client_before, machine_before = procstat.cpu_seconds(groups), os.times(), procstat.machine_jiffies()
    result = load(port, requests, concurrency)
    after, client_after, machine_after = procstat.cpu_seconds(groups), os.times(), procstat.machine_jiffies()
    spent = procstat.cpu_spent(before, after)
    client = (client_after.user - client_before.user) + (client_after.system - client_before.system)
    count = max(1, int(result.summary["count"]))
    busy = procstat.busy_share(machine_before, machine_after)
    figures = {**result.summary, "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
               "service_cpu_s": round(spent["service"], 2),
               "service_cpu_ms_per_request": round(spent["service"] * 1000 / count, 3),
               "client_cpu_ms_per_request": round(client * 1000 / count, 3),
               "machine_busy": round(busy, 3),
               "machine_cpu_ms_per_request": round(busy * (os.cpu_count() or 1) * result.duration_s * 1000 / count, 3)}
    nodes = {str(p): spent[f"redis:{p}"] for p in redis_ports if after.get(f"redis:{p}")}
    if nodes:
        figures["redis_cpu_ms_per_request"] = round(sum(nodes.values()) * 1000 / count, 3)
        figures["redis_cpu_ms_per_request_per_node"] = {p: round(s * 1000 / count, 3) for p, s in nodes.items()}
    return figures


def pick(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round by throughput (robust against one disturbed round)."""
    ordered = sorted(results, key=lambda r: r["per_s"])
    return ordered[len(ordered) // 2]


def compare(name: str, subject: list[dict[str, Any]], baseline: list[dict[str, Any]], target: float,
            subject_label: str, baseline_label: str) -> dict[str, Any]:
    s, b = pick(subject), pick(baseline)
    ratio = round(s["per_s"] / b["per_s"], 3) if b["per_s"] else 0.0
    out = {"name": name, "subject": subject_label, "baseline": baseline_label, "subject_figures": s,
           "baseline_figures": b, "subject_rounds": [r["per_s"] for r in subject],
           "baseline_rounds": [r["per_s"] for r in baseline], "ratio": ratio, "target": target,
           "meets_target": ratio >= target}
    if all("service_cpu_ms_per_request" in r for r in subject + baseline):
        # CPU per request of the app's own processes: what the app costs, whatever else
        # the shared cores were doing. The CPU ratio is what the wall ratio would be if
        # each side had a core of its own to saturate.
        s_cpu = statistics.median(r["service_cpu_ms_per_request"] for r in subject)
        b_cpu = statistics.median(r["service_cpu_ms_per_request"] for r in baseline)
        out["cpu_ms_per_request"] = {"subject": s_cpu, "baseline": b_cpu}
        out["cpu_ratio"] = round(b_cpu / s_cpu, 3) if s_cpu else None
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    db = BenchDb(args.database_url)
    prefix = f"ceil{uuid.uuid4().hex[:6]}"
    # The production defaults (the abuse limits on), but for the Redis pool both sides share.
    base = Settings(redis_url=args.redis_url, database_url=args.database_url, key_prefix=prefix,
                    redis_pool_size=args.pool)
    seats = Seats(db, args.hall_seats)
    comparisons: list[dict[str, Any]] = []
    service_env = {"REDIS_URL": args.redis_url, "DATABASE_URL": args.database_url, "BOXOFFICE_KEY_PREFIX": prefix,
                   "BOXOFFICE_REDIS_POOL": str(args.pool)}
    variants = engine_variants(base, args)
    try:
        if "engine" in args.only:
            engine: dict[str, list[dict[str, Any]]] = {label: [] for label in variants}
            baseline: list[dict[str, Any]] = []
            for round_number in range(args.rounds):
                say(f"engine round {round_number + 1}/{args.rounds}")
                baseline.append(run_async(baseline_round(args.redis_url, prefix, args.ops, args.concurrency,
                                                         args.pool)))
                for label, settings in variants.items():
                    engine[label].append(run_async(engine_round(settings, seats.take(args.ops), args.concurrency)))
            for label, rounds in engine.items():
                comparisons.append(compare(f"engine hold ({label})", rounds, baseline, 1.2,
                                           "Holds.hold, 1 seat", "redis-py EVALSHA trivial script"))
        if "http" in args.only:
            comparisons += http_comparisons(args, seats, service_env)
        if "best" in args.only:
            # Redis time of a hold by count against an explicit hold (lower is better: at most 3x).
            say("best available")
            comparisons += run_async(best_available.run(args.redis_url, args.best_calls))
        if "cluster" in args.only:
            say("cluster service cpu per hold")
            comparisons += [row for row in [cluster_cpu.run(args, seats, service_env)] if row]
        if "redis-time" in args.only:
            comparisons.append(redis_time_per_hold(args))
        if "saturation" in args.only:
            comparisons += past_saturation(args)
    finally:
        forget_prefix(args.redis_url, prefix)
        forget_prefix(args.redis_url, prefix + TWO_WORKERS_PREFIX)
        db.close()
    command = recorded_command("bench.ceilings", sys.argv[1:])
    return {"scenario": "ceilings", "machine": machine(), "command": command,
            "config": {k: v for k, v in vars(args).items() if k not in {"database_url", "redis_url", "out"}},
            "comparisons": comparisons}


def redis_time_per_hold(args: argparse.Namespace) -> dict[str, Any]:
    """`redis time per hold`: a minimal all-or-nothing hold's Redis µs per call ÷ ours, same
    seats, same run (bench/hold_cost.py, on a redis-server of its own: it resets its stats)."""
    say("redis time per hold")
    return hold_cost.measure(None, args.hold_cost_holds)


def past_saturation(args: argparse.Namespace) -> list[dict[str, Any]]:
    """`past saturation`: holds/s with twice the workers that saturate a Redis held to
    --saturation-redis-share of a core ÷ the peak (bench/scaling.py; needs CPU budgets)."""
    reason = cpubudget.unavailable()
    if reason:
        say(f"past saturation: not measured, {reason}")
        return []
    from bench import scaling  # it builds on this module's helpers

    say("past saturation (bench/scaling.py)")
    sweep = scaling.parser().parse_args(["--database-url", args.database_url, "--workers", "1", "2", "4",
                                         "--redis-core-share", str(args.saturation_redis_share),
                                         "--holds", str(args.ops // 2), "--rounds", str(args.rounds)])
    result = scaling.run(sweep)
    say(scaling.report(result))
    row = result["comparisons"][0]
    return [{**row, "points": [{k: p[k] for k in ("workers", "holds_per_s", "p50_ms", "p99_ms", "shed")}
                               for p in result["points"]],
             "redis_alone_holds_per_s": result["redis_alone_holds_per_s"]}]


def engine_variants(base: Settings, args: argparse.Namespace) -> dict[str, Settings]:
    variants = {"as configured": base}
    if hasattr(base, "redis_autopipeline"):
        variants = {"auto-pipelining": base.with_changes(redis_autopipeline=True),
                    "one call per request": base.with_changes(redis_autopipeline=False)}
    return variants


def http_comparisons(args: argparse.Namespace, seats: Seats, env: dict[str, str]) -> list[dict[str, Any]]:
    """The HTTP comparisons; the servers' logs are kept only when something failed."""
    logs = Path(tempfile.mkdtemp(prefix="boxoffice-ceilings-"))
    try:
        out = run_http_comparisons(args, seats, env, logs)
    except BaseException:
        say(f"the servers' logs are in {logs}")
        raise
    shutil.rmtree(logs, ignore_errors=True)
    return out


def run_http_comparisons(args: argparse.Namespace, seats: Seats, env: dict[str, str],
                         logs: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    redis_port = local_redis_port(args.redis_url)

    def measured(port: int, requests: list[bytes], concurrency: int) -> dict[str, Any]:
        return load_measuring_cpu(port, requests, concurrency, [redis_port] if redis_port else [])

    with uvicorn_app("boxoffice.api.app:create_app", env, 1, log_path=logs / "service-1.log") as real:
        # The seat map both sides answer: a real one, of a show with holds in it.
        warm = seats.take(args.ops)
        load(real, hold_requests(warm, "w"), args.concurrency)
        seat_map_request = request_bytes("GET", f"/v1/shows/{warm[0][0]}/seats")
        seat_map_body = load(real, [seat_map_request], 1, keep_last_body=True).last_body
        seat_map_file = logs / "seat_map.json"
        seat_map_file.write_bytes(seat_map_body)
        bare_env = {**env, "BENCH_SEAT_MAP_FILE": str(seat_map_file)}
        with uvicorn_app("bench.bare_app:create_app", bare_env, 1, "/seats", logs / "bare.log") as bare:
            holds_real: list[dict[str, Any]] = []
            holds_bare: list[dict[str, Any]] = []
            maps_real: list[dict[str, Any]] = []
            maps_bare: list[dict[str, Any]] = []
            for round_number in range(args.rounds):
                say(f"HTTP round {round_number + 1}/{args.rounds}")
                tag = f"r{round_number}x"
                holds_bare.append(measured(bare, bare_hold_requests(args.ops, tag), args.concurrency))
                holds_real.append(measured(real, fresh_holds(real, seats, args.ops, tag), args.concurrency))
                maps_bare.append(measured(bare, [request_bytes("GET", "/seats")] * args.map_ops, args.concurrency))
                maps_real.append(measured(real, [seat_map_request] * args.map_ops, args.concurrency))
            out.append(compare("HTTP hold", holds_real, holds_bare, 0.9, "POST /v1/shows/{id}/holds, 1 seat",
                               "bare Starlette POST, one Redis call"))
            out.append(compare("seat map", maps_real, maps_bare, 0.85,
                               f"GET /v1/shows/{{id}}/seats, {args.hall_seats} seats",
                               f"bare Starlette GET, the same {len(seat_map_body)} bytes"))
        if args.workers_compare:
            # As `boxoffice serve --workers 2` runs them: metrics shared through files.
            metrics_dir = logs / "metrics"
            metrics_dir.mkdir()
            # A key prefix of its own: the idle one-worker service must not receive (and pay
            # for) this service's change messages, nor it those of the one worker.
            two_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
                       "BOXOFFICE_KEY_PREFIX": env["BOXOFFICE_KEY_PREFIX"] + TWO_WORKERS_PREFIX}
            with uvicorn_app("boxoffice.api.app:create_app", two_env, 2, log_path=logs / "service-2.log") as two:
                out.append(workers_comparison(*workers_rounds(args, seats, real, two, measured, "workers", "w")))
                if args.worker_core_share:
                    budgeted = budgeted_workers_comparison(args, seats, real, two, measured)
                    if budgeted:
                        out.append(budgeted)
    return out


def workers_rounds(args: argparse.Namespace, seats: Seats, one_port: int, two_port: int,
                   measured: Callable[[int, list[bytes], int], dict[str, Any]], label: str,
                   tag: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rounds of fresh holds on the one-worker and the two-worker service, alternating."""
    one_worker: list[dict[str, Any]] = []
    two_workers: list[dict[str, Any]] = []
    for round_number in range(args.rounds):
        say(f"{label}: round {round_number + 1}/{args.rounds}")
        prefix = f"{tag}{round_number}x"
        one_worker.append(measured(one_port, fresh_holds(one_port, seats, args.ops, prefix + "a"),
                                   args.concurrency * 2))
        two_workers.append(measured(two_port, fresh_holds(two_port, seats, args.ops, prefix + "b"),
                                    args.concurrency * 2))
    return one_worker, two_workers


def workers_comparison(one_worker: list[dict[str, Any]], two_workers: list[dict[str, Any]]) -> dict[str, Any]:
    """Two workers against one, with what limits the comparison on this machine."""
    scaling = compare("two workers vs one (HTTP hold)", two_workers, one_worker, 1.5,
                      "uvicorn --workers 2", "uvicorn --workers 1")

    def median(rounds: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r.get(key) or 0.0 for r in rounds))

    # CPU per request says whether the workers get in each other's way (they share nothing
    # but Redis and PostgreSQL): on two idle cores of their own the service would scale by
    # 2 x one worker's CPU per hold / two workers' CPU per hold.
    one_cpu = median(one_worker, "service_cpu_ms_per_request")
    two_cpu = median(two_workers, "service_cpu_ms_per_request")
    scaling["service_cpu_ms_per_request"] = {"one_worker": one_cpu, "two_workers": two_cpu}
    scaling["projected_ratio_on_two_idle_cores"] = round(2 * one_cpu / two_cpu, 2) if two_cpu else None
    # But here the client and Redis share the same cores: all the CPU a hold needs (both
    # workers, Redis, the client) caps what this machine can do, whatever the workers do.
    whole = two_cpu + median(two_workers, "redis_cpu_ms_per_request") + median(two_workers, "client_cpu_ms_per_request")
    cores = os.cpu_count() or 1
    if whole:
        cap_per_s = cores * 1000 / whole
        scaling["machine"] = {
            "cores": cores, "cpu_ms_per_hold": round(whole, 3),
            "holds_per_s_cap": round(cap_per_s),
            "cap_ratio": round(cap_per_s / scaling["baseline_figures"]["per_s"], 2),
            "busy_one_worker": median(one_worker, "machine_busy"),
            "busy_two_workers": median(two_workers, "machine_busy")}
    return scaling


def budgeted_workers_comparison(args: argparse.Namespace, seats: Seats, one_port: int, two_port: int,
                                measured: Callable[[int, list[bytes], int], dict[str, Any]]) -> dict[str, Any] | None:
    """Two workers against one, every worker held to the same share of a core (a "core" of
    known size), so the client and Redis never take what a worker needs: the wall-clock
    ratio of how the service itself scales (bench/cpubudget.py says why)."""
    share = args.worker_core_share
    reason = cpubudget.unavailable()
    if reason:
        say(f"two workers vs one with CPU budgets: not measured, {reason}")
        return None
    with (cpubudget.core_share(procstat.serving_processes(one_port), share),
          cpubudget.core_share(procstat.serving_processes(two_port), share)):
        one_worker, two_workers = workers_rounds(args, seats, one_port, two_port, measured,
                                                 f"budgeted workers ({share:g} of a core each)", "q")
    scaling = compare(f"two workers vs one, {share:g} core each", two_workers, one_worker, 1.5,
                      f"uvicorn --workers 2, each worker held to {share:g} of a core",
                      f"uvicorn --workers 1, held to {share:g} of a core")
    scaling["worker_core_share"] = share

    def cores_used(rounds: list[dict[str, Any]]) -> float:
        # Service CPU seconds per second of the round: the budget should be what binds.
        return round(float(statistics.median(r["service_cpu_s"] * r["per_s"] / max(1, r["count"])
                                             for r in rounds)), 2)

    scaling["budget_use"] = {"one_worker_cores": cores_used(one_worker), "two_workers_cores": cores_used(two_workers),
                             "budget_one_worker": share, "budget_two_workers": 2 * share,
                             "busy_one_worker": float(statistics.median(r["machine_busy"] for r in one_worker)),
                             "busy_two_workers": float(statistics.median(r["machine_busy"] for r in two_workers))}
    return scaling


def local_redis_port(redis_url: str) -> int | None:
    """The port of REDIS_URL when Redis runs on this machine (its CPU is then measured)."""
    parsed = urlparse(redis_url)
    if parsed.hostname not in {"127.0.0.1", "localhost", "::1"}:
        return None
    return parsed.port or 6379


def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_report(result: dict[str, Any]) -> None:
    print(f"\nceilings on {result['machine']['nproc']} x {result['machine']['cpu']}, {result['machine']['date']}")
    print(f"{'comparison':38} {'subject/s':>10} {'baseline/s':>11} {'ratio':>6} {'target':>6}  "
          f"{'p50/p99 ms subject':>20} {'p50/p99 ms baseline':>20}")
    for c in result["comparisons"]:
        if "minimal_usec_per_call" in c:  # bench/hold_cost.py
            print(hold_cost.report(c))
            continue
        if c["name"] == "past saturation":  # bench/scaling.py
            print(f"{c['name']}: {c['ratio']} (target {c['target']}): peak {c['peak_holds_per_s']}/s at "
                  f"{c['saturating_workers']} worker(s), {c['twice_workers_holds_per_s']}/s with twice as many")
            continue
        if "subject_figures" not in c:  # bench/best_available.py: Redis time, lower is better
            if c["ratio"] is not None:
                print(f"{c['name'][:38]:38} {c['usec_per_call']:8.1f} us vs {c['explicit_usec_per_call']:.1f} us "
                      f"explicit: {c['ratio']:.2f}x (at most {c['target']:.0f}x)"
                      f"{'' if c['meets_target'] else '  (above target)'}")
            continue
        s, b = c["subject_figures"], c["baseline_figures"]
        print(f"{c['name']:38} {s['per_s']:10.0f} {b['per_s']:11.0f} {c['ratio']:6.2f} {c['target']:6.2f}  "
              f"{s['p50_ms']:9.2f}/{s['p99_ms']:<9.2f} {b['p50_ms']:9.2f}/{b['p99_ms']:<9.2f}"
              f"{'' if c['meets_target'] else '  (below target)'}")
        if "cpu_ms_per_request" in c and "service_cpu_ms_per_request" not in c:
            cpu = c["cpu_ms_per_request"]
            print(f"{'':38} app CPU per request: {cpu['subject']} ms vs {cpu['baseline']} ms baseline "
                  f"-> CPU ratio {c['cpu_ratio']}")
        if "service_cpu_ms_per_request" in c:
            cpu = c["service_cpu_ms_per_request"]
            print(f"{'':38} service CPU per hold: {cpu['one_worker']} ms (1 worker), {cpu['two_workers']} ms "
                  f"(2 workers) -> {c['projected_ratio_on_two_idle_cores']}x on two idle cores")
        if "budget_use" in c:
            u = c["budget_use"]
            print(f"{'':38} service used {u['one_worker_cores']} of {u['budget_one_worker']:g} core (1 worker), "
                  f"{u['two_workers_cores']} of {u['budget_two_workers']:g} (2 workers); machine busy "
                  f"{u['busy_one_worker']:.0%} / {u['busy_two_workers']:.0%}")
        if "machine" in c:
            m = c["machine"]
            print(f"{'':38} this machine: {m['cpu_ms_per_hold']} ms of CPU a hold (workers + Redis + client) on "
                  f"{m['cores']} cores caps it at {m['holds_per_s_cap']}/s = {m['cap_ratio']}x one worker "
                  f"(busy {m['busy_one_worker']:.0%} with one, {m['busy_two_workers']:.0%} with two)")
        for label, figures in (("subject", s), ("baseline", b)):
            parts = [f"{name} {figures[key]}" for name, key in
                     (("service", "service_cpu_ms_per_request"), ("redis", "redis_cpu_ms_per_request"),
                      ("client", "client_cpu_ms_per_request")) if key in figures]
            if parts and "machine" not in c and "service_cpu_ms_per_request" not in c:
                print(f"{'':38} {label} CPU ms per request: {', '.join(parts)}; machine busy "
                      f"{figures['machine_busy']:.0%}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    p.add_argument("--ops", type=int, default=6000, help="holds per round and side")
    p.add_argument("--map-ops", type=int, default=6000,
                   help="seat maps per round and side (rounds under a second read coarse CPU ticks)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--pool", type=int, default=64, help="Redis connections per process, both sides")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--hall-seats", type=int, default=2000)
    p.add_argument("--only", nargs="+",
                   choices=["engine", "http", "best", "cluster", "redis-time", "saturation"],
                   default=["engine", "http", "best", "cluster", "redis-time", "saturation"])
    p.add_argument("--cluster-primaries", type=int, default=3,
                   help="primaries of the local Redis Cluster of the `cluster service cpu per hold` row")
    p.add_argument("--saturation-redis-share", type=float, default=0.1,
                   help="the share of a core Redis is held to for the `past saturation` row")
    p.add_argument("--hold-cost-holds", type=int, default=2000,
                   help="holds per side of bench/hold_cost.py (the `redis time per hold` row)")
    p.add_argument("--best-calls", type=int, default=800,
                   help="calls per series of bench/best_available.py (Redis time of holds by count)")
    p.add_argument("--no-workers-compare", dest="workers_compare", action="store_false")
    p.add_argument("--worker-core-share", type=float, default=0.5,
                   help="also compare the workers with each held to this share of a core (cgroup CPU quota; "
                        "needs root); 0 skips it")
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "ceilings.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.database_url and args.redis_url):
        sys.exit("the ceilings need the real servers: --database-url and --redis-url (or DATABASE_URL, REDIS_URL)")
    result = run(args)
    print_report(result)
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
