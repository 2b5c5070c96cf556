"""Many workers: two service processes on two ports (as on two machines) sharing Redis and
PostgreSQL, and `boxoffice serve --workers 2` with its metrics added up over the workers."""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from boxoffice.engine.settings import Settings
from tests.support import workers
from tests.support.backends import settings_on_empty_sales
from tests.support.services import RedisServer


def worker_settings(redis_url: str, database_url: str, **changes: object) -> Settings:
    return settings_on_empty_sales(redis_url, database_url, "w", **{"reconcile_interval_s": 1.0, **changes})


@pytest.fixture(scope="module")
def two_processes(redis_server: RedisServer, database_url: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[workers.Worker, workers.Worker]]:
    settings = worker_settings(redis_server.url, database_url)
    log_dir = tmp_path_factory.mktemp("workers")
    pair = (workers.start(settings, log_dir), workers.start(settings, log_dir))
    try:
        workers.wait_ready(*pair)
        yield pair
    finally:
        for worker in pair:
            worker.stop()


async def a_show(client: httpx.AsyncClient, base: str, max_seats: int) -> tuple[str, list[str]]:
    """The first show of the demo catalog with at most `max_seats` seats, through the API."""
    for city in (await client.get(f"{base}/v1/cities")).json()["cities"]:
        for movie in (await client.get(f"{base}/v1/cities/{city['id']}/movies")).json()["movies"]:
            shows = (await client.get(f"{base}/v1/cities/{city['id']}/movies/{movie['id']}/shows")).json()
            for cinema in shows["cinemas"]:
                for show in cinema["shows"]:
                    seat_map = (await client.get(f"{base}/v1/shows/{show['id']}/seats")).json()
                    if len(seat_map["seats"]) <= max_seats and seat_map["counts"]["available"] == len(
                            seat_map["seats"]):
                        return show["id"], [s["id"] for s in seat_map["seats"]]
    raise AssertionError("no show of that size in the demo catalog")


async def test_contention_over_two_processes_holds_each_seat_once_and_sells_it_once(
        two_processes: tuple[workers.Worker, workers.Worker]) -> None:
    urls = [w.url for w in two_processes]
    async with httpx.AsyncClient(timeout=30) as client:
        show_id, seats = await a_show(client, urls[0], max_seats=5000)
        hot = seats[:30]
        rng = random.Random(11)
        picks = [rng.sample(hot, rng.randint(1, 3)) for _ in range(300)]
        answers = await asyncio.gather(*(
            client.post(f"{urls[i % 2]}/v1/shows/{show_id}/holds",
                        json={"seats": seats_wanted, "customer": f"c{i}@example.org"})
            for i, seats_wanted in enumerate(picks)))
        owner: dict[str, str] = {}
        won = []
        for seats_wanted, answer in zip(picks, answers, strict=True):
            assert answer.status_code in (201, 409), answer.text
            if answer.status_code == 201:
                won.append(answer.json())
                for seat in seats_wanted:
                    assert seat not in owner, f"{seat} held twice"
                    owner[seat] = answer.json()["hold_id"]
        assert won, "somebody won"
        maps = [(await client.get(f"{url}/v1/shows/{show_id}/seats")).json() for url in urls]
        for seat_map in maps:
            assert {s["id"] for s in seat_map["seats"] if s["status"] == "held"} == set(owner)
        # Each winner pays on the other process than the one that held; all sell exactly once.
        confirms = await asyncio.gather(*(
            client.post(f"{urls[(i + 1) % 2]}/v1/holds/{hold['hold_id']}/confirm",
                        headers={"Idempotency-Key": f"k{i}"}, json={"payment": {"method": "card", "token": "tok_ok"}})
            for i, hold in enumerate(won)))
        assert [c.status_code for c in confirms] == [201] * len(won), [c.text for c in confirms if c.status_code != 201]
        sold = [seat for c in confirms for seat in c.json()["seats"]]
        assert sorted(sold) == sorted(owner)
        for url in urls:
            seat_map = (await client.get(f"{url}/v1/shows/{show_id}/seats")).json()
            assert {s["id"] for s in seat_map["seats"] if s["status"] == "booked"} == set(owner)


async def test_a_waiter_on_one_process_is_served_by_a_release_on_the_other(
        two_processes: tuple[workers.Worker, workers.Worker]) -> None:
    first, second = (w.url for w in two_processes)
    async with httpx.AsyncClient(timeout=30) as client:
        show_id, seats = await a_show(client, first, max_seats=100)
        holds = []
        for i in range(0, len(seats), 10):
            answer = await client.post(f"{first}/v1/shows/{show_id}/holds",
                                       json={"seats": seats[i:i + 10], "customer": f"h{i}@example.org"})
            assert answer.status_code == 201, answer.text
            holds.append(answer.json())
        joined = []
        for customer, count in (("early@example.org", 3), ("late@example.org", 2)):
            answer = await client.post(f"{second}/v1/shows/{show_id}/waitlist",
                                       json={"count": count, "customer": customer})
            assert answer.status_code == 201 and answer.json()["status"] == "waiting", answer.text
            joined.append(answer.json())
        async with client.stream("GET", f"{second}/v1/waitlist/{joined[0]['entry_id']}/events") as stream:
            events = stream.aiter_lines()
            assert (await first_event(events))["status"] == "waiting"
            # The release happens on the first process; the stream on the second hears it.
            assert (await client.delete(f"{first}/v1/holds/{holds[0]['hold_id']}")).status_code == 204
            granted = await first_event(events)
        assert granted["status"] == "granted" and len(granted["hold"]["seats"]) == 3
        late = (await client.get(f"{first}/v1/waitlist/{joined[1]['entry_id']}")).json()
        assert late["status"] == "granted" and len(late["hold"]["seats"]) == 2
        assert not set(granted["hold"]["seats"]) & set(late["hold"]["seats"])


async def first_event(lines: object) -> dict[str, object]:
    """The next `data:` payload of a Server-Sent Events stream (5 s at most)."""

    async def read() -> dict[str, object]:
        async for line in lines:  # type: ignore[attr-defined]
            if line.startswith("data:"):
                return json.loads(line[5:])  # type: ignore[no-any-return]
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(read(), 5)


METRIC_LINE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match and match["name"] == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            out.append((labels, float(match["value"])))
    return out


async def test_serve_with_two_workers_adds_up_the_metrics_of_both(
        redis_server: RedisServer, database_url: str, tmp_path: Path) -> None:
    settings = worker_settings(redis_server.url, database_url)
    server = workers.start(settings, tmp_path, workers=2)
    try:
        workers.wait_ready(server)
        holds = 40
        # A fresh connection per request, so the kernel spreads them over both workers.
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            show_id, seats = await a_show(client, server.url, max_seats=5000)
            for i in range(holds):
                answer = await client.post(f"{server.url}/v1/shows/{show_id}/holds",
                                           json={"seats": [seats[i]], "customer": f"m{i}@example.org"})
                assert answer.status_code == 201, answer.text

            async def both_workers_seen() -> str:
                text = (await client.get(f"{server.url}/metrics")).text
                pids = {labels.get("pid") for labels, value in samples(text, "boxoffice_process_up") if value == 1}
                return text if len(pids) == 2 else ""

            text = ""
            for _ in range(100):
                text = await both_workers_seen()
                if text:
                    break
                await asyncio.sleep(0.1)
            assert text, "the metrics name both worker processes"
        held = [v for labels, v in samples(text, "boxoffice_operations_total")
                if labels == {"operation": "hold", "outcome": "ok"}]
        assert held == [holds], "the hold counts of both workers are added up"
        count = [v for labels, v in samples(text, "boxoffice_operation_seconds_count")
                 if labels == {"operation": "hold"}]
        assert count == [holds]
        assert samples(text, "boxoffice_db_connections_open"), "the pool gauges are there"
    finally:
        server.stop()
