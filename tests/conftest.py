"""Test fixtures: real PostgreSQL and Redis of the tests' own (tests/support/services.py),
the demo catalog seeded once, and an Engine per test with its own Redis key
prefix and empty sales tables. Engine tests also run on the embedded backend
(fakeredis + SQLite) through the `backend` parameter. Fixtures only: the helpers they
use live in tests/support/ (backends.py, shows.py, services.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from boxoffice.engine import seed
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import Tuned, base_settings, drop_prefix, empty_embedded_sales, empty_sales_tables
from tests.support.services import RedisServer, temporary_database
from tests.support.shows import SEED, ShowRef, pick_show, seed_start_date

# A hung async test names the await it hangs in (tests/support/hang_report.py).
pytest_plugins = ["tests.support.hang_report"]


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


@pytest.fixture(scope="session")
def embedded_db_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("embedded") / "boxoffice.sqlite3")


@pytest.fixture(params=["real"])
def backend(request: pytest.FixtureRequest) -> str:
    """Engine tests that should also run embedded use @pytest.mark.parametrize('backend', BOTH, indirect=True)
    (BOTH in tests/support/backends.py)."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, redis_server: RedisServer, database_url: str, embedded_db_path: str) -> Settings:
    if backend == "real":
        empty_sales_tables(database_url)
    return base_settings(backend, redis_server.url, database_url, embedded_db_path)


@pytest.fixture
async def ctx(settings: Settings) -> AsyncIterator[Engine]:
    context = await open_engine(settings, background=False)
    await empty_embedded_sales(context)
    yield context
    await context.redis.flushdb() if settings.embedded else await drop_prefix(context)
    await context.close()


@pytest.fixture
async def tuned(ctx: Engine) -> AsyncIterator[Tuned]:
    """Makes engine contexts with changed settings (short pins, short holds...) on the test's
    key prefix and database; each is closed, and its keys dropped, when the test ends."""
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
