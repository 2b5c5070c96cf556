"""What a hold costs Redis, against a minimal all-or-nothing hold of the same seats, and
where our hold's time goes, inner call by inner call.

    .venv/bin/python -m bench.hold_cost            # starts a redis-server of its own
    .venv/bin/python -m bench.hold_cost --redis-url redis://127.0.0.1:6390/0   # one of yours: RESETSTAT

Both sides are Redis functions called by FCALL one at a time, on fresh shows of the
2,000-seat hall the demo seed draws, SEATS seats a hold, each on seats free until then.
The minimal hold (MINIMAL below) reads the seats with one HMGET, and when all are free
writes them with one HSET and the hold's deadline with one ZADD: what any hold must do to
be all-or-nothing and to end some day. Ours is lua/hold_seats-1.lua as the service calls
it. The measure is Redis's own `usec_per_call` of FCALL in INFO commandstats (reset
before each series), so the client, the network and Python do not count. The two sides
alternate in series of CHUNK holds (A B, then B A), a few milliseconds each, and the ratio
is the median of the ratios of neighbouring series: on a shared two-core machine the load
changes from one second to the next, and series of a whole round (400 holds a side, as
this bench first ran) read ratios from 0.38 to 0.85 in one run. The same commandstats
count every command the functions called, so each inner command's calls and µs per hold
come from the same series; what remains of a call's time is Lua's own (the calls into
Redis, building tables and strings).

The row for bench/ceilings.py: `redis time per hold`, ratio = minimal µs ÷ ours (higher
is better; target 0.67, i.e. ours at most 1.5 times the minimal).

`--instructions` runs the server under callgrind and counts instructions, which do not move
with the machine's load. Besides the whole server's instructions per call it gives the
instructions inside FCALL's own execution (`fcallCommand`, inclusive: what `usec_per_call`
times) and the fixed part around a call (reading and parsing the command, writing the
reply, the event loop), measured on a function that does nothing, called with our hold's
arguments and with the minimal's. Instructions are not time: a hold's Lua (the
interpreter's dispatch, its allocations) runs fewer instructions a microsecond than the
minimal's listpack scans, so the instruction ratio reads higher than the µs one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from bench.best_available import Bench
from bench.redis_cost import CountedRedis, free_port
from boxoffice.engine.redis.gateway import NO_LIMITS

SEATS = 4
ROUNDS = 5
# Holds a side between two readings of Redis's stats: the two sides alternate chunk by chunk
# (A B, then B A), each chunk a few milliseconds, so the machine's load moves both alike.
CHUNK = 25
TARGET = 0.67
NAME = "redis time per hold"
MINIMAL_LIBRARY = "bench_minimal_hold"
MINIMAL = f"""#!lua name={MINIMAL_LIBRARY}
-- KEYS[1] seats hash, KEYS[2] deadlines zset; ARGV[1] hold id, ARGV[2] deadline (ms),
-- ARGV[3..] seats. Answers 1 (held) or 0 (a seat was taken: nothing held).
-- A function that does nothing and answers what ours answers when it holds (lua/includes/
-- settle.lua, finish): what a call costs Redis around the function, by argument shape.
redis.register_function('noop_hold', function(keys, argv) return {{1, 0, 0, {{}}, {{}}}} end)
redis.register_function('minimal_hold', function(keys, argv)
  local seats = {{}}
  for i = 3, #argv do seats[#seats + 1] = argv[i] end
  local taken = redis.call('HMGET', keys[1], unpack(seats))
  for i = 1, #seats do
    if taken[i] then return 0 end
  end
  local pairs_ = {{}}
  for _, seat in ipairs(seats) do
    pairs_[#pairs_ + 1] = seat
    pairs_[#pairs_ + 1] = 'h:' .. argv[1]
  end
  redis.call('HSET', keys[1], unpack(pairs_))
  redis.call('ZADD', keys[2], argv[2], argv[1])
  return 1
end)
"""


@contextlib.contextmanager
def private_redis() -> Any:
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


async def wait_up(client: aioredis.Redis) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            await client.ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def indexed_show(bench: Bench) -> tuple[int, set[str]]:
    """A fresh show as the service has it once its seat map was read: with its status map
    (lua/includes/statusmap.lua), which every hold then keeps."""
    show_id, free = await bench.show(0.0, warm=False)
    await bench.gateway.index_seats(show_id, [s.id for s in bench.plan.seats], None)
    return show_id, free


async def series(client: aioredis.Redis, calls: Any, counted: CountedRedis | None = None) -> dict[str, Any]:
    """Runs `calls` and answers FCALL's µs per call and each inner command's calls and µs
    per FCALL, from INFO commandstats; under callgrind (`counted`) Redis's instructions too."""
    await client.config_resetstat()
    if counted is not None:
        counted.instructions()
        counted.counting(True)
    await calls()
    if counted is not None:
        counted.counting(False)
        total, executing = counted.instructions_within("fcallCommand")
    stats = await client.info("commandstats")
    fcall = stats.get("cmdstat_fcall", {"calls": 0, "usec": 0})
    n = max(1, int(fcall["calls"]))
    inner = {name.removeprefix("cmdstat_"): {"calls": round(int(v["calls"]) / n, 2),
                                            "usec": round(int(v["usec"]) / n, 2)}
             for name, v in stats.items()
             if name not in ("cmdstat_fcall", "cmdstat_config|resetstat", "cmdstat_info") and int(v["calls"])}
    result = {"usec_per_call": int(fcall["usec"]) / n, "calls": n, "inner": inner}
    if counted is not None:
        result["instructions"] = total / n
        result["executing_instructions"] = executing / n
    return result


def summed(readings: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's readings (series) as one: FCALL's µs per call and each inner command's
    calls and µs per FCALL over them all."""
    calls = sum(r["calls"] for r in readings)
    inner: dict[str, dict[str, float]] = {}
    for r in readings:
        for name, v in r["inner"].items():
            total = inner.setdefault(name, {"calls": 0.0, "usec": 0.0})
            total["calls"] += v["calls"] * r["calls"]
            total["usec"] += v["usec"] * r["calls"]
    return {"usec_per_call": sum(r["usec_per_call"] * r["calls"] for r in readings) / calls, "calls": calls,
            "inner": {name: {"calls": round(v["calls"] / calls, 2), "usec": round(v["usec"] / calls, 2)}
                      for name, v in inner.items()}}


async def run(url: str, holds: int, counted: CountedRedis | None = None) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    await wait_up(client)
    prefix = f"holdcost{uuid.uuid4().hex[:8]}"
    bench = Bench(client, prefix)
    await client.function_load(MINIMAL, replace=True)
    per_show = 100  # 400 of the 2,000 seats, each hold on seats free until then
    shows = max(1, holds // per_show // ROUNDS)
    # Per round and side: the readings of its chunks, in the order they ran.
    rounds: list[dict[str, list[dict[str, Any]]]] = []
    try:
        for _ in range(ROUNDS):
            ours_shows = [await indexed_show(bench) for _ in range(shows)]
            minimal_shows = [await bench.show(0.0, warm=False) for _ in range(shows)]
            ours_holds = [(show_id, sorted(free)[i * SEATS:(i + 1) * SEATS])
                          for show_id, free in ours_shows for i in range(per_show)]
            minimal_holds = [(bench.gateway.keys.show_keys(show_id), sorted(free)[i * SEATS:(i + 1) * SEATS])
                             for show_id, free in minimal_shows for i in range(per_show)]

            async def ours(chunk: list[tuple[int, list[str]]]) -> None:
                for show_id, seats in chunk:
                    await bench.explicit(show_id, seats)

            async def minimal(chunk: list[tuple[list[str], list[str]]]) -> None:
                for keys, seats in chunk:
                    held = await client.fcall("minimal_hold", 2, keys[2], keys[3], f"H{uuid.uuid4().hex}",
                                              4_102_444_800_000, *seats)
                    assert held == 1

            readings: dict[str, list[dict[str, Any]]] = {"ours": [], "minimal": []}
            for number, first in enumerate(range(0, len(ours_holds), CHUNK)):
                ours_chunk, minimal_chunk = ours_holds[first:first + CHUNK], minimal_holds[first:first + CHUNK]
                pair = [("ours", lambda chunk=ours_chunk: ours(chunk)),
                        ("minimal", lambda chunk=minimal_chunk: minimal(chunk))]
                for side, calls in (pair if number % 2 == 0 else pair[::-1]):
                    readings[side].append(await series(client, calls, counted))
            rounds.append(readings)
        if counted is not None:
            fixed = await fixed_parts(client, bench, ours_shows[0], shows * per_show, counted)
    finally:
        with contextlib.suppress(Exception):
            await client.function_delete(MINIMAL_LIBRARY)
        keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i:i + 500])
        await client.aclose()

    def chunk_ratios(readings: dict[str, list[dict[str, Any]]]) -> list[float]:
        return [m["usec_per_call"] / o["usec_per_call"] for o, m in zip(readings["ours"], readings["minimal"],
                                                                        strict=True)]

    ratio = round(statistics.median(r for readings in rounds for r in chunk_ratios(readings)), 2)
    ours_all = summed([r for readings in rounds for r in readings["ours"]])
    minimal_all = summed([r for readings in rounds for r in readings["minimal"]])
    return {"name": NAME, "ratio": ratio, "target": TARGET, "meets_target": ratio >= TARGET,
            "better": "higher", "seats": SEATS, "holds_per_series": CHUNK,
            "chunks": sum(len(readings["ours"]) for readings in rounds),
            "usec_per_call": round(statistics.median(r["usec_per_call"] for readings in rounds
                                                     for r in readings["ours"]), 1),
            "minimal_usec_per_call": round(statistics.median(r["usec_per_call"] for readings in rounds
                                                             for r in readings["minimal"]), 1),
            "round_ratios": sorted(round(statistics.median(chunk_ratios(readings)), 2) for readings in rounds),
            "inner_per_hold": ours_all["inner"], "minimal_inner_per_hold": minimal_all["inner"],
            **({"instructions": round(statistics.median(r["instructions"] for readings in rounds
                                                        for r in readings["ours"])),
                "minimal_instructions": round(statistics.median(r["instructions"] for readings in rounds
                                                                for r in readings["minimal"])),
                "executing_instructions": round(statistics.median(r["executing_instructions"]
                                                                  for readings in rounds for r in readings["ours"])),
                "minimal_executing_instructions": round(statistics.median(
                    r["executing_instructions"] for readings in rounds for r in readings["minimal"])),
                **fixed}
               if counted is not None else {})}


async def fixed_parts(client: aioredis.Redis, bench: Bench, show: tuple[int, set[str]], calls: int,
                      counted: CountedRedis) -> dict[str, float]:
    """What a call costs Redis outside the function's execution (reading and parsing the
    command, writing the reply, the event loop: not in `usec_per_call`), measured on a
    function that does nothing, called with our hold's arguments and with the minimal's:
    its instructions in all, less those inside FCALL's own execution."""
    show_id, free = show
    keys = bench.gateway.keys.show_keys(show_id)
    base = bench.gateway.keys.show_base(show_id)
    seats = sorted(free)[:SEATS]
    shapes = {"ours": lambda: client.fcall("noop_hold", 1, keys[0], base, "", bench.gateway.hold_ttl_ms,
                                           f"H{uuid.uuid4().hex}", f"c{uuid.uuid4().hex}", 10, NO_LIMITS.arg(),
                                           "", *seats),
              "minimal": lambda: client.fcall("noop_hold", 2, keys[2], keys[3], f"H{uuid.uuid4().hex}",
                                              4_102_444_800_000, *seats)}
    out = {}
    for side, call in shapes.items():
        counted.instructions()
        counted.counting(True)
        for _ in range(calls):
            await call()
        counted.counting(False)
        total, executing = counted.instructions_within("fcallCommand")
        out[f"{side}_fixed_instructions"] = round((total - executing) / calls)
        out[f"{side}_noop_executing_instructions"] = round(executing / calls)
    return out


def measure(redis_url: str | None, holds: int) -> dict[str, Any]:
    """The row, on `redis_url` (CONFIG RESETSTAT is sent) or on a redis-server of its own."""
    if redis_url:
        return asyncio.run(run(redis_url, holds))
    with private_redis() as url:
        return asyncio.run(run(url, holds))


def report(row: dict[str, Any]) -> str:
    lines = [f"{row['name']}: minimal {row['minimal_usec_per_call']} us / ours {row['usec_per_call']} us = "
             f"{row['ratio']} (target {row['target']}; rounds {row['round_ratios']})"
             f"{'' if row['meets_target'] else '  BELOW TARGET'}",
             f"  inner commands per hold of {row['seats']} seats (calls, us):"]
    inner = sorted(row["inner_per_hold"].items(), key=lambda kv: -kv[1]["usec"])
    total = sum(v["usec"] for _, v in inner)
    for name, v in inner:
        lines.append(f"    {name:18} {v['calls']:5.2f} {v['usec']:6.2f}")
    lines.append(f"    {'(inner, all)':18} {sum(v['calls'] for _, v in inner):5.2f} {total:6.2f}; "
                 f"Lua and calls into Redis {row['usec_per_call'] - total:.2f}")
    minimal = sum(v["usec"] for name, v in row["minimal_inner_per_hold"].items() if name != "config|resetstat")
    lines.append(f"  minimal: inner commands {minimal:.2f} us, Lua and calls into Redis "
                 f"{row['minimal_usec_per_call'] - minimal:.2f}")
    if "instructions" in row:
        ours, minimal_count = row["instructions"], row["minimal_instructions"]
        lines.append(f"  Redis instructions per hold (callgrind): ours {ours / 1000:.1f}k, minimal "
                     f"{minimal_count / 1000:.1f}k = {minimal_count / ours:.2f}")
        ours_x, minimal_x = row["executing_instructions"], row["minimal_executing_instructions"]
        lines.append(f"    FCALL's execution alone (what usec_per_call times): ours {ours_x / 1000:.1f}k, minimal "
                     f"{minimal_x / 1000:.1f}k = {minimal_x / ours_x:.2f}")
        ours_fixed, minimal_fixed = row["ours_fixed_instructions"], row["minimal_fixed_instructions"]
        lines.append(f"    fixed part around a call (a no-op function, same arguments): ours {ours_fixed / 1000:.1f}k, "
                     f"minimal {minimal_fixed / 1000:.1f}k; total less fixed: "
                     f"{(minimal_count - minimal_fixed) / (ours - ours_fixed):.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", default=None, help="a Redis of its own (CONFIG RESETSTAT is sent); "
                   "default: a redis-server started for the run")
    p.add_argument("--holds", type=int, default=2000, help="holds per side and round is this / rounds")
    p.add_argument("--instructions", action="store_true",
                   help="also count Redis's instructions (a redis-server of its own under callgrind: slow, "
                        "but the counts do not move with the machine's load)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.instructions:
        directory = Path(tempfile.mkdtemp(prefix="boxoffice-hold-cost-"))
        counted = CountedRedis(directory)
        try:
            row = asyncio.run(run(f"redis://127.0.0.1:{counted.port}/0", args.holds, counted))
        finally:
            counted.stop()
            shutil.rmtree(directory, ignore_errors=True)
    else:
        row = measure(args.redis_url, args.holds)
    print(report(row))
    if args.out:
        args.out.write_bytes(orjson.dumps(row, option=orjson.OPT_INDENT_2))
    return 0 if row["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
