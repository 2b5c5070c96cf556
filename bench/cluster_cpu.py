"""The ceilings row `cluster service cpu per hold`: what a hold costs a service worker on a
Redis Cluster against one Redis server, the same load in the same run, rounds alternating.

Three one-worker services run under uvicorn at the defaults (auto-pipelining on): one on
REDIS_URL's single server, one in cluster mode (BOXOFFICE_REDIS_CLUSTER=1) on a local
cluster of `--cluster-primaries` primaries started for the run, and, for the record, the
same cluster with auto-pipelining off (redis-py's cluster client, one round trip a call).
Each round sends every service the same number of fresh one-seat holds over HTTP, and
/proc tells the CPU seconds the service process spent.

ratio = single-server worker CPU per hold / cluster-mode worker CPU per hold (medians of
the rounds); target 0.8: a hold on a cluster costs the worker at most 1.25 times as much."""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.localcluster import local_cluster
from bench.servers import uvicorn_app

NAME = "cluster service cpu per hold"
TARGET = 0.8


def cpu_per_hold(rounds: list[dict[str, Any]]) -> float:
    return float(statistics.median(r["service_cpu_ms_per_request"] for r in rounds))


def run(args: argparse.Namespace, seats: Any, env: dict[str, str]) -> dict[str, Any] | None:
    """The row, or None (said why) where no local cluster can be started."""
    from bench import ceilings  # the shared load and CPU helpers (ceilings imports this module)

    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        ceilings.say(f"{NAME}: not measured, redis-server and redis-cli are needed for a local cluster")
        return None
    logs = Path(tempfile.mkdtemp(prefix="boxoffice-cluster-cpu-"))
    with local_cluster(args.cluster_primaries) as ports:
        cluster_env = {**env, "REDIS_URL": f"redis://127.0.0.1:{ports[0]}/0", "BOXOFFICE_REDIS_CLUSTER": "1"}
        with (uvicorn_app("boxoffice.api.app:create_app", env, 1, log_path=logs / "single.log") as single,
              uvicorn_app("boxoffice.api.app:create_app", cluster_env, 1, log_path=logs / "cluster.log") as cluster,
              uvicorn_app("boxoffice.api.app:create_app", {**cluster_env, "BOXOFFICE_REDIS_AUTOPIPELINE": "0"}, 1,
                          log_path=logs / "cluster-redis-py.log") as unpipelined):
            sides: dict[str, tuple[int, list[dict[str, Any]]]] = {
                "single": (single, []), "cluster": (cluster, []), "cluster_redis_py": (unpipelined, [])}
            for round_number in range(args.rounds):
                ceilings.say(f"cluster cpu: round {round_number + 1}/{args.rounds}")
                for label, (port, rounds) in sides.items():
                    requests = ceilings.fresh_holds(port, seats, args.ops, f"k{round_number}{label[:3]}")
                    rounds.append(ceilings.load_measuring_cpu(port, requests, args.concurrency))
    single_cpu, cluster_cpu = cpu_per_hold(sides["single"][1]), cpu_per_hold(sides["cluster"][1])
    ratio = round(single_cpu / cluster_cpu, 3) if cluster_cpu else 0.0
    for _, rounds in sides.values():
        bad = {k: v for r in rounds for k, v in r["statuses"].items() if k != "201"}
        if bad:
            raise RuntimeError(f"holds answered other than 201: {bad} (logs in {logs})")
    shutil.rmtree(logs, ignore_errors=True)
    return {
        "name": NAME, "ratio": ratio, "target": TARGET, "meets_target": ratio >= TARGET,
        "subject": f"cluster mode, {args.cluster_primaries} primaries, auto-pipelining per node",
        "baseline": "one Redis server, auto-pipelining",
        "subject_figures": ceilings.pick(sides["cluster"][1]), "baseline_figures": ceilings.pick(sides["single"][1]),
        "subject_rounds": [r["per_s"] for r in sides["cluster"][1]],
        "baseline_rounds": [r["per_s"] for r in sides["single"][1]],
        "cpu_ms_per_request": {"subject": cluster_cpu, "baseline": single_cpu},
        "cpu_ratio": ratio,
        "cpu_ms_per_hold": {"single": [r["service_cpu_ms_per_request"] for r in sides["single"][1]],
                            "cluster": [r["service_cpu_ms_per_request"] for r in sides["cluster"][1]],
                            "cluster_redis_py": [r["service_cpu_ms_per_request"]
                                                 for r in sides["cluster_redis_py"][1]]},
        "redis_py_cluster_ratio": round(single_cpu / cpu_per_hold(sides["cluster_redis_py"][1]), 3),
    }
