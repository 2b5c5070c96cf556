"""Test fixtures: real PostgreSQL and Redis of the tests' own (tests/support/services.py),
the demo catalog seeded once, and an Engine per test with its own Redis key
prefix and empty sales tables. Engine tests also run on the embedded backend
(fakeredis + SQLite) through the `backend` parameter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from boxoffice.engine import seed
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.services import RedisServer, temporary_database

SEED = 7
SALES_TABLES = "simulated_payments, idempotency_keys, payments, booked_seats, cancellations, bookings"


def settings_on_empty_sales(redis_url: str, database_url: str, tag: str, **changes: object) -> Settings:
    """Settings of a test that counts every sale: the sales tables emptied first, a key prefix
    of its own, browse caching and the abuse limits off, a 1 s confirm grace; then `changes`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SALES_TABLES}")
    return Settings(redis_url=redis_url, database_url=database_url, key_prefix=f"{tag}{uuid.uuid4().hex[:10]}",
                    confirm_grace_s=1.0, browse_cache_s=0.0, rate_limit_holds_per_min=0,
                    rate_limit_ip_per_min=0).with_changes(**changes)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database, migrated and seeded with the demo catalog."""
    import asyncio

    from boxoffice.engine import db

    with temporary_database() as url:
        settings = Settings(redis_url="redis://unused", database_url=url)

        async def migrate_and_seed() -> None:
            engine = db.create_engine(settings)
            await db.migrate(engine)
            await seed.seed_demo(engine, SEED, seed_start_date())
            await engine.dispose()

        asyncio.run(migrate_and_seed())
        yield url


def seed_start_date() -> datetime.date:  # type: ignore[valid-type]
    # Shows start from tomorrow, so every seeded show is in the future all day.
    return (datetime.now(UTC) + timedelta(days=1)).date()


@pytest.fixture(scope="session")
def embedded_db_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("embedded") / "boxoffice.sqlite3")


def base_settings(backend: str, redis_url: str, database_url: str, embedded_db_path: str) -> Settings:
    common = dict(hold_ttl_s=300, key_prefix=f"t{uuid.uuid4().hex[:10]}", confirm_grace_s=1.0,
                  reconcile_interval_s=3600.0, browse_cache_s=0.0, rate_limit_holds_per_min=0,
                  rate_limit_ip_per_min=0)
    if backend == "embedded":
        return Settings(redis_url=None, database_url=None, embedded_db_path=embedded_db_path, **common)
    return Settings(redis_url=redis_url, database_url=database_url, **common)


@pytest.fixture(params=["real"])
def backend(request: pytest.FixtureRequest) -> str:
    """Engine tests that should also run embedded use @pytest.mark.parametrize('backend', BOTH, indirect=True)."""
    return str(request.param)


BOTH = ["real", "embedded"]


@pytest.fixture
def settings(backend: str, redis_server: RedisServer, database_url: str, embedded_db_path: str) -> Settings:
    if backend == "real":
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {SALES_TABLES}")
    return base_settings(backend, redis_server.url, database_url, embedded_db_path)


async def empty_embedded_sales(context: Engine) -> None:
    """The embedded SQLite file is the session's: a test starts from no sales in it."""
    if context.settings.embedded:
        from sqlalchemy import text

        async with context.sql.begin() as conn:
            for table in SALES_TABLES.split(", "):
                await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[Engine]:
    context = await open_engine(settings, background=False)
    await empty_embedded_sales(context)
    yield context
    await context.redis.flushdb() if settings.embedded else await drop_prefix(context)
    await context.close()


# A maker of engine contexts with changed settings (short pins, short holds...) on the test's
# key prefix and database; each is closed, and its keys dropped, when the test ends.
Tuned = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def tuned(ctx: Engine) -> AsyncIterator[Tuned]:
    opened: list[Engine] = []

    async def make(**changes: Any) -> Engine:
        opened.append(await open_engine(ctx.settings.with_changes(**changes), background=False))
        return opened[-1]

    yield make
    for context in opened:
        if context.keys.prefix != ctx.keys.prefix:
            keys = [k async for k in ctx.redis.scan_iter(match=f"{context.keys.prefix}:*", count=1000)]
            if keys:
                await ctx.redis.delete(*keys)
        await context.close()


async def drop_prefix(context: Engine) -> None:
    """Deletes every key of the context's prefix (on a cluster too: scan_iter visits every
    primary, and delete splits its keys by slot)."""
    keys = [k async for k in context.redis.scan_iter(match=f"{context.keys.prefix}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await context.redis.delete(*keys[i : i + 500])


@dataclass(frozen=True)
class ShowRef:
    show_id: int
    hall_id: int
    seat_ids: list[str]


async def pick_show(context: Engine, min_seats: int = 60, max_seats: int = 5000) -> ShowRef:
    """An open future show of a hall with a seat count in range (deterministic)."""
    from sqlalchemy import text

    from boxoffice.engine.db import db_time

    async with context.sql.connect() as conn:
        row = (await conn.execute(text(
            "SELECT s.id, s.hall_id FROM shows s JOIN halls h ON h.id = s.hall_id"
            " WHERE s.starts_at > :soon AND h.seat_count BETWEEN :lo AND :hi ORDER BY s.id LIMIT 1"),
            {"soon": db_time(conn, datetime.now(UTC) + timedelta(hours=2)), "lo": min_seats, "hi": max_seats},
        )).first()
    assert row is not None, "the demo catalog has no show of that size"
    plan = await context.catalog.hall_plan(int(row[1]))
    return ShowRef(int(row[0]), int(row[1]), [s.id for s in plan.seats])


@pytest.fixture
async def show(ctx: Engine) -> ShowRef:
    return await pick_show(ctx)


@pytest.fixture
async def client(ctx: Engine) -> AsyncIterator[httpx.AsyncClient]:
    from boxoffice.api.app import create_app

    app = create_app(ctx.settings, engine=ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


ROOT = Path(__file__).resolve().parent.parent
