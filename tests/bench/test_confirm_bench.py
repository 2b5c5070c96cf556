"""bench/confirm_bench.py keeps working: a few confirms against a real service process on a
database of its own (the bench adds its hall to the catalog). Speed is not asserted here;
the books must balance and every step of the confirm must be timed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench import confirm_bench
from boxoffice.engine.settings import Settings
from tests.support.crashable import Services
from tests.support.services import migrated_database


@pytest.fixture
def own_database() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.fixture
def services(settings: Settings, own_database: str, tmp_path: Path) -> Iterator[Services]:
    started = Services(settings.with_changes(database_url=own_database), tmp_path)
    yield started
    started.stop_all()
    client = redis.Redis.from_url(settings.redis_url or "")
    keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


async def test_the_confirm_bench_balances_its_books_and_times_every_step(services: Services,
                                                                         own_database: str) -> None:
    service = await services.start()
    args = confirm_bench.parser().parse_args([
        service.url, "--database-url", own_database, "--redis-url", services.settings.redis_url or "",
        "--confirms", "24", "--clients", "4"])
    result = await confirm_bench.run(args)
    assert result["statuses"] == {"201": 24}
    assert result["books"] == {"bookings": 24, "charges": 24, "captured_payments": 24}
    assert set(confirm_bench.STEPS) | {"total"} <= set(result["steps"])
    assert all(step["calls"] == 24 for step in result["steps"].values())
    assert result["cpu_ms_per_confirm"]["service"] > 0
    assert "where a confirm's time goes" in confirm_bench.report(result)
