"""bench/best_available.py runs on whatever Redis it is given (bench/ceilings.py gives it the
machine's): it leaves none of its keys behind."""

from __future__ import annotations

import asyncio

import redis

from bench import best_available
from tests.support.services import RedisServer


def test_the_bench_leaves_no_key_behind() -> None:
    server = RedisServer.start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("someone-else:key", "kept")
        rows = asyncio.run(best_available.run(server.url, 100))
        assert {r["name"] for r in rows} >= {"best available together, 4 seats, 2,000-seat hall empty"}
        assert all(r["ratio"] is None or r["ratio"] > 0 for r in rows)
        assert client.keys("*") == [b"someone-else:key"]
        client.close()
    finally:
        server.stop()
