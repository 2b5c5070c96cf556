"""Live updates over Server-Sent Events: a waiter's stream (current state first, then
position moves, the grant with its hold, impossible) and the live seat map, within a
second, with the change made by another Engine or another service process
(the news travels through Redis pub/sub, never through process memory)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from boxoffice.api.app import create_app
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH
from tests.support.services import ROOT, free_port
from tests.waitlist.test_waitlist import book_in_redis, customer, fill, small_show

PROMPT_S = 1.0  # the contract: every change within a second


class EventStream:
    """Reads one SSE stream: `next()` answers the next event's data (keepalives skipped)."""

    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next(self, timeout_s: float = PROMPT_S) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            async for line in self.lines:
                if line.startswith("data: "):
                    return orjson.loads(line[6:])  # type: ignore[no-any-return]
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), timeout_s)


@contextlib.asynccontextmanager
async def sse(base_url: str, path: str) -> AsyncIterator[EventStream]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http, http.stream("GET", path) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        yield EventStream(answer.aiter_lines())


@contextlib.asynccontextmanager
async def serve(ctx: Engine) -> AsyncIterator[str]:
    """This test's app on a real socket (httpx's in-process transport cannot stream)."""
    ctx.events.start()
    await asyncio.wait_for(ctx.events.connected.wait(), 5)
    port = free_port()
    config = uvicorn.Config(create_app(ctx.settings, engine=ctx), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def other_process_context(settings: Settings) -> AsyncIterator[Engine]:
    """A second Engine on the same Redis and database: what another service process
    would hold (its own connections, its own event hub)."""
    other = await open_engine(settings, background=False)
    try:
        yield other
    finally:
        await other.close()


async def timed(change: Any) -> float:
    began = time.monotonic()
    await change
    return began


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_waiter_hears_its_position_move_and_its_grant_within_a_second(ctx: Engine) -> None:
    show = await small_show(ctx)
    (one_seat,) = await fill(ctx, show, [show.ref.seat_ids[:1]])
    ahead = await ctx.waitlist.join(show.show_id, customer(), 1, None)
    me = await ctx.waitlist.join(show.show_id, customer(), 1, None)
    async with serve(ctx) as url, other_process_context(ctx.settings) as other, \
            sse(url, f"/v1/waitlist/{me.entry_id}/events") as events:
        first = await events.next()
        assert first["status"] == "waiting" and first["position"] == 2 and first["entry_id"] == me.entry_id
        assert first["eta_s"] is not None

        began = await timed(other.waitlist.leave(ahead.entry_id))
        moved = await events.next()
        assert moved["status"] == "waiting" and moved["position"] == 1
        assert time.monotonic() - began < PROMPT_S

        began = await timed(other.holds.release(one_seat.hold_id))
        granted = await events.next()
        while granted["status"] == "waiting":  # an eta update may come first
            granted = await events.next()
        assert time.monotonic() - began < PROMPT_S
        assert granted["status"] == "granted" and granted["position"] is None
        assert granted["hold"]["seats"] == show.ref.seat_ids[:1] and granted["hold"]["status"] == "active"
        assert granted["hold"]["ttl_s"] == ctx.settings.hold_ttl_s


async def test_a_waiter_hears_it_became_impossible(ctx: Engine) -> None:
    show = await small_show(ctx)
    vip = show.seats("vip")
    await fill(ctx, show)
    me = await ctx.waitlist.join(show.show_id, customer(), 2, "vip")
    async with serve(ctx) as url, other_process_context(ctx.settings) as other, \
            sse(url, f"/v1/waitlist/{me.entry_id}/events") as events:
        assert (await events.next())["status"] == "waiting"
        began = await timed(book_in_redis(other, show.show_id, vip[1:]))
        event = await events.next()
        assert time.monotonic() - began < PROMPT_S
        assert event["status"] == "impossible" and event["hold"] is None


async def test_a_reconnecting_waiter_gets_the_current_state_first(ctx: Engine) -> None:
    show = await small_show(ctx)
    (one_seat,) = await fill(ctx, show, [show.ref.seat_ids[:1]])
    me = await ctx.waitlist.join(show.show_id, customer(), 1, None)
    async with serve(ctx) as url:
        async with sse(url, f"/v1/waitlist/{me.entry_id}/events") as events:
            assert (await events.next())["status"] == "waiting"
        await ctx.holds.release(one_seat.hold_id)  # while nobody listens
        async with sse(url, f"/v1/waitlist/{me.entry_id}/events") as events:
            again = await events.next()
            assert again["status"] == "granted" and again["hold"]["seats"] == show.ref.seat_ids[:1]


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_the_live_seat_map_sends_the_whole_map_then_changes_within_a_second(ctx: Engine) -> None:
    show = await small_show(ctx)
    seats = show.ref.seat_ids
    async with serve(ctx) as url, other_process_context(ctx.settings) as other, \
            sse(url, f"/v1/shows/{show.show_id}/seats/events") as events:
        full = await events.next()
        assert full["show_id"] == str(show.show_id) and len(full["seats"]) == len(seats)
        assert full["counts"] == {"available": len(seats), "held": 0, "booked": 0}

        began = time.monotonic()
        hold = await other.holds.hold(show.show_id, seats[:2], customer())
        delta = await events.next()
        assert time.monotonic() - began < PROMPT_S
        assert sorted(delta["seats"], key=lambda s: s["id"]) == [{"id": s, "status": "held"} for s in sorted(seats[:2])]
        assert delta["counts"] == {"available": len(seats) - 2, "held": 2, "booked": 0}

        # A waiter needing three seats keeps the two that come free: they stay held on the map.
        rest = seats[2:]
        for i in range(0, len(rest), 10):
            await other.holds.hold(show.show_id, rest[i:i + 10], customer())
        while (await events.next())["counts"]["available"] > 0:
            pass
        waiter = await other.waitlist.join(show.show_id, customer(), 3, None)
        await other.holds.release(hold.hold_id)
        # (the next event is a sale made after the release: the release changed nothing shown)
        await book_in_redis(other, show.show_id, seats[-1:])
        sold = await events.next()
        assert sold["seats"] == [{"id": seats[-1], "status": "booked"}]
        # ...and when the waiter leaves they are available again, and the map says so.
        began = time.monotonic()
        await other.waitlist.leave(waiter.entry_id)
        freed = await events.next()
        assert time.monotonic() - began < PROMPT_S
        assert sorted(s["id"] for s in freed["seats"]) == sorted(seats[:2])
        assert {s["status"] for s in freed["seats"]} == {"available"}
        assert freed["counts"] == {"available": 2, "held": len(seats) - 3, "booked": 1}


async def test_a_stream_served_by_another_process_hears_a_change_made_here(ctx: Engine, database_url: str) -> None:
    """Two service processes: a uvicorn subprocess serves the stream, this process changes."""
    show = await small_show(ctx)
    (one_seat,) = await fill(ctx, show, [show.ref.seat_ids[:1]])
    me = await ctx.waitlist.join(show.show_id, customer(), 1, None)
    port = free_port()
    env = {**os.environ, "REDIS_URL": ctx.settings.redis_url or "", "DATABASE_URL": database_url,
           "BOXOFFICE_KEY_PREFIX": ctx.settings.key_prefix, "BOXOFFICE_RATE_HOLDS_PER_MIN": "0",
           "BOXOFFICE_RATE_IP_PER_MIN": "0", "BOXOFFICE_RECONCILE_INTERVAL_S": "3600"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "boxoffice.api.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(base_url=url) as http:
            while True:
                assert process.returncode is None, "the second service process exited"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/healthz")).status_code == 200:
                        break
                assert time.monotonic() < deadline, "the second service process did not come up"
                await asyncio.sleep(0.1)
        async with sse(url, f"/v1/waitlist/{me.entry_id}/events") as events:
            assert (await events.next())["status"] == "waiting"
            began = await timed(ctx.holds.release(one_seat.hold_id))
            event = await events.next()
            while event["status"] == "waiting":
                event = await events.next()
            assert time.monotonic() - began < PROMPT_S
            assert event["status"] == "granted" and event["hold"]["seats"] == show.ref.seat_ids[:1]
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def test_change_messages_parse_with_and_without_their_later_fields() -> None:
    from boxoffice.engine.redis.pubsub import parse_message

    change = parse_message("bo:show:{42}:changes", "1;A1=held,A2=available;*,vip;W42-a,W42-b")
    assert change is not None and change.show_id == 42 and change.queue_changed
    assert change.seats == {"A1": "held", "A2": "available"}
    assert change.waited == {"*", "vip"} and change.ended == {"W42-a", "W42-b"}
    older = parse_message("bo:show:{7}:changes", "0;B3=booked")
    assert older is not None and older.seats == {"B3": "booked"} and not older.waited and not older.ended
    assert parse_message("bo:show:nobrace:changes", "1;") is None
