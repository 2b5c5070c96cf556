"""The service unchanged on a real Redis Cluster (three primaries, three replicas): holds,
confirm, expiry by the sweepers, the waitlist and live changes, with shows spread over
the shards. One cluster for the module (tests/support/cluster.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from redis.crc import key_slot
from sqlalchemy import text

from boxoffice.engine.redis.pubsub import ShowChange
from boxoffice.engine.settings import Settings
from boxoffice.engine.statuses import HoldStatus, SeatStatus
from boxoffice.engine.wiring import Engine, open_engine, stop_tasks
from tests.support.backends import SALES_TABLES, drop_prefix
from tests.support.cluster import LocalCluster, shows_on_every_shard
from tests.support.sales import audit, eventually, redis_now_ms
from tests.support.seats import seat_counts

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster.start()
    yield local
    local.stop()


def cluster_settings(cluster: LocalCluster, database_url: str, **changes: object) -> Settings:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SALES_TABLES}")
    base = Settings(redis_url=cluster.url, database_url=database_url, redis_cluster=True,
                    key_prefix=f"t{uuid.uuid4().hex[:10]}", confirm_grace_s=1.0, reconcile_interval_s=3600.0,
                    browse_cache_s=0.0, rate_limit_holds_per_min=0, rate_limit_ip_per_min=0)
    return base.with_changes(**changes)


@pytest.fixture
async def cctx(cluster: LocalCluster, database_url: str) -> AsyncIterator[Engine]:
    context = await open_engine(cluster_settings(cluster, database_url), background=False)
    yield context
    await drop_prefix(context)
    await context.close()


async def test_shows_spread_over_the_shards_and_each_show_stays_in_one_slot(
        cctx: Engine, cluster: LocalCluster) -> None:
    shows = await shows_on_every_shard(cctx, cluster, per_shard=2)
    for show in shows:
        await cctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    serving = set()
    for show in shows:
        slot = key_slot(str(show.show_id).encode())
        owner = cluster.node_for_slot(slot)
        serving.add(owner.port)
        # Every key of the show lives on the node that owns its slot, and nowhere else.
        with owner.client() as direct:
            names = direct.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        mine = [n for n in names if n.startswith(cctx.keys.show_base(show.show_id))]
        # (a hold's seats are in the status map; the seats hash keeps booked seats only)
        base = cctx.keys.show_base(show.show_id)
        assert {cctx.keys.show_keys(show.show_id)[i] for i in (0, 1, 3, 4, 7)} | {
            base + "statusmap", base + "seatindex"} <= set(mine), mine
        assert all(key_slot(n.encode()) == slot for n in mine)
        assert any(":hold:" in n for n in mine), "the hold's own hash is in the show's slot too"
    assert len(serving) == 3, "shows spread over the three primaries"


async def test_metrics_read_the_seat_states_of_shows_on_every_shard(cctx: Engine, cluster: LocalCluster) -> None:
    from boxoffice.engine import metrics

    shows = await shows_on_every_shard(cctx, cluster, per_shard=1)
    for show in shows:
        await cctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    seats = await metrics.read_show_seats(cctx.redis, cctx.keys, cluster=True)
    assert {show.show_id: seats[show.show_id]["held"] for show in shows} == {show.show_id: 2 for show in shows}


async def test_every_primary_gets_the_scripts_library_and_calls_need_no_key_lookup(
        cctx: Engine, cluster: LocalCluster) -> None:
    shows = await shows_on_every_shard(cctx, cluster, per_shard=1)
    for node in cluster.primaries():
        with node.client() as direct:
            direct.function_flush()
            direct.config_resetstat()
    for show in shows:
        await cctx.holds.hold(show.show_id, show.seat_ids[:1], "ana@example.org")
    for node in cluster.primaries():
        with node.client() as direct:
            libraries = [dict(zip(lib[::2], lib[1::2], strict=True))["library_name"] for lib in direct.function_list()]
            assert libraries == [cctx.scripts.library.name]
            # FCALL is routed by its keys as EVALSHA is, without asking a node (COMMAND GETKEYS).
            assert "cmdstat_command|getkeys" not in direct.info("commandstats")


async def test_contention_across_shards_holds_every_seat_at_most_once(
        cluster: LocalCluster, database_url: str) -> None:
    from boxoffice.api.app import create_app

    # The abuse limits are counted too, inside the hold scripts, in each show's slot (generous
    # limits: nobody is refused by them), and
    # a small pool: requests queue for a connection instead of failing (boxoffice/engine/redis/cluster.py).
    context = await open_engine(cluster_settings(cluster, database_url, rate_limit_holds_per_min=1000,
                                                  rate_limit_ip_per_min=10_000, redis_pool_size=8),
                                 background=False)
    try:
        shows = await shows_on_every_shard(context, cluster)
        rng = random.Random(8)
        requests = [(rng.choice(shows), i) for i in range(240)]
        picks = [rng.sample(show.seat_ids[:24], rng.randint(1, 4)) for show, _ in requests]
        transport = httpx.ASGITransport(app=create_app(context.settings, engine=context))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answers = await asyncio.gather(*(
                client.post(f"/v1/shows/{show.show_id}/holds", json={"seats": seats, "customer": f"c{i}@example.org"})
                for (show, i), seats in zip(requests, picks, strict=True)))
            owner: dict[tuple[int, str], str] = {}
            for (show, _), seats, answer in zip(requests, picks, answers, strict=True):
                assert answer.status_code in (201, 409), answer.text
                if answer.status_code == 201:
                    for seat in seats:
                        assert (show.show_id, seat) not in owner, f"{seat} of {show.show_id} held twice"
                        owner[(show.show_id, seat)] = answer.json()["hold_id"]
            for (show, _), answer in zip(requests, answers, strict=True):
                if answer.status_code == 409:
                    assert all((show.show_id, s) in owner for s in answer.json()["unavailable"])
            for show in shows:
                body = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
                held = {s["id"] for s in body["seats"] if s["status"] == "held"}
                assert held == {seat for (sid, seat) in owner if sid == show.show_id}
            health = await client.get("/healthz")
            assert health.status_code == 200 and health.json()["checks"] == {"redis": "ok", "database": "ok"}
    finally:
        await drop_prefix(context)
        await context.close()


async def test_confirm_on_every_shard_commits_once_and_redis_is_repaired_from_postgresql(
        cctx: Engine, cluster: LocalCluster) -> None:
    shows = await shows_on_every_shard(cctx, cluster)
    bookings = {}
    for show in shows:
        hold = await cctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
        booking = await cctx.confirmations.confirm(hold.hold_id, f"key-{show.show_id}", "tok_ok")
        again = await cctx.confirmations.confirm(hold.hold_id, f"key-{show.show_id}", "tok_ok")
        assert again.booking_id == booking.booking_id, "the same key answers the same booking"
        assert (await cctx.holds.hold_status(hold.hold_id)).status is HoldStatus.CONFIRMED
        bookings[show.show_id] = booking
    # A shard lost one show entirely (as after a restart with no replica), and the process
    # that sold the seats died before it recorded that Redis has them: the reconciler's
    # first pass reads the marks of every shard in one pipeline, and the lost show is
    # rebuilt from PostgreSQL on its next touch.
    lost = shows[0]
    await cctx.redis.delete(*[k async for k in cctx.redis.scan_iter(match=cctx.keys.show_base(lost.show_id) + "*")])
    cctx.reconciler.marked.clear()
    async with cctx.sql.begin() as conn:
        await conn.execute(text("UPDATE bookings SET marked_at = NULL"))
    await cctx.reconciler.reconcile_once(after_start=True)
    async with cctx.sql.connect() as conn:
        unmarked = (await conn.execute(text("SELECT count(*) FROM bookings WHERE marked_at IS NULL"))).scalar()
    assert unmarked == 0, "every shard was read"
    for show in shows:
        statuses = await cctx.holds.seat_statuses(show.show_id)
        assert statuses == {show.seat_ids[0]: SeatStatus.BOOKED, show.seat_ids[1]: SeatStatus.BOOKED}
    books = await audit(cctx)
    books.assert_consistent()
    assert books.bookings == 3 and books.charges == 3 and books.refunds == 0


async def test_the_sweepers_expire_holds_on_every_shard_within_a_second(
        cluster: LocalCluster, database_url: str) -> None:
    settings = cluster_settings(cluster, database_url, hold_ttl_s=1)
    # Two sweepers, as two service processes would run.
    first, second = await open_engine(settings, background=False), await open_engine(settings, background=False)
    sweepers = [asyncio.create_task(c.sweeper.run_forever()) for c in (first, second)]
    try:
        shows = await shows_on_every_shard(first, cluster)
        holds = [await first.holds.hold(show.show_id, [seat], f"c{i}@example.org")
                 for show in shows for i, seat in enumerate(show.seat_ids[:5])]
        deadline_ms = max(h.expires_at_ms for h in holds)

        async def all_free() -> bool:
            # Read nothing of the shows (reads settle on their own): watch the stats hashes.
            held = [int(await first.redis.hget(first.keys.stats(s.show_id), "held") or 0) for s in shows]
            return sum(held) == 0

        await eventually(all_free, timeout_s=10)
        assert await redis_now_ms(first) - deadline_ms < 1000
        assert sum(c.sweeper.holds_ended for c in (first, second)) == len(holds), "each hold ended once"
    finally:
        await stop_tasks(sweepers)  # as the service stops them: a cancel can be lost (wiring.py)
        await drop_prefix(first)
        await first.close()
        await second.close()


async def test_the_waitlist_on_a_cluster_serves_first_come_first_served(
        cctx: Engine, cluster: LocalCluster) -> None:
    show = (await shows_on_every_shard(cctx, cluster, max_seats=100))[1]
    seats = show.seat_ids
    holds = [await cctx.holds.hold(show.show_id, seats[i:i + 10], f"h{i}@example.org")
             for i in range(0, len(seats), 10)]
    first = await cctx.waitlist.join(show.show_id, "first@example.org", 3, None)
    second = await cctx.waitlist.join(show.show_id, "second@example.org", 2, None)
    assert (first.status, first.position, second.position) == ("waiting", 1, 2)
    await cctx.holds.release(holds[0].hold_id)  # ten seats back: 3 to the first, 2 to the second
    granted = [await cctx.waitlist.status(e.entry_id) for e in (first, second)]
    assert [g.status for g in granted] == ["granted", "granted"]
    assert [len(g.hold.seats) for g in granted] == [3, 2]
    stats = await seat_counts(cctx.redis, cctx.keys, show.show_id)
    assert (stats["waiting"], stats["held"], stats["free"]) == (0, len(seats) - 5, 5)


async def test_changes_on_every_shard_reach_one_subscription(cctx: Engine, cluster: LocalCluster) -> None:
    cctx.events.start()
    shows = await shows_on_every_shard(cctx, cluster)
    await asyncio.wait_for(cctx.events.connected.wait(), 10)
    async with contextlib.AsyncExitStack() as stack:
        queues = [await stack.enter_async_context(cctx.events.listen(s.show_id)) for s in shows]
        for show in shows:
            await cctx.holds.hold(show.show_id, [show.seat_ids[3]], "ana@example.org")
        for show, queue in zip(shows, queues, strict=True):
            change = await asyncio.wait_for(queue.get(), 5)
            assert isinstance(change, ShowChange) and change.show_id == show.show_id
            assert change.seats == {show.seat_ids[3]: "held"}

