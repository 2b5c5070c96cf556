"""Exactly once under a stalled Redis: a script call that outlives its socket timeout still
runs once Redis wakes up, and its answer is lost. Nothing may then happen twice: the client
library sends no call again (no blind retry), the engine answers the timeout as a 503, and
the caller's retry of the same request (same Idempotency-Key, same hold, same confirm)
meets the first run's outcome.

A connection of the test's own sends DEBUG SLEEP to the server (or to the cluster node
that owns the show) just before the engine sends one named script, and the test waits
until that server no longer answers a PING: the engine's call then queues behind the
sleep, times out, and runs when the sleep ends. Each case checks the books afterwards:
every taken seat belongs to a live hold that lists it, the counts agree, and every
charge has exactly one booking or refund."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from boxoffice.engine.errors import SeatsUnavailable, Unavailable
from boxoffice.engine.redis import clients as redis_clients
from boxoffice.engine.statuses import HoldStatus
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import drop_prefix, settings_on_empty_sales
from tests.support.cluster import LocalCluster
from tests.support.sales import audit, eventually
from tests.support.seats import seat_marks
from tests.support.services import RedisServer
from tests.support.shows import ShowRef, pick_show

SOCKET_TIMEOUT_S = 0.4
STALL_S = 1.2
STALL_ERRORS = (RedisTimeoutError, RedisConnectionError)
KEY = "b6f1c0e2-3f9a-4c41-9d2e-7a51c8e4d0f3"  # a client's random key (a UUID)


@pytest.fixture(scope="module")
def stallable() -> Iterator[RedisServer]:
    server = RedisServer.start(None, "--enable-debug-command", "local")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster.start()
    yield local
    local.stop()


@pytest.fixture(params=["single", "cluster"])
async def ctx(request: pytest.FixtureRequest, database_url: str,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Engine]:
    """An engine whose Redis calls time out quickly, on one server (pipelining off: one call,
    one connection) or on the local cluster."""
    monkeypatch.setattr(redis_clients, "REDIS_SOCKET_TIMEOUT_S", SOCKET_TIMEOUT_S)
    if request.param == "single":
        url = request.getfixturevalue("stallable").url
        settings = settings_on_empty_sales(url, database_url, "eo", redis_autopipeline=False)
    else:
        url = request.getfixturevalue("cluster").url
        settings = settings_on_empty_sales(url, database_url, "eoc", redis_cluster=True)
    context = await open_engine(settings, background=False)
    yield context
    with contextlib.suppress(Exception):
        await drop_prefix(context)
    await context.close()


@pytest.fixture
async def show(ctx: Engine) -> ShowRef:
    """A show already in Redis: the stalled call is the one under test, not the show's load."""
    ref = await pick_show(ctx, min_seats=60)
    await ctx.holds.seat_statuses(ref.show_id)
    return ref


def node_of(ctx: Engine, show_id: int) -> tuple[str, int]:
    """Host and port of the server that runs the show's scripts."""
    if ctx.settings.redis_cluster:
        node = ctx.redis.get_node_from_key(ctx.keys.show_keys(show_id)[0])
        return node.host, int(node.port)
    return "127.0.0.1", int(ctx.settings.redis_url.rsplit(":", 1)[1].split("/")[0])


class Stall:
    """DEBUG SLEEP on the show's server, sent just before the engine's next call of `script`."""

    def __init__(self, ctx: Engine, show_id: int, script: str) -> None:
        self.ctx, self.show_id, self.script = ctx, show_id, script
        self.host, self.port = node_of(ctx, show_id)
        self.sleeping: asyncio.Task[Any] | None = None
        self._run = ctx.scripts.run

    async def __aenter__(self) -> Stall:
        async def run(name: str, keys: list[str], args: list[Any]) -> Any:
            if name == self.script and self.sleeping is None:
                await self._start()
            return await self._run(name, keys, args)

        self.ctx.scripts.run = run  # type: ignore[method-assign]
        return self

    async def _start(self) -> None:
        # No retries here either (redis-py retries a timed-out command by default).
        sleeper = aioredis.Redis(host=self.host, port=self.port, socket_timeout=STALL_S + 10, retry=no_retry())
        self.sleeping = asyncio.ensure_future(self._sleep(sleeper))
        probe = aioredis.Redis(host=self.host, port=self.port, socket_timeout=0.05, socket_connect_timeout=1,
                               retry=no_retry())
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:  # until the server is inside the sleep
                try:
                    await probe.ping()
                except RedisTimeoutError:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the server never stalled")
        finally:
            await probe.aclose()

    @staticmethod
    async def _sleep(client: aioredis.Redis) -> None:
        try:
            await client.execute_command("DEBUG", "SLEEP", STALL_S)
        finally:
            await client.aclose()

    async def __aexit__(self, *exc: object) -> None:
        self.ctx.scripts.run = self._run  # type: ignore[method-assign]
        assert self.sleeping is not None, f"{self.script} was never called"
        await self.sleeping  # the sleep is over: the stalled call has run by now
        await assert_seats_consistent(self.ctx, self.show_id)


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def stalled(ctx: Engine, show_id: int, script: str) -> Stall:
    return Stall(ctx, show_id, script)


async def assert_seats_consistent(ctx: Engine, show_id: int) -> None:
    """Every taken seat's hold is live and lists it; counts, customers and stats agree."""
    keys = ctx.keys.show_keys(show_id)
    meta, seats, customers, stats = (await ctx.redis.hgetall(keys[0]), await seat_marks(ctx.redis, ctx.keys, show_id),
                                     await ctx.redis.hgetall(keys[4]), await ctx.redis.hgetall(keys[7]))
    held_by: dict[str, int] = {}
    held = booked = 0
    for seat, mark in seats.items():
        if mark.startswith("b:"):
            booked += 1
            continue
        held += 1
        hold = await ctx.redis.hgetall(ctx.keys.hold(show_id, mark[2:]))
        assert hold.get("status") in ("active", "confirming"), (seat, mark, hold)
        assert seat in hold["seats"].split(","), f"seat {seat} is held by {mark} which does not list it"
    for hold_id in await ctx.redis.zrange(keys[3], 0, -1):
        hold = await ctx.redis.hgetall(ctx.keys.hold(show_id, hold_id))
        if hold.get("status") in ("active", "confirming"):
            held_by[hold["customer"]] = held_by.get(hold["customer"], 0) + len(hold["seats"].split(","))
    assert (int(stats["held"]), int(stats["booked"])) == (held, booked), stats
    assert int(stats["seats"]) == int(meta["seat_count"]) and "free" not in stats, stats
    assert {c: int(n) for c, n in customers.items()} == held_by


async def timed_out(call: Awaitable[Any]) -> BaseException:
    try:
        await call
    except (*STALL_ERRORS, Unavailable) as exc:
        return exc
    raise AssertionError("the stalled call answered: it should have timed out")


# -- holds, releases, joins --------------------------------------------------------------


async def test_a_hold_whose_answer_was_lost_is_the_retry_answer(ctx: Engine, show: ShowRef) -> None:
    seats = show.seat_ids[:2]
    async with stalled(ctx, show.show_id, "hold_seats"):
        await timed_out(ctx.holds.hold(show.show_id, seats, "ana@example.org", idempotency_key=KEY))
    # The first run held the seats; the retry with the same key answers that hold.
    again = await ctx.holds.hold(show.show_id, seats, "ana@example.org", idempotency_key=KEY)
    assert again.status is HoldStatus.ACTIVE and sorted(again.seats) == sorted(seats)
    held = await seat_marks(ctx.redis, ctx.keys, show.show_id)
    marks = {held.get(seat) for seat in seats}
    assert marks == {f"h:{again.hold_id}"}
    assert await ctx.redis.hget(ctx.keys.show_keys(show.show_id)[4], "ana@example.org") == "2"
    # The key names the hold for its customer only: another customer with it gets nothing.
    with pytest.raises(SeatsUnavailable):
        await ctx.holds.hold(show.show_id, seats, "bob@example.org", idempotency_key=KEY)
    await assert_seats_consistent(ctx, show.show_id)


async def test_a_release_whose_answer_was_lost_is_released_on_retry(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:3], "ana@example.org")
    async with stalled(ctx, show.show_id, "release_hold"):
        await timed_out(ctx.holds.release(hold.hold_id))
    await ctx.holds.release(hold.hold_id)  # the retry: released, no 409
    assert (await ctx.holds.hold_status(hold.hold_id)).status is HoldStatus.RELEASED
    assert await ctx.holds.seat_statuses(show.show_id) == {}


async def test_a_join_granted_at_once_whose_answer_was_lost_is_granted_once(ctx: Engine,
                                                                            show: ShowRef) -> None:
    async with stalled(ctx, show.show_id, "join_waitlist"):
        await timed_out(ctx.waitlist.join(show.show_id, "ana@example.org", 2, None, idempotency_key=KEY))
    again = await ctx.waitlist.join(show.show_id, "ana@example.org", 2, None, idempotency_key=KEY)
    assert again.status == "granted" and again.hold.status == "active"
    assert len(again.hold.seats) == 2
    assert await ctx.redis.hget(ctx.keys.show_keys(show.show_id)[4], "ana@example.org") == "2"
    # Both seats are the grant's, so the customer can give them back and nothing stays stuck.
    await ctx.holds.release(again.hold.hold_id)
    assert await ctx.holds.seat_statuses(show.show_id) == {}
    await assert_seats_consistent(ctx, show.show_id)


# -- confirm: each step's answer lost ----------------------------------------------------


async def test_a_lost_pin_is_found_again_by_the_confirm_retry(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    async with stalled(ctx, show.show_id, "confirm_begin"):
        await timed_out(ctx.confirmations.confirm(hold.hold_id, "c-1", "tok_ok"))
    began = time.monotonic()
    booking = await ctx.confirmations.confirm(hold.hold_id, "c-1", "tok_ok")
    assert time.monotonic() - began < ctx.settings.confirm_pin_s / 2, "the retry did not wait for its own pin"
    assert booking.status == "confirmed" and sorted(booking.seats) == sorted(hold.seats)
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)


async def test_a_lost_check_after_the_charge_answers_503_and_sells_once(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    async with stalled(ctx, show.show_id, "confirm_check"):
        error = await timed_out(ctx.confirmations.confirm(hold.hold_id, "c-2", "tok_ok"))
    assert isinstance(error, Unavailable) and "same Idempotency-Key" in error.message
    # The money is taken; the reconciler completes the sale after the grace...
    await eventually(lambda: reconciled(ctx), timeout_s=15)
    # ...and the same confirm answers it, charging nothing more.
    booking = await ctx.confirmations.confirm(hold.hold_id, "c-2", "tok_ok")
    assert booking.status == "confirmed"
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)


async def reconciled(ctx: Engine) -> bool:
    await ctx.reconciler.reconcile_once()
    return (await audit(ctx)).settled


async def test_a_lost_mark_still_answers_the_booking(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    async with stalled(ctx, show.show_id, "confirm_finish"):
        booking = await ctx.confirmations.confirm(hold.hold_id, "c-3", "tok_ok")
    assert booking.status == "confirmed"
    statuses = await ctx.holds.seat_statuses(show.show_id)
    assert {statuses[s].value for s in hold.seats} == {"booked"}
    books = await audit(ctx)
    books.assert_consistent()
    assert (books.charges, books.bookings, books.refunds) == (1, 1, 0)

