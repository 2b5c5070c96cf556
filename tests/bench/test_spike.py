"""A small release-day spike (bench/spike.py) against a real service process on the session's
real Redis and a PostgreSQL database of its own: a few hundred customers fight over a small
hall with a two-second hold time. The audit must pass; speed is not asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from bench import spike
from tests.support.services import ROOT, RedisServer, running_service, temporary_database

HOLD_TTL_S = 2


def migrate(url: str) -> None:
    subprocess.run([sys.executable, "-m", "boxoffice.engine.cli", "migrate"], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "DATABASE_URL": url, "REDIS_URL": "redis://unused"})


@pytest.fixture
def service(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[str, str, str, str]]:
    """(base url, database url, redis url, key prefix) of a live service process."""
    prefix = f"spike{uuid.uuid4().hex[:8]}"
    with temporary_database() as database_url:
        migrate(database_url)
        env = {**os.environ, "REDIS_URL": redis_server.url, "DATABASE_URL": database_url,
               "BOXOFFICE_HOLD_TTL_S": str(HOLD_TTL_S), "BOXOFFICE_KEY_PREFIX": prefix,
               "BOXOFFICE_RATE_HOLDS_PER_MIN": "0", "BOXOFFICE_RATE_IP_PER_MIN": "0",
               "BOXOFFICE_BROWSE_CACHE_S": "1"}
        try:
            with running_service(env, tmp_path / "service.log", timeout_s=30, log_stdout=True) as live:
                yield live.url, database_url, redis_server.url, prefix
        finally:
            client = redis.Redis.from_url(redis_server.url)
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def small_spike(service: tuple[str, str, str, str], tmp_path: Path, customers: int, patience_s: int,
                *options: str) -> tuple[int, dict[str, Any]]:
    """bench.spike against the live service: `customers` arriving within a second for a hall of
    60 seats (with `options` of its command line); its exit code and its JSON result."""
    url, database_url, redis_url, prefix = service
    out = tmp_path / "spike.json"
    code = spike.main([url, "--database-url", database_url, "--redis-url", redis_url, "--key-prefix", prefix,
                       "--customers", str(customers), "--seats", "60", "--arrival-s", "1", "--concurrency", "64",
                       "--patience-s", str(patience_s), "--think-s", "0.2", *options, "--quiet", "--out", str(out)])
    return code, orjson.loads(out.read_bytes())


def test_a_small_spike_sells_every_seat_once_and_its_audit_passes(service: tuple[str, str, str, str],
                                                                   tmp_path: Path) -> None:
    url, database_url, redis_url, prefix = service
    code, result = small_spike(service, tmp_path, 300, 3)
    checks = {c["name"]: c for c in result["audit"]["checks"]}
    assert set(checks) == {"sold_exactly_once", "redis_agrees_with_postgres", "charges_balance", "waitlist_fifo"}
    assert all(c["ok"] for c in checks.values()), checks
    assert code == 0
    # The scenario really ran: seats were fought over, sold, and waited for.
    assert result["holds"]["granted"] > 0 and result["holds"]["refused"] > 0
    assert checks["sold_exactly_once"]["seats_sold"] > 0
    assert checks["charges_balance"]["charges"] == checks["charges_balance"]["bookings"] > 0
    assert result["waitlist"]["joined"] > 0
    assert checks["waitlist_fifo"]["entries_found_in_redis"] == result["waitlist"]["joined"]

    # The audit is not a rubber stamp: a forged charge and a lost sale are both caught.
    from bench.audit import check_charges, check_redis_agrees
    from bench.sqldb import BenchDb

    show_id = result["show"]["show_id"]
    db = BenchDb(database_url)
    try:
        seat_map = httpx.get(f"{url}/v1/shows/{show_id}/seats", timeout=10).json()
        db.execute("INSERT INTO simulated_payments (provider_key, reference, amount, currency, status)"
                   " VALUES ('bo_forged_1', 'sim_forged', 1000, 'EUR', 'captured')")
        assert not check_charges(db, show_id).ok
        db.execute("DELETE FROM booked_seats WHERE show_id = %s AND seat_id ="
                   " (SELECT min(seat_id) FROM booked_seats WHERE show_id = %s)", (show_id, show_id))
        assert not check_redis_agrees(db, show_id, seat_map, redis_url, prefix).ok
    finally:
        db.close()


def test_customers_holding_by_count_read_the_counts_first_and_the_audit_passes(
        service: tuple[str, str, str, str], tmp_path: Path) -> None:
    code, result = small_spike(service, tmp_path, 200, 2, "--best-available-share", "1")
    assert code == 0 and all(c["ok"] for c in result["audit"]["checks"]), result["audit"]
    endpoints = result["endpoints"]
    assert "GET /v1/shows/{id}/seats" not in endpoints  # nobody read the map
    counts_read = endpoints["GET /v1/shows/{id}/seats/counts"]["count"]
    by_count = endpoints["POST /v1/shows/{id}/holds (count)"]
    assert by_count["statuses"].get("201", 0) == result["holds"]["granted"] > 0
    # Each customer read the counts once and asked at most twice; most late ones never asked.
    assert counts_read == 200 and by_count["count"] < counts_read


@pytest.mark.parametrize("opens_after_s", [0, 2], ids=["sales open as the first arrives", "everyone queued first"])
def test_a_small_spike_behind_the_release_queue_admits_in_order_and_its_audit_passes(
        service: tuple[str, str, str, str], tmp_path: Path, opens_after_s: int) -> None:
    code, result = small_spike(service, tmp_path, 300, 3, "--release-queue", "--opens-after-s", str(opens_after_s))
    checks = {c["name"]: c for c in result["audit"]["checks"]}
    assert {"queue_tickets_final", "queue_admission_order", "no_hold_without_pass"} <= set(checks)
    assert all(c["ok"] for c in checks.values()), checks
    assert code == 0
    queue = result["queue"]
    # Everyone queued; some were let in and bought, and every hold skipping the queue was refused.
    assert queue["joined"] == 300 and queue["admitted"] > 0
    assert queue["probes"] == queue["probes_refused"] == 6 and queue["probes_held"] == 0
    # A probe right after joining meets the queue (pass_required) or, before the opening, sale_not_open.
    assert queue["probe_refusals"].get("sale_not_open" if opens_after_s else "pass_required", 0) > 0
    assert checks["sold_exactly_once"]["seats_sold"] > 0
    assert sum(checks["queue_tickets_final"]["statuses"].values()) == 300
    assert "waiting" not in checks["queue_tickets_final"]["statuses"]


def test_a_small_spike_whose_customers_follow_their_tickets_streams(service: tuple[str, str, str, str],
                                                                     tmp_path: Path) -> None:
    """--follow-streams: every waiting ticket followed over its event stream, none polled;
    the same audit, the timeline and the buyers' figure in the result."""
    code, result = small_spike(service, tmp_path, 300, 3, "--release-queue", "--opens-after-s", "2",
                               "--follow-streams")
    assert code == 0 and all(c["ok"] for c in result["audit"]["checks"]), result["audit"]
    queue = result["queue"]
    assert queue["streams"] > 0 and queue["streams_failed"] == 0
    assert queue["stream_events"] >= queue["streams"] and queue["polls"] == 0
    assert result["endpoints"]["GET /v1/queue/{id}/events (first event)"]["count"] == queue["streams"]
    answered = sum(e["count"] for name, e in result["endpoints"].items() if name != "ALL")
    assert sum(step["count"] for step in result["timeline"]) == answered
    buyers = result["seat_maps_and_holds"]["count"]
    assert buyers == sum(step["count"] for step in result["timeline_seat_maps_and_holds"]) > 0


@pytest.mark.parametrize("queue", [False, True], ids=["no queue", "behind the release queue"])
def test_a_small_spike_whose_customers_keep_the_seat_map_live(service: tuple[str, str, str, str],
                                                              tmp_path: Path, queue: bool) -> None:
    """--live-seat-maps: every map reader opens the seat map's event stream once and picks from
    it as it changes; nobody reads the map by GET; the same audit passes."""
    options = ("--release-queue",) if queue else ()
    code, result = small_spike(service, tmp_path, 200, 2, "--live-seat-maps", *options)
    assert code == 0 and all(c["ok"] for c in result["audit"]["checks"]), result["audit"]
    tally, endpoints = result["tally"], result["endpoints"]
    assert tally["live_maps"] > 0 and tally["live_maps_failed"] == 0
    assert endpoints["GET /v1/shows/{id}/seats/events (first map)"]["count"] == tally["live_maps"]
    assert "GET /v1/shows/{id}/seats" not in endpoints
    # The streams told changes while their customers picked (the maps really were live).
    assert tally["live_map_events"] > 0
    assert result["holds"]["granted"] > 0
    assert result["seat_maps_and_holds"]["count"] >= tally["live_maps"] + result["holds"]["granted"]


class ScriptedStream:
    """Stands in for an EventStream: hands out the given events, then the end of the stream."""

    def __init__(self, events: list[bytes]) -> None:
        import asyncio

        self.events: asyncio.Queue[bytes | None] = asyncio.Queue()
        for event in events:
            self.events.put_nowait(event)
        self.closed = False

    async def next(self) -> bytes | None:
        return await self.events.get()

    def end(self) -> None:
        self.events.put_nowait(None)

    def close(self) -> None:
        self.closed = True


async def test_a_live_seat_map_follows_changes_and_takes_a_whole_map_again() -> None:
    import asyncio

    from bench.customers import LiveSeatMap, Tally

    stream = ScriptedStream([
        b'{"seats":[{"id":"A1","status":"held"},{"id":"A3","status":"available"}],"counts":{}}',
        b'{"show_id":"7","seats":[{"id":"B1","status":"available"},{"id":"B2","status":"booked"}],'
        b'"counts":{"available":1,"held":0,"booked":1}}',
        b'{"seats":[{"id":"B2","status":"available"}],"counts":{}}',
    ])
    tally = Tally()
    live = LiveSeatMap(stream, {"A1", "A2"}, tally)  # type: ignore[arg-type]
    stream.end()
    await asyncio.wait_for(live.follower, 5)
    # A1 taken, A3 freed, then the whole map replaced what was known, then B2 freed.
    assert live.free == {"B1", "B2"}
    assert tally.live_map_events == 3
    live.close()
    assert stream.closed


def test_the_client_side_queue_order_check_sees_a_ticket_overtaken() -> None:
    from bench.queue_audit import client_side_admission_violations
    from bench.queue_customers import TicketRecord

    early = TicketRecord("T1", "a", join_sent=0.0, join_answered=0.1, last_waiting_poll_sent=5.0)
    late = TicketRecord("T2", "b", join_sent=0.2, join_answered=0.3, status="admitted", admitted_seen=4.0)
    assert client_side_admission_violations([early, late]) == 1
    early.last_waiting_poll_sent = 3.9  # last seen waiting before the later one's admission: in order
    assert client_side_admission_violations([early, late]) == 0


def test_the_client_side_fairness_check_sees_a_waiter_overtaken() -> None:
    from bench.audit import client_side_fifo_violations
    from bench.customers import WaitRecord

    early = WaitRecord("W1", 2, join_sent=0.0, join_answered=0.1, status="cancelled", last_waiting_poll_sent=5.0)
    late = WaitRecord("W2", 2, join_sent=0.2, join_answered=0.3, status="granted", granted_seen=4.0)
    assert client_side_fifo_violations([early, late]) == 1
    early.last_waiting_poll_sent = 3.9  # last seen waiting before the later one's grant: fair
    assert client_side_fifo_violations([early, late]) == 0
