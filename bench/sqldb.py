"""The bench's own small SQL access (setup and audit): PostgreSQL through psycopg, or the
embedded service's SQLite file. Plain blocking DB-API: it runs before and after the load,
never during it. Queries are written with %s placeholders and adapted for SQLite."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg


class BenchDb:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = not url.startswith(("postgresql://", "postgres://"))
        if self.sqlite:
            path = url.removeprefix("sqlite:///").removeprefix("sqlite+aiosqlite:///")
            self.conn: Any = sqlite3.connect(path, timeout=30)
            self.conn.execute("PRAGMA busy_timeout = 30000")
        else:
            self.conn = psycopg.connect(url, autocommit=True)

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.sqlite else sql

    def _value(self, value: Any) -> Any:
        # The embedded schema keeps times as text in this exact shape (boxoffice/engine/seed.py).
        if self.sqlite and isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S+00:00")
        return value

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(self._sql(sql), [self._value(p) for p in params])
        return [tuple(r) for r in cursor.fetchall()]

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        found = self.rows(sql, params)
        return found[0][0] if found else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(self._sql(sql), [self._value(p) for p in params])

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("%s" for _ in columns)
        sql = self._sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})")
        prepared = [[self._value(v) for v in row] for row in rows]
        if self.sqlite:
            self.conn.executemany(sql, prepared)
        else:
            with self.conn.cursor() as cursor:
                cursor.executemany(sql, prepared)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self.sqlite:
            try:
                yield
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()
        else:
            with self.conn.transaction():
                yield

    def commit(self) -> None:
        if self.sqlite:
            self.conn.commit()

    def close(self) -> None:
        self.commit()
        self.conn.close()
