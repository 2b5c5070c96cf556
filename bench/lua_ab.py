"""Which of two versions of lua/ holds for less Redis time: both in one server, call by call.

    .venv/bin/python -m bench.lua_ab OTHER/boxoffice/lua            # against this checkout's
    .venv/bin/python -m bench.lua_ab OTHER/boxoffice/lua --base THAT/boxoffice/lua --rounds 40

Each tree's scripts are loaded as their own library into one redis-server (a library's
name carries a hash of its code: engine/redis/scripts.py), each on its own fresh shows of
the demo's 2,000-seat hall (bench/hold_cost.py's), 4 seats a hold on seats free until
then. The holds of the two alternate call by call (A B, then B A, ...), and each FCALL's
own duration is what it adds to FCALL's time in INFO commandstats (read before and after
each call), so whatever load the machine has moves both sides alike: two copies of one
tree read here 1.00 within 0.01 (median of 2,000 holds a side). bench/hold_cost.py reads
Redis's stats once per series of 25 holds instead, which leaves the caches warm but lets the
machine's load move within a series. (SLOWLOG would time each call too, but Redis 7.0 logs every command a
script calls as well, which costs the side with more calls more.) The ratio is other ÷ base
(below 1: the other tree's hold costs Redis less). One caveat: Redis 7.0 runs every library
in one Lua state, so the two sides share its garbage collection, which every allocation
feeds; a change that allocates less reads a little smaller here than it is.

For where a hold's time goes, give it copies of lua/ that stop the hold at one step or
another (a `do return finish({1, 0, NOW}) end` in hold_seats-1.lua): each copy's ratio
is the share of the hold up to that step (bench/RESULTS.md has such a table)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bench.best_available import Bench
from bench.hold_cost import SEATS, private_redis, wait_up
from boxoffice.engine.redis.keys import SHOW_KEY_NAMES, Keys
from boxoffice.engine.redis.scripts import LUA_DIR, Library, load_library

HOLDS_PER_SHOW = 100  # 400 of the 2,000 seats


class EveryShowKey(Keys):
    """Key names for a tree from before the scripts took the meta hash alone: their KEYS
    were every key of the show (lua/includes/context.lua lists them)."""

    def script_keys(self, show_id: int) -> list[str]:
        return self.show_keys(show_id)


async def sides(client: aioredis.Redis, trees: list[Path | Any]) -> list[tuple[Bench, Library]]:
    out = []
    for tree in trees:
        library = load_library(tree)
        bench = Bench(client, f"luaab{uuid.uuid4().hex[:8]}")
        bench.gateway.runner.library = library
        bench.gateway.runner.scripts = library.scripts
        if {script.key_count for script in library.scripts.values()} == {len(SHOW_KEY_NAMES)}:
            bench.gateway.keys = EveryShowKey(bench.gateway.keys.prefix)
        await client.function_load(library.source, replace=True)
        out.append((bench, library))
    return out


async def fcall_usec(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_fcall", {}).get("usec", 0))


async def one_round(client: aioredis.Redis, both: list[tuple[Bench, Library]]) -> list[list[int]]:
    """Holds of each side on a fresh show, alternating; each side's FCALL durations (µs)."""
    shows = []
    for bench, _ in both:
        show_id, free = await bench.show(0.0, warm=False)
        # As the service has it once a seat map was read: numbered in plan order.
        await bench.gateway.index_seats(show_id, [s.id for s in bench.plan.seats], None)
        shows.append((show_id, sorted(free)))
    durations: list[list[int]] = [[], []]
    for i in range(HOLDS_PER_SHOW):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            bench, _ = both[side]
            show_id, seats = shows[side]
            before = await fcall_usec(client)
            await bench.explicit(show_id, seats[i * SEATS:(i + 1) * SEATS])
            durations[side].append(await fcall_usec(client) - before)
    return durations


async def run(url: str, base: Path | Any, other: Path | Any, rounds: int) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, decode_responses=False)
    await wait_up(client)
    both = await sides(client, [base, other])
    durations: list[list[int]] = [[], []]
    try:
        for _ in range(rounds):
            for side, got in enumerate(await one_round(client, both)):
                durations[side] += got
    finally:
        for bench, library in both:
            with contextlib.suppress(ResponseError):  # the same tree twice: one library
                await client.function_delete(library.name)
            keys = [k async for k in client.scan_iter(f"{bench.gateway.keys.prefix}:*", count=1000)]
            for i in range(0, len(keys), 500):
                await client.delete(*keys[i:i + 500])
        await client.aclose()
    medians = [statistics.median(d) for d in durations]
    means = [statistics.mean(d) for d in durations]
    return {"holds_per_side": len(durations[0]), "seats": SEATS,
            "base_median_us": medians[0], "other_median_us": medians[1],
            "base_mean_us": round(means[0], 1), "other_mean_us": round(means[1], 1),
            "ratio_median": round(medians[1] / medians[0], 3), "ratio_mean": round(means[1] / means[0], 3)}


def measure(base: Path | Any, other: Path | Any, rounds: int, redis_url: str | None = None) -> dict[str, Any]:
    if redis_url:
        return asyncio.run(run(redis_url, base, other, rounds))
    with private_redis() as url:
        return asyncio.run(run(url, base, other, rounds))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("other", type=Path, help="the lua/ directory to compare (its includes/ beside its scripts)")
    p.add_argument("--base", type=Path, default=None, help="the lua/ to compare against (default: this checkout's)")
    p.add_argument("--rounds", type=int, default=20, help=f"rounds of {HOLDS_PER_SHOW} holds a side")
    p.add_argument("--redis-url", default=None, help="a Redis no one else calls FCALL on; "
                   "default: a redis-server started for the run")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    row = measure(args.base or LUA_DIR, args.other, args.rounds, args.redis_url)
    print(f"hold, median of {row['holds_per_side']} a side: base {row['base_median_us']} us, other "
          f"{row['other_median_us']} us: other / base = {row['ratio_median']} (means: {row['ratio_mean']})")
    if args.out:
        args.out.write_bytes(orjson.dumps(row, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
