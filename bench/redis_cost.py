"""Redis's own cost of the hot scripts, counted, not timed: a private redis-server runs under
callgrind, the engine sends N one-seat holds (and their releases) on a fresh 2,000-seat show,
and the server's instructions per call are read from callgrind's counters, which only count
while the calls run. Instructions do not depend on what else the machine is doing, so two
versions of the scripts compare on a busy machine too.

    python -m bench.redis_cost --database-url postgresql://.../boxoffice_bench [--calls 500]

The database must be migrated (the bench makes its own hall and show, bench/catalog.py)."""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.catalog import create_spike_show
from bench.loadgen import client_address
from bench.sqldb import BenchDb
from boxoffice.engine.redis.gateway import RateLimits
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import open_engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def inclusive_instructions(dump: Path, function: str) -> int:
    """A function's inclusive instructions in one callgrind dump (callgrind_annotate)."""
    listing = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
                             capture_output=True, text=True, check=True).stdout
    line = re.search(rf"^\s*([\d,]+) .*:{re.escape(function)}\b", listing, re.MULTILINE)
    return int(line.group(1).replace(",", "")) if line else 0


class CountedRedis:
    """redis-server under callgrind, counting nothing until `counting(True)`."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.out = directory / "callgrind.out"
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}",
             "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server under callgrind did not start") from None
                time.sleep(0.2)

    def counting(self, on: bool) -> None:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(self.process.pid)],
                       check=True, capture_output=True)

    def instructions(self) -> int:
        """Instructions counted so far (dumps and zeroes the counters)."""
        return self.instructions_within("")[0]

    def instructions_within(self, function: str) -> tuple[int, int]:
        """Instructions counted so far, and those inside `function` (inclusive: what it
        called too; "": not asked, 0); dumps and zeroes the counters. With "fcallCommand",
        the second is what FCALL's `usec_per_call` times: the command's own execution, not
        reading and parsing it, writing its reply or the event loop around it."""
        subprocess.run(["callgrind_control", "-d", str(self.process.pid)], check=True, capture_output=True)
        total = inside = 0
        for dump in self.out.parent.glob(self.out.name + "*"):
            match = re.search(r"^totals:\s*(\d+)", dump.read_text(errors="replace"), re.MULTILINE)
            if match:
                total += int(match.group(1))
                if function and int(match.group(1)):
                    inside += inclusive_instructions(dump, function)
            dump.unlink()
        return total, inside

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


async def measure(database_url: str, redis: CountedRedis, calls: int) -> dict[str, float]:
    db = BenchDb(database_url)
    try:
        show = create_spike_show(db)
    finally:
        db.close()
    # The production defaults: each hold counted against the abuse limits, as the API counts it.
    settings = Settings(redis_url=f"redis://127.0.0.1:{redis.port}/0", database_url=database_url)
    ctx = await open_engine(settings, background=False)
    try:
        plan = await ctx.catalog.hall_plan(show.hall_id)
        seats = [seat.id for seat in plan.seats][:calls]
        await ctx.holds.seat_statuses(show.show_id)  # loaded and indexed: not part of a hold
        redis.instructions()
        redis.counting(True)
        holds = [await ctx.holds.hold(show.show_id, [seat], f"c{i}@example.org", limits=RateLimits(
                     settings.rate_limit_holds_per_min, settings.rate_limit_ip_per_min, client_address(i)))
                 for i, seat in enumerate(seats)]
        redis.counting(False)
        per_hold = redis.instructions() / len(holds)
        redis.counting(True)
        for hold in holds:
            await ctx.holds.release(hold.hold_id)
        redis.counting(False)
        per_release = redis.instructions() / len(holds)
    finally:
        await ctx.close()
    return {"hold": per_hold, "release": per_release}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind (callgrind) is needed: apt-get install valgrind")
    directory = Path(tempfile.mkdtemp(prefix="boxoffice-redis-cost-"))
    redis = CountedRedis(directory)
    try:
        result = asyncio.run(measure(args.database_url, redis, args.calls))
    finally:
        redis.stop()
        shutil.rmtree(directory, ignore_errors=True)
    for name, value in result.items():
        print(f"{name:8} {value / 1000:8.1f}k instructions of Redis a call ({args.calls} calls)")


if __name__ == "__main__":
    main()
