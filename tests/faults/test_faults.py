"""Faults, each made by killing a real process while customers keep buying: Redis (then
restarted empty), a Redis Cluster primary, PostgreSQL (kill -9 and crash recovery), and
a service worker. What must hold afterwards: nothing sold twice, every charge ends in
its booking or a refund (tests/support/sales.py `audit`), seat state rebuilt from
PostgreSQL, no seat held past its deadline, no waiter stuck."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.crc import key_slot
from sqlalchemy import text

from boxoffice.engine import seed
from boxoffice.engine.redis.pubsub import ShowChange
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support import workers
from tests.support.backends import settings_on_empty_sales
from tests.support.cluster import LocalCluster, shows_on_every_shard
from tests.support.postgres import ThrowawayPostgres
from tests.support.sales import audit, eventually, redis_now_ms
from tests.support.seats import seat_marks
from tests.support.services import RedisServer
from tests.support.shows import ShowRef, pick_show, seed_start_date

pytestmark = pytest.mark.fault

def fault_settings(redis_url: str, database_url: str, **changes: object) -> Settings:
    # No periodic reconciler: the tests run it themselves (settle), after looking at what a fault left.
    return settings_on_empty_sales(redis_url, database_url, "f", **{"reconcile_interval_s": 3600.0, **changes})


@dataclass
class Outcome:
    kind: str  # "hold" or "confirm"
    phase: str  # what the test was doing to the servers when the answer came
    status: int
    body: dict[str, object]
    retry_after: str | None
    hold_id: str | None = None


@dataclass
class Shoppers:
    """Customers that hold one or two seats and pay at once, in a loop, until stopped."""

    client: httpx.AsyncClient
    show_id: int
    seats: list[str]
    phase: str = "before"
    outcomes: list[Outcome] = field(default_factory=list)
    paying: int = 0  # confirms in flight now
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def at_work(cls, client: httpx.AsyncClient, show: ShowRef) -> Shoppers:
        """Eight shoppers on 150 of the show's seats, once a few have bought and four or more
        payments are in flight: the moment a fault strikes."""
        shoppers = cls(client, show.show_id, show.seat_ids[:150])
        shoppers.start(8)
        await until(lambda: shoppers.count("confirm", "before", 201) >= 3 and shoppers.paying >= 4)
        return shoppers

    def start(self, count: int) -> None:
        self._tasks = [asyncio.create_task(self._shop(i)) for i in range(count)]

    async def stop_once_selling_again(self) -> None:
        """After the fault: three more sales made, then stopped."""
        self.phase = "after"
        await until(lambda: self.count("confirm", "after", 201) >= 3)
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def count(self, kind: str, phase: str, status: int) -> int:
        return sum(o.kind == kind and o.phase == phase and o.status == status for o in self.outcomes)

    def _record(self, kind: str, answer: httpx.Response, hold_id: str | None = None) -> Outcome:
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        outcome = Outcome(kind, self.phase, answer.status_code, body, answer.headers.get("retry-after"), hold_id)
        self.outcomes.append(outcome)
        return outcome

    async def _shop(self, number: int) -> None:
        rng = random.Random(number)
        # Every other shopper's payment takes 2 s: a fault then finds confirms at every step.
        payment = {"payment": {"method": "card", "token": "tok_ok" if number % 2 else "tok_slow"}}
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            wanted = rng.sample(self.seats, rng.randint(1, 2))
            held = self._record("hold", await self.client.post(
                f"/v1/shows/{self.show_id}/holds", json={"seats": wanted, "customer": f"s{number}@example.org"}))
            if held.status == 201:
                hold_id = str(held.body["hold_id"])
                self.paying += 1
                try:
                    answer = await self.client.post(f"/v1/holds/{hold_id}/confirm", json=payment,
                                                    headers={"Idempotency-Key": f"s{number}-{attempt}"})
                finally:
                    self.paying -= 1
                self._record("confirm", answer, hold_id)
            else:
                await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Polls a condition on what the shoppers saw until it holds; fails after timeout_s."""

    async def check() -> bool:
        return condition()

    await eventually(check, timeout_s=timeout_s)


@pytest.fixture
async def own_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.stop()


def asgi_client(context: Engine) -> httpx.AsyncClient:
    from boxoffice.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(context.settings, engine=context))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30)


async def settle_books(context: Engine) -> None:
    """Runs the reconciler until no payment is undecided, then checks every rule of the books."""

    async def settled() -> bool:
        await context.reconciler.reconcile_once(after_start=True)
        return (await audit(context)).settled

    await eventually(settled, timeout_s=20, every_s=0.3)
    (await audit(context)).assert_consistent()


async def assert_redis_booked_as_sold(context: Engine, show_id: int) -> dict[str, str]:
    """Redis shows booked exactly the seats PostgreSQL sold; answers those (seat -> booking)."""
    async with context.sql.connect() as conn:
        rows = await conn.execute(text("SELECT seat_id, booking_id FROM booked_seats WHERE show_id = :s"),
                                  {"s": show_id})
        sold = {seat: booking for seat, booking in rows}
    statuses = await context.holds.seat_statuses(show_id)
    assert {seat for seat, status in statuses.items() if status == "booked"} == set(sold)
    return sold


async def test_redis_killed_mid_stream_then_restarted_empty(own_redis: RedisServer, database_url: str) -> None:
    context = await open_engine(fault_settings(own_redis.url, database_url), background=False)
    try:
        show = await pick_show(context, min_seats=200)
        async with asgi_client(context) as client:
            shoppers = await Shoppers.at_work(client, show)

            own_redis.kill()
            shoppers.phase = "redis down"
            # Down until the confirms that were paying have come back to a dead Redis.
            await until(lambda: shoppers.count("hold", "redis down", 503) >= 3
                        and shoppers.count("confirm", "redis down", 503) >= 1)
            # Writes answer 503 with Retry-After; browsing keeps answering from PostgreSQL.
            hold = await client.post(f"/v1/shows/{show.show_id}/holds",
                                     json={"seats": [show.seat_ids[-1]], "customer": "x@example.org"})
            assert hold.status_code == 503 and hold.headers["retry-after"], hold.text
            assert hold.json()["error"] == "unavailable"
            assert (await client.get("/v1/cities")).status_code == 200
            assert (await client.get(f"/v1/shows/{show.show_id}")).status_code == 200
            seat_map = await client.get(f"/v1/shows/{show.show_id}/seats")
            assert seat_map.status_code == 503 and seat_map.headers["retry-after"]
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["down"] == ["redis"]

            own_redis.restart_empty()
            await shoppers.stop_once_selling_again()

        during = [o for o in shoppers.outcomes if o.phase == "redis down"]
        assert all(o.status == 503 and o.retry_after for o in during if o.status >= 500), during
        assert all(o.status != 500 for o in shoppers.outcomes), "no internal errors, ever"
        await settle_books(context)
        # Seat state rebuilt from PostgreSQL: what was sold is booked, nothing else is taken
        # (the holds Redis lost are gone, their owners see them expired).
        sold = await assert_redis_booked_as_sold(context, show.show_id)
        for outcome in shoppers.outcomes:
            if outcome.kind == "confirm" and outcome.status == 201:
                assert all(sold[seat] == outcome.body["booking_id"] for seat in outcome.body["seats"])  # type: ignore[attr-defined]
        # Holds whose confirm failed with Redis: lost with it (expired), or finished by the reconciler.
        lost = [o.hold_id for o in shoppers.outcomes if o.kind == "confirm" and o.status == 503]
        assert lost
        for hold_id in lost:
            assert (await context.holds.hold_status(str(hold_id))).status.value in ("expired", "confirmed")
    finally:
        await context.close()


@pytest.mark.cluster
async def test_a_killed_cluster_primary_fails_over_and_no_sale_is_lost(database_url: str) -> None:
    cluster = LocalCluster.start()
    context = None
    try:
        settings = fault_settings(cluster.url, database_url, redis_cluster=True)
        context = await open_engine(settings, background=False)
        context.events.start()
        await asyncio.wait_for(context.events.connected.wait(), 10)
        # The victim is the primary that the live-change subscription listens on, too.
        listened = context.pubsub_redis.node[1]
        assert listened in {n.port for n in cluster.primaries()}, "REDIS_URL names a primary"
        shows = await shows_on_every_shard(context, cluster)
        shows.sort(key=lambda s: cluster.node_for_slot(key_slot(str(s.show_id).encode())).port != listened)
        victim_show = shows[0]
        slot = key_slot(str(victim_show.show_id).encode())
        victim = cluster.node_for_slot(slot)
        assert victim.port == listened
        sales, holds = {}, {}
        for show in shows:
            hold = await context.holds.hold(show.show_id, show.seat_ids[:2], "buyer@example.org")
            sales[show.show_id] = await context.confirmations.confirm(hold.hold_id, f"k{show.show_id}", "tok_ok")
        with victim.client() as direct:
            # The replica has the sales' marks: WAIT counts the replicas that acknowledged this
            # connection's own last write, so it writes first (in the show's slot); the
            # replication stream is ordered, so the marks before it are acknowledged too.
            direct.set(f"fault-test:fence:{{{victim_show.show_id}}}", "1")
            assert int(direct.execute_command("WAIT", 1, 5000)) == 1
        for show in shows:
            holds[show.show_id] = await context.holds.hold(show.show_id, show.seat_ids[2:4], "late@example.org")

        cluster.kill(victim)
        # The other shards keep serving while the dead one's replica takes over.
        for show in shows[1:]:
            await context.holds.hold(show.show_id, [show.seat_ids[5]], "meanwhile@example.org")
        cluster.wait_failover(slot, victim)

        async def holds_again() -> bool:
            try:
                await context.holds.hold(victim_show.show_id, [victim_show.seat_ids[6]], "again@example.org")
            except Exception:
                return False
            return True

        await eventually(holds_again, timeout_s=20, every_s=0.2)  # the client reconnected by itself
        async with asgi_client(context) as client:
            assert (await client.get("/healthz")).status_code == 200
        # The subscription moves to a live node by itself (listeners are told to resync,
        # since changes made meanwhile were missed), and live changes flow again from
        # every shard.
        async def subscribed_elsewhere() -> bool:
            node = context.pubsub_redis.node
            return context.events.connected.is_set() and node is not None and node[1] != victim.port

        await eventually(subscribed_elsewhere, timeout_s=15)
        async with contextlib.AsyncExitStack() as stack:
            queues = [await stack.enter_async_context(context.events.listen(s.show_id)) for s in shows]
            for show in shows:
                await context.holds.hold(show.show_id, [show.seat_ids[7]], "live@example.org")
            for show, queue in zip(shows, queues, strict=True):
                assert await next_change(queue, show.seat_ids[7]) == "held"
        for show in shows:
            statuses = await context.holds.seat_statuses(show.show_id)
            assert statuses[show.seat_ids[0]] == statuses[show.seat_ids[1]] == "booked", "the sale stands"
            status = (await context.holds.hold_status(holds[show.show_id].hold_id)).status.value
            assert status in ("active", "expired"), "a hold may be lost with its shard, never mistaken"
        books = await audit(context)
        books.assert_consistent()
        assert books.bookings == len(shows) and books.refunds == 0
    finally:
        if context is not None:
            await context.close()
        cluster.stop()


async def next_change(queue: asyncio.Queue[ShowChange | None], seat: str) -> str:
    """The status the next message about `seat` carries (resync markers skipped)."""

    async def read() -> str:
        while True:
            change = await queue.get()
            if change is not None and seat in change.seats:
                return change.seats[seat]

    return await asyncio.wait_for(read(), 10)


@pytest.fixture
async def crashable_postgres(redis_server: RedisServer) -> AsyncIterator[tuple[ThrowawayPostgres, str]]:
    server = ThrowawayPostgres.start()
    try:
        url = server.create_database("boxoffice")
        from boxoffice.engine import db

        engine = db.create_engine(Settings(redis_url=redis_server.url, database_url=url))
        await db.migrate(engine)
        await seed.seed_demo(engine, 7, seed_start_date())
        await engine.dispose()
        yield server, url
    finally:
        server.stop()


async def test_postgresql_crashed_during_confirms_leaves_no_confirm_half_done(
        crashable_postgres: tuple[ThrowawayPostgres, str], redis_server: RedisServer) -> None:
    server, url = crashable_postgres
    # Browse answers are cached for a while, as in production: holds go on while SQL is down.
    settings = fault_settings(redis_server.url, url, browse_cache_s=60.0)
    context = await open_engine(settings, background=False)
    try:
        show = await pick_show(context, min_seats=200)
        async with asgi_client(context) as client:
            shoppers = await Shoppers.at_work(client, show)
            server.crash()
            shoppers.phase = "database down"
            await until(lambda: shoppers.count("confirm", "database down", 503) >= 2)
            health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["down"] == ["database"]
            server.run()
            await shoppers.stop_once_selling_again()
        assert all(o.status != 500 for o in shoppers.outcomes), [o for o in shoppers.outcomes if o.status == 500]
        failed = [o for o in shoppers.outcomes if o.kind == "confirm" and o.status == 503]
        assert all(o.retry_after for o in failed)
        await settle_books(context)
        # A confirm answered 503 left either nothing charged, a refund, or (finished by the
        # reconciler) its booking: never a charge alone, never a booking without its seats.
        async with context.sql.connect() as conn:
            for outcome in failed:
                rows = list(await conn.execute(text(
                    "SELECT p.status, sp.status, b.id FROM payments p"
                    " LEFT JOIN simulated_payments sp ON sp.provider_key = p.provider_key"
                    " LEFT JOIN bookings b ON b.id = p.booking_id WHERE p.hold_id = :h"), {"h": outcome.hold_id}))
                for ours, provider, booking in rows:
                    assert (ours, provider) in {("failed", None), ("refunded", "refunded"),
                                                ("captured", "captured")}, (ours, provider)
                    assert (ours == "captured") == (booking is not None)
        await assert_redis_booked_as_sold(context, show.show_id)
    finally:
        await context.close()


async def test_a_worker_killed_mid_request_leaves_no_seat_held_and_no_waiter_stuck(
        redis_server: RedisServer, database_url: str, tmp_path: Path) -> None:
    settings = fault_settings(redis_server.url, database_url, hold_ttl_s=2, confirm_pin_s=3,
                              sweep_interval_s=0.1, reconcile_interval_s=0.5)
    doomed, survivor = workers.start(settings, tmp_path), workers.start(settings, tmp_path)
    context = await open_engine(settings, background=False)  # to read Redis and the books
    try:
        workers.wait_ready(doomed, survivor)
        show = await pick_show(context, max_seats=100)
        async with httpx.AsyncClient(base_url=doomed.url, timeout=30) as client:
            holds = []
            for i in range(0, len(show.seat_ids), 10):
                answer = await client.post(f"/v1/shows/{show.show_id}/holds", json={
                    "seats": show.seat_ids[i:i + 10], "customer": f"h{i}@example.org"})
                assert answer.status_code == 201, answer.text
                holds.append(answer.json())
            entry = (await client.post(f"/v1/shows/{show.show_id}/waitlist",
                                       json={"count": 2, "customer": "waiter@example.org"})).json()
            assert entry["status"] == "waiting"
            # A confirm whose payment takes 2 s is in flight when the worker dies.
            paying = asyncio.create_task(client.post(
                f"/v1/holds/{holds[0]['hold_id']}/confirm", headers={"Idempotency-Key": "slow"},
                json={"payment": {"method": "card", "token": "tok_slow"}}))
            await eventually(lambda: _pending_payments(context), timeout_s=5)
            doomed.kill()
            with pytest.raises(httpx.TransportError):
                await paying

        # From now on only the survivor's sweeper and reconciler run. Watch Redis itself
        # (reads would settle the show on their own): no hold outlives its deadline by more
        # than a second plus the sweep claim a killed sweeper may have left (2 s).
        deadlines_key = context.keys.show_keys(show.show_id)[3]
        stale_after_ms = 1000 + 2000

        async def no_stale_hold() -> bool:
            now = await redis_now_ms(context)
            # (the sweepers run meanwhile: the holds and the map are read in two round trips)
            taken = await seat_marks(context.redis, context.keys, show.show_id, check_map=False)
            due = await context.redis.zrangebyscore(deadlines_key, "-inf", now - stale_after_ms)
            held_by = {value[2:] for value in taken.values() if value.startswith("h:")}
            return not (held_by & set(due))

        last_deadline = max(int(h["ttl_s"]) for h in holds) + settings.confirm_pin_s
        loop_end = asyncio.get_running_loop().time() + last_deadline + 4
        while asyncio.get_running_loop().time() < loop_end:
            assert await no_stale_hold(), "a seat stayed held past its deadline"
            await asyncio.sleep(0.1)

        entry_key = f"{context.keys.show_base(show.show_id)}entry:{entry['entry_id']}"
        assert await context.redis.hget(entry_key, "status") == "granted", "the waiter was served"
        async with httpx.AsyncClient(base_url=survivor.url, timeout=30) as client:
            status = (await client.get(f"/v1/waitlist/{entry['entry_id']}")).json()
            assert status["status"] in ("granted",) and len(status["hold"]["seats"]) == 2
        # The payment cut off by the kill is decided by the survivor's reconciler.
        await eventually(lambda: _no_pending(context), timeout_s=15)
        (await audit(context)).assert_consistent()
    finally:
        doomed.stop()
        survivor.stop()
        await context.close()


async def _pending_payments(context: Engine) -> bool:
    async with context.sql.connect() as conn:
        return bool((await conn.execute(text("SELECT count(*) FROM payments WHERE status = 'pending'"))).scalar())


async def _no_pending(context: Engine) -> bool:
    return not await _pending_payments(context)
