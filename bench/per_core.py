"""CPU cost per request, by server: the figures docs/SCALING.md sizes the fleet with.

One service worker (uvicorn, one process) on a redis-server and a PostgreSQL of this run's
own (so nobody else's load is counted), driven by the lean load generator at a fixed
concurrency. For each kind of request the CPU seconds that the service process, Redis and
PostgreSQL spent are read from /proc before and after: requests per CPU-second of each is
"per core" (a core that does nothing else). Wall-clock throughput is printed too, but on a
small shared machine the CPU figures are the ones to scale from.

    python -m bench.per_core            (needs redis-server and the PostgreSQL server binaries)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.catalog import create_spike_show
from bench.loadgen import client_address, request_bytes, run_load
from bench.procstat import cpu_seconds, cpu_spent
from bench.servers import uvicorn_app
from bench.spike import RESULTS_DIR, machine, recorded_command, run_async
from bench.sqldb import BenchDb


def process_groups(service_port: int, redis_port: int, data_dir: str) -> dict[str, Callable[[str], bool]]:
    return {
        "service": lambda cmd: "boxoffice.api.app:create_app" in cmd and f"--port {service_port} " in cmd + " ",
        "redis": lambda cmd: cmd.split(" ")[0].endswith("redis-server") and cmd.endswith(f":{redis_port}"),
        "postgres": lambda cmd: data_dir in cmd,
    }


def measure(name: str, port: int, requests: list[bytes], concurrency: int,
            groups: dict[str, Callable[[str], bool]]) -> dict[str, Any]:
    before = cpu_seconds(groups)
    result = run_async(run_load("127.0.0.1", port, iter(requests), concurrency))
    after = cpu_seconds(groups)
    spent = cpu_spent(before, after)
    ok = sum(n for status, n in result.statuses.items() if status < 400)
    statuses = {str(status): n for status, n in result.statuses.items()}
    return {"name": name, "requests": len(requests), "ok": ok, "statuses": statuses,
            "wall_per_s": round(result.per_s), "p50_ms": result.summary["p50_ms"], "p99_ms": result.summary["p99_ms"],
            "cpu_s": {g: round(s, 2) for g, s in spent.items()},
            "per_core_s": {g: round(len(requests) / s) if s > 0.05 else None for g, s in spent.items()}}


async def confirm_all(port: int, hold_ids: list[str], concurrency: int) -> int:
    """Pays for every hold (httpx: the bodies are needed); answers how many were booked."""
    booked = 0
    queue = list(hold_ids)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal booked
        while queue:
            hold_id = queue.pop()
            answer = await client.post(f"/v1/holds/{hold_id}/confirm", headers={"Idempotency-Key": hold_id},
                                       json={"payment": {"method": "card", "token": "tok_ok"}})
            booked += answer.status_code == 201

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return booked


async def make_holds(port: int, show_id: int, seats: list[str], tag: str) -> list[str]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        answers = await asyncio.gather(*(
            client.post(f"/v1/shows/{show_id}/holds", json={"seats": seats[i:i + 2], "customer": f"{tag}{i}@c.example"})
            for i in range(0, len(seats) - 1, 2)))
    return [a.json()["hold_id"] for a in answers if a.status_code == 201]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from boxoffice.engine import db, seed
    from boxoffice.engine.settings import Settings
    from tests.support.postgres import ThrowawayPostgres
    from tests.support.services import RedisServer

    redis, postgres = RedisServer.start(), ThrowawayPostgres.start()
    logs: Path | None = None
    try:
        url = postgres.create_database("bench")

        async def migrate_and_seed() -> None:
            engine = db.create_engine(Settings(redis_url=redis.url, database_url=url))
            await db.migrate(engine)
            await seed.seed_demo(engine, 1, date.today())
            await engine.dispose()

        asyncio.run(migrate_and_seed())
        bench_db = BenchDb(url)
        shows = [create_spike_show(bench_db, 2000) for _ in range(args.hold_shows + 2)]
        city, movie = shows[0].city_id, shows[0].movie_id
        seat_ids = [r[0] for r in bench_db.rows("SELECT id FROM seats WHERE hall_id = %s ORDER BY id",
                                                (shows[0].hall_id,))]
        bench_db.close()
        # The production defaults, the abuse limits on (every customer its own name and address).
        env = {"REDIS_URL": redis.url, "DATABASE_URL": url, "BOXOFFICE_KEY_PREFIX": f"pc{uuid.uuid4().hex[:6]}"}
        logs = Path(tempfile.mkdtemp(prefix="boxoffice-per-core-"))
        figures = []
        with uvicorn_app("boxoffice.api.app:create_app", env, 1, log_path=logs / "service.log") as port:
            # Only this run's processes: other services may share the machine.
            groups = process_groups(port, redis.port, str(postgres.data))
            c = args.concurrency
            # Warm up: every show loaded into Redis, every code path run once.
            warm = [request_bytes("GET", f"/v1/shows/{show.show_id}/seats") for show in shows]
            run_async(run_load("127.0.0.1", port, iter(warm * 20), c))
            hold_requests = [
                request_bytes("POST", f"/v1/shows/{show.show_id}/holds",
                              {"seats": seat_ids[i:i + 2], "customer": f"h{n}-{i}@c.example"},
                              client=client_address(n * len(seat_ids) + i))
                for n, show in enumerate(shows[2:]) for i in range(0, len(seat_ids) - 1, 2)]
            figures.append(measure("hold (2 seats)", port, hold_requests, c, groups))
            seat_map = request_bytes("GET", f"/v1/shows/{shows[2].show_id}/seats")
            figures.append(measure("seat map (2,000 seats)", port, [seat_map] * args.reads, c, groups))
            browse = [request_bytes("GET", f"/v1/cities/{city}/movies/{movie}/shows"),
                      request_bytes("GET", f"/v1/shows/{shows[1].show_id}"), request_bytes("GET", "/v1/cities")]
            figures.append(measure("browse (cached catalog)", port, browse * (args.reads * 3 // len(browse)), c,
                                   groups))
            hold_ids = run_async(make_holds(port, shows[0].show_id, seat_ids[:2 * args.confirms], "p"))
            before = cpu_seconds(groups)
            started = time.perf_counter()
            booked = run_async(confirm_all(port, hold_ids, min(c, 32)))
            wall = time.perf_counter() - started
            spent = cpu_spent(before, cpu_seconds(groups))
            figures.append({"name": "confirm (2 seats, tok_ok)", "requests": len(hold_ids), "ok": booked,
                            "wall_per_s": round(len(hold_ids) / wall),
                            "cpu_s": {g: round(s, 2) for g, s in spent.items()},
                            "per_core_s": {g: round(len(hold_ids) / s) if s > 0.05 else None
                                           for g, s in spent.items()}})
        command = recorded_command("bench.per_core", sys.argv[1:])
        return {"scenario": "per_core", "machine": machine(), "command": command,
                "config": {k: v for k, v in vars(args).items() if k != "out"}, "figures": figures,
                "storage": storage_per_booking(url)}
    finally:
        redis.stop()
        postgres.stop()
        if logs is not None:
            shutil.rmtree(logs, ignore_errors=True)


def storage_per_booking(url: str) -> dict[str, Any]:
    """Disk bytes (tables and their indexes) per booking and per sold seat, for the sizing."""
    bench_db = BenchDb(url)
    try:
        bench_db.execute("VACUUM ANALYZE")
        total = int(bench_db.value(
            "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(ARRAY['bookings', 'booked_seats',"
            " 'payments', 'idempotency_keys']) AS t"))
        bookings = int(bench_db.value("SELECT count(*) FROM bookings"))
        seats = int(bench_db.value("SELECT count(*) FROM booked_seats"))
    finally:
        bench_db.close()
    return {"bytes": total, "bookings": bookings, "seats": seats,
            "bytes_per_booking": round(total / max(1, bookings)), "bytes_per_seat": round(total / max(1, seats))}


def print_report(result: dict[str, Any]) -> None:
    print(f"\nper core on {result['machine']['nproc']} x {result['machine']['cpu']}")
    print(f"{'request':28} {'n':>6} {'ok':>6} {'wall/s':>7} | per CPU-second of: {'service':>8} {'redis':>8} "
          f"{'postgres':>9}")
    for f in result["figures"]:
        per = f["per_core_s"]
        print(f"{f['name']:28} {f['requests']:6} {f['ok']:6} {f['wall_per_s']:7} | {'':19}"
              f"{per['service'] or '-':>8} {per['redis'] or '-':>8} {per['postgres'] or '-':>9}")
    storage = result["storage"]
    print(f"sales tables: {storage['bytes_per_booking']} bytes per booking ({storage['bookings']} bookings,"
          f" {storage['seats']} seats), indexes included")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.per_core", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hold-shows", type=int, default=6, help="2,000-seat shows filled by 2-seat holds")
    p.add_argument("--reads", type=int, default=5000, help="seat maps (and 3x browse requests)")
    p.add_argument("--confirms", type=int, default=800)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--out", type=Path, default=RESULTS_DIR / "per_core.json")
    args = p.parse_args(argv)
    result = run(args)
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
