"""The two backends engine tests run on (the real Redis and PostgreSQL, or embedded
fakeredis + SQLite), the settings a test gets on them, and leaving them as found: sales
tables emptied before, the test's own Redis key prefix dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import psycopg

from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine

# Engine tests that should also run embedded: @pytest.mark.parametrize('backend', BOTH, indirect=True).
BOTH = ["real", "embedded"]
SALES_TABLES = "simulated_payments, idempotency_keys, payments, booked_seats, cancellations, bookings"

# A maker of engine contexts with changed settings (short pins, short holds...) on the test's
# key prefix and database: the `tuned` fixture.
Tuned = Callable[..., Awaitable[Engine]]


def base_settings(backend: str, redis_url: str, database_url: str, embedded_db_path: str) -> Settings:
    common = dict(hold_ttl_s=300, key_prefix=f"t{uuid.uuid4().hex[:10]}", confirm_grace_s=1.0,
                  reconcile_interval_s=3600.0, browse_cache_s=0.0, rate_limit_holds_per_min=0,
                  rate_limit_ip_per_min=0)
    if backend == "embedded":
        return Settings(redis_url=None, database_url=None, embedded_db_path=embedded_db_path, **common)
    return Settings(redis_url=redis_url, database_url=database_url, **common)


def empty_sales_tables(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SALES_TABLES}")


def settings_on_empty_sales(redis_url: str, database_url: str, tag: str, **changes: object) -> Settings:
    """Settings of a test that counts every sale: the sales tables emptied first, a key prefix
    of its own, browse caching and the abuse limits off, a 1 s confirm grace; then `changes`."""
    empty_sales_tables(database_url)
    return Settings(redis_url=redis_url, database_url=database_url, key_prefix=f"{tag}{uuid.uuid4().hex[:10]}",
                    confirm_grace_s=1.0, browse_cache_s=0.0, rate_limit_holds_per_min=0,
                    rate_limit_ip_per_min=0).with_changes(**changes)


async def empty_embedded_sales(context: Engine) -> None:
    """The embedded SQLite file is the session's: a test starts from no sales in it."""
    if context.settings.embedded:
        from sqlalchemy import text

        async with context.sql.begin() as conn:
            for table in SALES_TABLES.split(", "):
                await conn.execute(text(f"DELETE FROM {table}"))


async def drop_prefix(context: Engine) -> None:
    """Deletes every key of the context's prefix (on a cluster too: scan_iter visits every
    primary, and delete splits its keys by slot)."""
    keys = [k async for k in context.redis.scan_iter(match=f"{context.keys.prefix}:*", count=1000)]
    for i in range(0, len(keys), 500):
        await context.redis.delete(*keys[i : i + 500])
