"""The worker sweep: how many holds a second the service sells with 1, 2, 4, 8 workers on one
redis-server, beside the Redis-alone ceiling measured in the same run, with each process's
CPU per hold and the holds each Redis node served.

    python -m bench.scaling --database-url postgresql://.../boxoffice_bench --workers 1 2 4 8
    python -m bench.scaling --database-url ... --redis-core-share 0.3     # Redis held to 0.3 of a core

It starts a redis-server of its own (so its CPU and commandstats are this run's alone) and,
for each worker count, `uvicorn --workers N` of the service at its defaults (rate limits
off: every hold comes from one address), then sends `--holds` one-seat holds on fresh seats
of fresh 2,000-seat shows from `--connections-per-worker` connections per worker (bench/
loadgen.py). The Redis-alone ceiling is the engine's hold called in-process with
auto-pipelining (no HTTP): what Redis sells when nothing else is in the way.

On a machine with few cores the workers, Redis and the client share them, so the sweep
would measure the machine. `--redis-core-share` holds Redis to a share of one core with the
kernel's CFS quota (bench/cpubudget.py; root and the cgroup v1 cpu controller): Redis then
saturates first, as on a big machine, and the sweep shows what happens past it.

The ceilings row `past saturation`: holds/s with twice the workers that saturate Redis ÷ the
peak (target 0.95). The workers that saturate Redis: the fewest that reach 90 % of the peak.

Not measured here yet: a Redis Cluster (`--cluster-primaries`), see bench/RESULTS.md."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis

from bench import cpubudget, procstat
from bench.ceilings import Seats, engine_round, fresh_holds, load_measuring_cpu
from bench.redis_cost import free_port
from bench.servers import uvicorn_app
from bench.spike import RESULTS_DIR, machine, recorded_command, run_async
from bench.sqldb import BenchDb
from boxoffice.engine.settings import Settings

TARGET = 0.95
NAME = "past saturation"
SATURATED = 0.9  # a worker count that reaches this share of the peak saturates Redis


@contextlib.contextmanager
def private_redis(share: float) -> Any:
    """A redis-server of this run, held to `share` of a core (0: not held)."""
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                break
            subprocess.run(["sleep", "0.05"], check=False)
        client.close()
        if share:
            # The quota caps Redis; a higher priority makes it get its quota on a busy
            # machine too (other processes would otherwise take part of it).
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, process.pid, -10)
        with cpubudget.core_share([process.pid], share) if share else contextlib.nullcontext():
            yield port
    finally:
        process.terminate()
        process.wait(10)


def holds_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """Holds granted a second (201s; 503 overloaded and others apart) and the shares."""
    count = max(1, int(figures["count"]))
    granted = int(figures["statuses"].get("201", 0))
    return {**figures, "holds_per_s": round(figures["per_s"] * granted / count),
            "shed": int(figures["statuses"].get("503", 0))}


def commandstats_fcalls(port: int) -> int:
    client = redis.Redis(port=port)
    try:
        return int(client.info("commandstats").get("cmdstat_fcall", {}).get("calls", 0))
    finally:
        client.close()


def sweep_point(args: argparse.Namespace, seats: Seats, redis_port: int, workers: int) -> dict[str, Any]:
    prefix = f"scale{uuid.uuid4().hex[:6]}"
    env = {"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "DATABASE_URL": args.database_url,
           "BOXOFFICE_KEY_PREFIX": prefix, "BOXOFFICE_RATE_HOLDS_PER_MIN": "0", "BOXOFFICE_RATE_IP_PER_MIN": "0"}
    if args.max_in_flight is not None:  # else the service's default
        env["BOXOFFICE_MAX_IN_FLIGHT"] = str(args.max_in_flight)
    with uvicorn_app("boxoffice.api.app:create_app", env, workers=workers) as port:
        requests = fresh_holds(port, seats, args.holds, f"w{workers}")
        calls_before = commandstats_fcalls(redis_port)
        budget = (cpubudget.core_share(procstat.serving_processes(port), args.worker_core_share)
                  if args.worker_core_share else contextlib.nullcontext())
        with budget:
            figures = holds_figures(load_measuring_cpu(port, requests, args.connections_per_worker * workers,
                                                       redis_port=redis_port))
        figures["holds_per_node"] = {str(redis_port): commandstats_fcalls(redis_port) - calls_before}
        figures["workers"] = workers
        figures["worker_pids"] = len(procstat.serving_processes(port))
    return figures


def redis_alone(args: argparse.Namespace, seats: Seats, redis_port: int) -> dict[str, Any]:
    settings = Settings(redis_url=f"redis://127.0.0.1:{redis_port}/0", database_url=args.database_url,
                        key_prefix=f"scale{uuid.uuid4().hex[:6]}", rate_limit_holds_per_min=0,
                        rate_limit_ip_per_min=0)
    return run_async(engine_round(settings, seats.take(args.holds), 256))


def past_saturation(points: dict[int, dict[str, Any]]) -> dict[str, Any]:
    peak = max(p["holds_per_s"] for p in points.values())
    saturating = min(n for n, p in points.items() if p["holds_per_s"] >= SATURATED * peak)
    twice = points.get(2 * saturating)
    ratio = round(twice["holds_per_s"] / peak, 2) if twice else None
    return {"name": NAME, "ratio": ratio, "target": TARGET,
            "meets_target": ratio is not None and ratio >= TARGET, "better": "higher",
            "peak_holds_per_s": peak, "saturating_workers": saturating,
            "twice_workers_holds_per_s": twice["holds_per_s"] if twice else None}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if (args.redis_core_share or args.worker_core_share) and cpubudget.unavailable():
        sys.exit(f"--redis-core-share and --worker-core-share need CPU budgets: {cpubudget.unavailable()}")
    db = BenchDb(args.database_url)
    seats = Seats(db, args.hall_seats)
    points: dict[int, dict[str, Any]] = {}
    ceilings = []
    try:
        with private_redis(args.redis_core_share) as redis_port:
            for workers in args.workers:
                ceilings.append(redis_alone(args, seats, redis_port))
                print(f"redis alone: {ceilings[-1]['per_s']:.0f} holds/s", file=sys.stderr)
                points[workers] = sweep_point(args, seats, redis_port, workers)
                p = points[workers]
                print(f"{workers} workers: {p['holds_per_s']} holds/s, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
                      f"shed {p['shed']}; CPU ms a hold: service {p['service_cpu_ms_per_request']}, "
                      f"redis {p.get('redis_cpu_ms_per_request')}", file=sys.stderr)
            row = past_saturation(points)
            extra = 2 * row["saturating_workers"]
            if row["ratio"] is None and extra <= args.max_workers:
                points[extra] = sweep_point(args, seats, redis_port, extra)
                row = past_saturation(points)
    finally:
        db.close()
    alone = statistics.median(c["per_s"] for c in ceilings)
    return {"scenario": "scaling", "machine": machine(), "command": recorded_command("bench.scaling", sys.argv[1:]),
            "redis_core_share": args.redis_core_share, "worker_core_share": args.worker_core_share,
            "redis_alone_holds_per_s": round(alone),
            "redis_alone_rounds": [round(c["per_s"]) for c in ceilings],
            "points": [points[n] for n in sorted(points)], "comparisons": [row]}


def report(result: dict[str, Any]) -> str:
    lines = [f"scaling on {result['machine']['nproc']} x {result['machine']['cpu']}, Redis held to "
             f"{result['redis_core_share'] or 'no'} core share, each worker to "
             f"{result['worker_core_share'] or 'no'}; Redis alone (engine, pipelined): "
             f"{result['redis_alone_holds_per_s']} holds/s (rounds {result['redis_alone_rounds']})",
             f"{'workers':>7} {'holds/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'shed':>6} {'svc ms/hold':>11} "
             f"{'redis ms/hold':>13} {'busy':>5}"]
    for p in result["points"]:
        lines.append(f"{p['workers']:7} {p['holds_per_s']:8} {p['p50_ms']:7} {p['p99_ms']:7} {p['shed']:6} "
                     f"{p['service_cpu_ms_per_request']:11} {p.get('redis_cpu_ms_per_request', '-'):>13} "
                     f"{p['machine_busy']:5.0%}")
    row = result["comparisons"][0]
    lines.append(f"{row['name']}: {row['ratio']} (target {row['target']}; peak {row['peak_holds_per_s']}/s, "
                 f"saturated at {row['saturating_workers']} workers, {2 * row['saturating_workers']} workers: "
                 f"{row['twice_workers_holds_per_s']}/s)")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", required=True, help="a migrated database of the bench's own")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--max-workers", type=int, default=16, help="the most workers run to find twice the saturating")
    p.add_argument("--holds", type=int, default=4000, help="holds per point (a few seconds each)")
    p.add_argument("--connections-per-worker", type=int, default=64)
    p.add_argument("--redis-core-share", type=float, default=0.0,
                   help="hold Redis to this share of a core (CFS quota; root): 0 leaves it free")
    p.add_argument("--worker-core-share", type=float, default=0.0,
                   help="hold each worker to this share of a core too, so that a small machine's cores "
                        "are not what binds (CFS quota; root): 0 leaves them free")
    p.add_argument("--max-in-flight", type=int, default=None,
                   help="BOXOFFICE_MAX_IN_FLIGHT of the service (default: the service's own default)")
    p.add_argument("--hall-seats", type=int, default=2000)
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "scaling.json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    result = run(args)
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
