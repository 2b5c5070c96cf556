"""The SQL database: one async engine, ordered migrations from sql/, and small helpers
that keep PostgreSQL and the embedded SQLite behaving alike."""

from __future__ import annotations

import logging
import re
import secrets
from datetime import UTC, date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from boxoffice.engine.settings import Settings
from boxoffice.engine.times import RFC3339

log = logging.getLogger(__name__)

# The migrations ship inside the package (package data), found wherever it is installed.
SQL_DIR = resources.files("boxoffice") / "sql"
# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_ID = 0x626F786F


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.sqlalchemy_url()
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA busy_timeout = 30000")
            cursor.close()

        return engine
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def is_sqlite(conn: AsyncConnection | AsyncEngine) -> bool:
    return conn.dialect.name == "sqlite"


MIGRATION_NAME = re.compile(r"^\d{3}_\w+\.sql$")


def migration_files() -> list[Traversable]:
    return sorted((f for f in SQL_DIR.iterdir() if MIGRATION_NAME.match(f.name)), key=lambda f: f.name)


def split_statements(sql: str) -> list[str]:
    """Our migrations keep to plain DDL, so a statement ends with ';' at a line end."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    return [part.strip() for part in body.split(";\n") if part.strip().rstrip(";").strip()]


async def migrate(engine: AsyncEngine) -> list[str]:
    """Apply the migrations not yet applied; safe to run twice and from several processes."""
    applied_now: list[str] = []
    async with engine.begin() as conn:
        if not is_sqlite(conn):
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version TEXT PRIMARY KEY,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
        )
        done = {row[0] for row in await conn.execute(text("SELECT version FROM schema_migrations"))}
        for path in migration_files():
            if path.name in done:
                continue
            for statement in split_statements(path.read_text()):
                await conn.exec_driver_sql(statement.rstrip(";"))
            await conn.execute(
                text("INSERT INTO schema_migrations (version) VALUES (:v)"), {"v": path.name}
            )
            applied_now.append(path.name)
            log.info("applied migration %s", path.name)
        await conn.execute(
            text(
                "INSERT INTO service_secrets (name, value) VALUES ('id_signing', :v)"
                " ON CONFLICT (name) DO NOTHING"
            ),
            {"v": secrets.token_hex(32)},
        )
    return applied_now


async def load_secret(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT value FROM service_secrets WHERE name = 'id_signing'"))
        ).first()
    if row is None:
        raise RuntimeError("the database has no signing secret: run `boxoffice migrate` first")
    return str(row[0])


def as_utc(value: datetime | str) -> datetime:
    """PostgreSQL gives aware datetimes; SQLite gives ISO strings. Normalise both."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_date(value: date | str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value


def db_time(conn: AsyncConnection, value: datetime) -> datetime | str:
    """A UTC time as a bind parameter: SQLite compares text, so give it one fixed format."""
    value = value.astimezone(UTC).replace(microsecond=0)
    if is_sqlite(conn):
        return value.strftime("%Y-%m-%d %H:%M:%S+00:00")
    return value


def rfc3339(value: datetime | str) -> str:
    return as_utc(value).strftime(RFC3339)


def elapsed_s(conn: AsyncConnection, earlier: str, later: str | None = None) -> str:
    """SQL for the seconds from column `earlier` to column `later` (None: the database's
    clock now), as a number in both dialects. Ages of rows the database stamped are measured
    with this on the database's own clock, never against the app's (the app's clock may be
    off, and differs from host to host). SQLite keeps times as text of either shape
    (CURRENT_TIMESTAMP's or db_time's); julianday reads both."""
    if is_sqlite(conn):
        now = "'now'"
        return f"((julianday({later or now}) - julianday({earlier})) * 86400.0)"
    return f"EXTRACT(EPOCH FROM ({later or 'CURRENT_TIMESTAMP'} - {earlier}))"
