"""The worker sweep: how many holds a second the service sells with 1, 2, 4, 8 workers on one
redis-server or on a local Redis Cluster, beside the Redis-alone ceiling measured on the same
Redis in the same run, with each process's CPU per hold (every Redis node's too) and the
holds each Redis node served.

    python -m bench.scaling --database-url postgresql://.../boxoffice_bench --workers 1 2 4 8
    python -m bench.scaling --redis-core-share 0.3     # Redis held to 0.3 of a core (DATABASE_URL)
    python -m bench.scaling --cluster-primaries 3      # a cluster of 3 primaries, the service in cluster mode

It starts a Redis of its own (bench/sweep_redis.py: so its CPU and commandstats are this
run's alone): one redis-server, or with `--cluster-primaries N` a cluster of N primaries
(bench/localcluster.py) and the service in cluster mode (BOXOFFICE_REDIS_CLUSTER=1). For
each worker count it runs `uvicorn --workers N` of the service at its defaults, the abuse
limits on, and sends `--holds` one-seat holds from `--connections-per-worker` connections per
worker (bench/loadgen.py). Every hold is a customer of its own, with a name and a client
address of its own (X-Forwarded-For, which uvicorn takes from the load generator as from a
proxy: bench/servers.py), as the ceilings send them, so no hold meets a limit: a 429 is
counted (`limited`) and makes the run exit 1. The holds take fresh seats of `--shows` fresh
2,000-seat shows, dealt a seat of each show in turn; on a cluster the nodes serve equal
numbers of those shows (a show's keys share its hash tag), so every node has work all along.
Each point records the count of each status, the client addresses the abuse limits counted
(one a hold), and each node's FCALLs (INFO commandstats) as its holds. The Redis-alone
ceiling is the engine's hold called in-process with auto-pipelining (no HTTP; per node on a
cluster), counted against the same limits, on the same spread of shows: what Redis sells
when nothing else is in the way.

On a machine with few cores the workers, Redis and the client share them, so the sweep
would measure the machine. `--redis-core-share` holds Redis (each node of a cluster) to a
share of one core with the kernel's CFS quota (bench/cpubudget.py; root and the cgroup v1
cpu controller): Redis then saturates first, as on a big machine, and the sweep shows what
happens past it.

Every worker count is measured `--rounds` times, the counts alternating within a round so
that a disturbance of the machine falls on all of them alike; each count's median round
stands for it (every round's holds/s is kept beside it).

The ceilings row `past saturation`: holds/s with twice the workers that saturate Redis ÷ the
peak (target 0.95). The workers that saturate Redis: the fewest that reach 90 % of the peak."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

from bench import cpubudget, procstat, sweep_redis
from bench.ceilings import Seats, engine_round, fresh_holds, load_measuring_cpu
from bench.results_file import write_result
from bench.servers import uvicorn_app
from bench.spike import RESULTS_DIR, machine, recorded_command, run_async
from bench.sqldb import BenchDb
from bench.sweep_redis import SweepRedis

TARGET = 0.95
NAME = "past saturation"
SATURATED = 0.9  # a worker count that reaches this share of the peak saturates Redis
ALONE_CONCURRENCY = 256  # holds in flight in the Redis-alone ceiling: enough to fill the pipelines
# New shows a sweep may make to find the shows every node serves, per show it needs.
MAX_NEW_SHOWS_PER_SHOW = 20


class SpreadSeats(Seats):
    """Fresh seats for a point's holds on `shows` new shows that the Redis nodes serve in
    equal numbers (as near as the count allows), dealt a seat of each show in turn, so every
    node has work all along the load."""

    def __init__(self, db: BenchDb, hall_seats: int, shows: int, target: SweepRedis) -> None:
        super().__init__(db, hall_seats)
        if shows < len(target.ports):
            raise ValueError(f"{shows} shows cannot spread over {len(target.ports)} nodes")
        self.shows = shows
        self.target = target

    def take(self, count: int) -> list[tuple[int, str]]:
        shows = self.shows_on_every_node()
        per_show = -(-count // len(shows))
        if per_show > len(shows[0][1]):
            raise ValueError(f"{count} holds on {len(shows)} shows of {len(shows[0][1])} seats: raise --shows")
        return [(show_id, seat_ids[i]) for i in range(per_show) for show_id, seat_ids in shows][:count]

    def shows_on_every_node(self) -> list[tuple[int, list[str]]]:
        nodes = self.target.ports
        wanted = {port: self.shows // len(nodes) + (i < self.shows % len(nodes)) for i, port in enumerate(nodes)}
        picked: list[tuple[int, list[str]]] = []
        for _ in range(MAX_NEW_SHOWS_PER_SHOW * self.shows):
            show_id, seat_ids = self.new_show()
            node = self.target.node_of_show(show_id)
            if wanted[node]:
                wanted[node] -= 1
                picked.append((show_id, seat_ids))
                if len(picked) == self.shows:
                    return picked
        raise RuntimeError(f"no {self.shows} shows spread over the nodes {nodes} among "
                           f"{MAX_NEW_SHOWS_PER_SHOW * self.shows} new ones")


def holds_figures(figures: dict[str, Any]) -> dict[str, Any]:
    """Holds granted a second (201s; 503 overloaded, 429 limited and others apart)."""
    count = max(1, int(figures["count"]))
    granted = int(figures["statuses"].get("201", 0))
    return {**figures, "holds_per_s": round(figures["per_s"] * granted / count),
            "shed": int(figures["statuses"].get("503", 0)), "limited": int(figures["statuses"].get("429", 0))}


def sweep_point(args: argparse.Namespace, seats: Seats, target: SweepRedis, workers: int) -> dict[str, Any]:
    prefix = f"scale{uuid.uuid4().hex[:6]}"
    env = {**target.service_env(), "DATABASE_URL": args.database_url, "BOXOFFICE_KEY_PREFIX": prefix}
    if args.max_in_flight is not None:  # else the service's default
        env["BOXOFFICE_MAX_IN_FLIGHT"] = str(args.max_in_flight)
    with uvicorn_app("boxoffice.api.app:create_app", env, workers=workers) as port:
        requests = fresh_holds(port, seats, args.holds, f"w{workers}")
        calls_before = target.fcalls()
        budget = (cpubudget.core_share(procstat.serving_processes(port), args.worker_core_share)
                  if args.worker_core_share else contextlib.nullcontext())
        with budget:
            figures = holds_figures(load_measuring_cpu(port, requests, args.connections_per_worker * workers,
                                                       target.ports))
        calls_after = target.fcalls()
        figures["holds_per_node"] = {str(node): calls_after[node] - calls_before[node] for node in target.ports}
        # One per hold when the service takes each customer's address from X-Forwarded-For.
        figures["client_addresses_counted"] = target.addresses_counted(prefix)
        figures["workers"] = workers
        figures["worker_pids"] = len(procstat.serving_processes(port))
    return figures


def redis_alone(args: argparse.Namespace, seats: Seats, target: SweepRedis) -> dict[str, Any]:
    settings = target.settings(args.database_url, f"scale{uuid.uuid4().hex[:6]}")
    return run_async(engine_round(settings, seats.take(args.holds), ALONE_CONCURRENCY))


def median_points(rounds: dict[int, list[dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """Each worker count's median round by holds/s, with every round's holds/s beside it."""
    points = {}
    for workers, point_rounds in rounds.items():
        ordered = sorted(point_rounds, key=lambda p: p["holds_per_s"])
        points[workers] = {**ordered[len(ordered) // 2],
                           "rounds_holds_per_s": [p["holds_per_s"] for p in point_rounds]}
    return points


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
    rounds: dict[int, list[dict[str, Any]]] = {}
    ceilings = []

    def measure(worker_counts: list[int]) -> None:
        # The worker counts alternate within each round, so a disturbance of the machine
        # falls on all of them alike; each count's median round stands for it.
        for round_number in range(args.rounds):
            for workers in worker_counts:
                ceilings.append(redis_alone(args, seats, target))
                print(f"round {round_number + 1}/{args.rounds}: redis alone: {ceilings[-1]['per_s']:.0f} holds/s",
                      file=sys.stderr)
                p = sweep_point(args, seats, target, workers)
                rounds.setdefault(workers, []).append(p)
                print(f"{workers} workers: {p['holds_per_s']} holds/s, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms, "
                      f"statuses {p['statuses']}, {p['client_addresses_counted']} client addresses; "
                      f"CPU ms a hold: service {p['service_cpu_ms_per_request']}, "
                      f"redis {p.get('redis_cpu_ms_per_request')}", file=sys.stderr)

    try:
        with sweep_redis.started(args.cluster_primaries, args.redis_core_share) as target:
            seats = SpreadSeats(db, args.hall_seats, args.shows, target)
            measure(args.workers)
            row = past_saturation(median_points(rounds))
            extra = 2 * row["saturating_workers"]
            if row["ratio"] is None and extra <= args.max_workers:
                measure([extra])
                row = past_saturation(median_points(rounds))
    finally:
        db.close()
    alone = statistics.median(c["per_s"] for c in ceilings)
    points = median_points(rounds)
    return {"scenario": "scaling", "machine": machine(), "command": recorded_command("bench.scaling", sys.argv[1:]),
            "redis": {"label": target.label, "cluster": target.cluster, "nodes": len(target.ports)},
            "shows_per_point": args.shows,
            "redis_core_share": args.redis_core_share, "worker_core_share": args.worker_core_share,
            "redis_alone_holds_per_s": round(alone),
            "redis_alone_rounds": [round(c["per_s"]) for c in ceilings],
            "rounds": args.rounds,
            "limited": sum(p["limited"] for point_rounds in rounds.values() for p in point_rounds),
            "points": [points[n] for n in sorted(points)], "comparisons": [row]}


def report(result: dict[str, Any]) -> str:
    lines = [f"scaling on {result['machine']['nproc']} x {result['machine']['cpu']}, {result['redis']['label']}, "
             f"each node held to {result['redis_core_share'] or 'no'} core share, each worker to "
             f"{result['worker_core_share'] or 'no'}; holds on {result['shows_per_point']} shows a point; "
             f"Redis alone (engine, pipelined): {result['redis_alone_holds_per_s']} holds/s "
             f"(rounds {result['redis_alone_rounds']})",
             f"{'workers':>7} {'holds/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'shed':>6} {'429':>5} {'svc ms/hold':>11} "
             f"{'redis ms/hold':>13} {'busy':>5}  holds per node"]
    for p in result["points"]:
        lines.append(f"{p['workers']:7} {p['holds_per_s']:8} {p['p50_ms']:7} {p['p99_ms']:7} {p['shed']:6} "
                     f"{p['limited']:5} {p['service_cpu_ms_per_request']:11} "
                     f"{p.get('redis_cpu_ms_per_request', '-'):>13} {p['machine_busy']:5.0%}  "
                     f"{' / '.join(str(n) for n in p['holds_per_node'].values())}  "
                     f"(rounds: {', '.join(str(n) for n in p['rounds_holds_per_s'])} holds/s)")
    row = result["comparisons"][0]
    lines.append(f"{row['name']}: {row['ratio']} (target {row['target']}; peak {row['peak_holds_per_s']}/s, "
                 f"saturated at {row['saturating_workers']} workers, {2 * row['saturating_workers']} workers: "
                 f"{row['twice_workers_holds_per_s']}/s)")
    if result["limited"]:
        lines.append(f"{result['limited']} holds answered 429: at the defaults every customer has a name and an "
                     "address of its own, so none should be")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    database_url = os.environ.get("DATABASE_URL")
    p.add_argument("--database-url", default=database_url, required=not database_url,
                   help="a migrated database of the bench's own (default: DATABASE_URL)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--cluster-primaries", type=int, default=0,
                   help="run against a local Redis Cluster of this many primaries started for the run "
                        "(the service in cluster mode); 0: one redis-server")
    p.add_argument("--shows", type=int, default=12,
                   help="fresh shows a point's holds spread over, the nodes serving equal numbers of them")
    p.add_argument("--max-workers", type=int, default=16, help="the most workers run to find twice the saturating")
    p.add_argument("--holds", type=int, default=4000, help="holds per point and round (a few seconds each)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds of the sweep, the worker counts alternating; each count's median round counts")
    p.add_argument("--connections-per-worker", type=int, default=64)
    p.add_argument("--redis-core-share", type=float, default=0.0,
                   help="hold Redis (each node of a cluster) to this share of a core (CFS quota; root): "
                        "0 leaves it free")
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
    write_result(result, args.out)
    return 1 if result["limited"] else 0


if __name__ == "__main__":
    sys.exit(main())
