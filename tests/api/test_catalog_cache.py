"""The catalog's cache (engine/catalog.py, TtlCache): a value asked for fresh, or after the
key was forgotten, never comes from a load that began before (a show closed while its
page was being read must not read open again)."""

from __future__ import annotations

import asyncio

import pytest

from boxoffice.engine.catalog import TtlCache


async def test_a_fresh_read_does_not_join_a_load_that_began_before_it() -> None:
    cache: TtlCache[str] = TtlCache(60.0)
    database = {"status": "open"}
    reading, release_old = asyncio.Event(), asyncio.Event()

    async def slow_old_read() -> str:
        value = database["status"]  # read before the change...
        reading.set()
        await release_old.wait()  # ...answered after it
        return value

    async def read() -> str:
        return database["status"]

    old = asyncio.create_task(cache.get("show", slow_old_read))
    await reading.wait()  # the old load is in flight
    database["status"] = "closed"
    # (bounded: joined to the old load, it would wait for it)
    assert await asyncio.wait_for(cache.get("show", read, fresh=True), 5) == "closed"
    release_old.set()
    assert await old == "open"  # its own caller gets what it read...
    assert await cache.get("show", read) == "closed"  # ...but the cache keeps the newer value


@pytest.mark.parametrize("how", ["forget", "clear"])
async def test_a_load_that_began_before_a_forget_or_a_clear_is_not_kept(how: str) -> None:
    cache: TtlCache[str] = TtlCache(60.0)
    reading, release = asyncio.Event(), asyncio.Event()
    database = {"value": "before"}

    async def slow() -> str:
        value = database["value"]
        reading.set()
        await release.wait()
        return value

    async def read() -> str:
        return database["value"]

    old = asyncio.create_task(cache.get("key", slow))
    await reading.wait()
    database["value"] = "after"
    if how == "forget":
        cache.forget("key")
    else:
        cache.clear()
    assert await asyncio.wait_for(cache.get("key", read), 5) == "after"  # not joined to the old load
    release.set()
    assert await old == "before"
    assert await cache.get("key", read) == "after"  # and the old value was not stored


async def test_concurrent_misses_still_share_one_load() -> None:
    cache: TtlCache[int] = TtlCache(60.0)
    loads = 0
    gate = asyncio.Event()

    async def load() -> int:
        nonlocal loads
        loads += 1
        await gate.wait()
        return 7

    readers = [asyncio.create_task(cache.get("k", load)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*readers) == [7] * 5 and loads == 1
