"""The schema: migrations apply from empty and twice; constraints reject what a careful
DBA would reject; the seed is deterministic; SQLite and PostgreSQL agree on the schema."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from boxoffice.engine import db, seed
from boxoffice.engine.settings import Settings
from tests.support.services import temporary_database

START = date(2030, 1, 7)


def migrate(url: str) -> list[str]:
    async def run() -> list[str]:
        engine = db.create_engine(Settings(redis_url="redis://unused", database_url=url))
        try:
            return await db.migrate(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def seed_through_admin(url: str, seed_value: int) -> dict[str, int]:
    engine = db.create_engine(Settings(redis_url="redis://unused", database_url=url))
    try:
        return await seed.seed_demo(engine, seed_value, START)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def seeded_pg() -> str:
    with temporary_database() as url:
        migrate(url)
        asyncio.run(seed_through_admin(url, 3))
        yield url


def test_migrations_apply_from_empty_and_are_safe_to_run_twice() -> None:
    with temporary_database() as url:
        first = migrate(url)
        assert first == [p.name for p in db.migration_files()]
        assert migrate(url) == []
        with psycopg.connect(url) as conn:
            recorded = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert recorded == first


def _one_booking(conn: psycopg.Connection, seat: str = "A1", booking: str = "bk_aaaaaaaaaaaaaaaaaaaaaa",
                 hold: str = "H1-aaaaaaaaaaaaaaaaaaaaaa-aaaaaaaaaaaa", show_id: int = 1, hall_id: int | None = None
                 ) -> None:
    hall = hall_id if hall_id is not None else conn.execute(
        "SELECT hall_id FROM shows WHERE id = %s", (show_id,)).fetchone()[0]
    conn.execute("INSERT INTO bookings (id, show_id, hold_id, customer, amount, currency)"
                 " VALUES (%s, %s, %s, 'a@example.org', 1000, 'EUR') ON CONFLICT DO NOTHING",
                 (booking, show_id, hold))
    conn.execute("INSERT INTO booked_seats (booking_id, show_id, hall_id, seat_id, amount)"
                 " VALUES (%s, %s, %s, %s, 1000)", (booking, show_id, hall, seat))


def test_a_seat_cannot_be_sold_twice(seeded_pg: str) -> None:
    with psycopg.connect(seeded_pg) as conn:
        _one_booking(conn)
        with pytest.raises(psycopg.errors.UniqueViolation):
            _one_booking(conn, booking="bk_bbbbbbbbbbbbbbbbbbbbbb", hold="H1-bbbbbbbbbbbbbbbbbbbbbb-bbbbbbbbbbbb")
        conn.rollback()


def test_a_seat_outside_the_shows_hall_is_refused(seeded_pg: str) -> None:
    with psycopg.connect(seeded_pg) as conn:
        # a label that does not exist in the hall
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            _one_booking(conn, seat="ZZ99")
        conn.rollback()
        # a real seat of another hall: the (show, hall) pair does not match
        other_hall = conn.execute("SELECT hall_id FROM shows WHERE hall_id <> "
                                  "(SELECT hall_id FROM shows WHERE id = 1) LIMIT 1").fetchone()[0]
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            _one_booking(conn, seat="A1", hall_id=other_hall)
        conn.rollback()


@pytest.mark.parametrize("statement", [
    "INSERT INTO show_prices (show_id, category, amount) VALUES (1, 'student', -1)",
    "UPDATE show_prices SET amount = -500 WHERE show_id = 1",
    "INSERT INTO bookings (id, show_id, hold_id, customer, amount, currency)"
    " VALUES ('bk_cccccccccccccccccccccc', 1, 'H1-cccccccccccccccccccccc-cccccccccccc', 'c@x.org', -10, 'EUR')",
    "UPDATE seats SET kind = 'sofa' WHERE hall_id = 1 AND id = 'A1'",
    "UPDATE shows SET status = 'maybe' WHERE id = 1",
])
def test_check_constraints_reject_bad_values(seeded_pg: str, statement: str) -> None:
    with psycopg.connect(seeded_pg) as conn:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(statement)
        conn.rollback()


def test_the_seed_is_deterministic() -> None:
    first = list(seed.generate("demo", 11, START))
    again = list(seed.generate("demo", 11, START))
    other = list(seed.generate("demo", 12, START))
    assert first == again
    assert first != other


def test_the_demo_seed_matches_the_brief() -> None:
    tables: dict[str, list[tuple[object, ...]]] = {}
    for table, rows in seed.generate("demo", 1, START):
        tables.setdefault(table, []).extend(rows)
    assert 3 <= len(tables["cities"]) <= 8
    assert len(tables["movies"]) == 12
    assert len({m[1] for m in tables["movies"]}) == 12, "movie titles are unique"
    halls_per_cinema: dict[int, int] = {}
    for hall in tables["halls"]:
        halls_per_cinema[hall[1]] = halls_per_cinema.get(hall[1], 0) + 1
        assert 60 <= hall[3] <= 400
    assert all(2 <= n <= 4 for n in halls_per_cinema.values())
    kinds = {s[5] for s in tables["seats"]}
    assert kinds == {"standard", "wheelchair", "companion"}
    assert {p[1] for p in tables["show_prices"]} == set(seed.CATEGORIES)


def _sqlite_schema(path: Path) -> dict[str, set[tuple[str, bool]]]:
    async def run() -> None:
        engine = db.create_engine(Settings(redis_url=None, database_url=None, embedded_db_path=str(path)))
        await db.migrate(engine)
        await engine.dispose()

    asyncio.run(run())
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    schema = {t: {(r[1], bool(r[3]) or bool(r[5])) for r in conn.execute(f"PRAGMA table_info({t})")}
              for t in tables}
    conn.close()
    return schema


def test_sqlite_and_postgresql_schemas_do_not_drift(tmp_path: Path) -> None:
    """One definition (boxoffice/sql/) runs on both; this proves the result is the same tables and columns."""
    lite = _sqlite_schema(tmp_path / "schema.sqlite3")
    with temporary_database() as url:
        migrate(url)
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT c.table_name, c.column_name, c.is_nullable = 'NO' FROM information_schema.columns c"
                " WHERE c.table_schema = 'public'").fetchall()
    pg: dict[str, set[tuple[str, bool]]] = {}
    for table, column, not_null in rows:
        pg.setdefault(table, set()).add((column, not_null))
    assert set(lite) == set(pg)
    for table in pg:
        assert {c for c, _ in lite[table]} == {c for c, _ in pg[table]}, table


async def test_sqlite_enforces_the_same_unique_seat_rule(tmp_path: Path) -> None:
    path = tmp_path / "rule.sqlite3"
    engine = db.create_engine(Settings(redis_url=None, database_url=None, embedded_db_path=str(path)))
    await db.migrate(engine)
    await seed.seed_demo(engine, 1, START)
    await engine.dispose()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    hall = conn.execute("SELECT hall_id FROM shows WHERE id = 1").fetchone()[0]
    conn.execute("INSERT INTO bookings (id, show_id, hold_id, customer, amount, currency)"
                 " VALUES (?, 1, ?, 'a@x.org', 1, 'EUR')",
                 ("bk_aaaaaaaaaaaaaaaaaaaaaa", "H1-aaaaaaaaaaaaaaaaaaaaaa-aaaaaaaaaaaa"))
    conn.execute("INSERT INTO booked_seats VALUES ('bk_aaaaaaaaaaaaaaaaaaaaaa', 1, ?, 'A1', 1)", (hall,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO booked_seats VALUES ('bk_aaaaaaaaaaaaaaaaaaaaaa', 1, ?, 'A1', 1)", (hall,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO booked_seats VALUES ('bk_aaaaaaaaaaaaaaaaaaaaaa', 1, ?, 'ZZ99', 1)", (hall,))
    conn.close()



def test_the_generated_demo_never_puts_two_shows_in_one_hall_at_once() -> None:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table, rows in seed.generate("demo", 1, START):
        tables.setdefault(table, []).extend(rows)
    runtime = {m[0]: m[2] for m in tables["movies"]}
    by_hall: dict[int, list[tuple[datetime, datetime]]] = {}
    for _, movie_id, hall_id, starts, _, _ in tables["shows"]:
        by_hall.setdefault(hall_id, []).append((starts, starts + timedelta(minutes=runtime[movie_id])))
    for spans in by_hall.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


def test_the_seed_creates_through_the_admin_code_every_change_recorded(seeded_pg: str) -> None:
    with psycopg.connect(seeded_pg) as conn:
        changes = dict(conn.execute("SELECT action, count(*) FROM admin_changes WHERE token_name = 'seed'"
                                    " GROUP BY action").fetchall())
        made = {f"create_{thing}": conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
                for thing, table in [("city", "cities"), ("cinema", "cinemas"), ("hall", "halls"),
                                     ("movie", "movies"), ("show", "shows")]}
        assert changes == made
        assert all(n > 0 for n in made.values())
        # Each show's prices are those of its hall's categories, no more, no fewer.
        mismatched = conn.execute(
            "SELECT s.id FROM shows s WHERE"
            " (SELECT array_agg(DISTINCT category ORDER BY category) FROM seats WHERE hall_id = s.hall_id)"
            " <> (SELECT array_agg(category ORDER BY category) FROM show_prices WHERE show_id = s.id)").fetchall()
        assert mismatched == []
        overlapping = conn.execute(
            "SELECT a.id, b.id FROM shows a JOIN movies ma ON ma.id = a.movie_id"
            " JOIN shows b ON b.hall_id = a.hall_id AND a.id < b.id JOIN movies mb ON mb.id = b.movie_id"
            " WHERE b.starts_at < a.starts_at + ma.runtime_min * interval '1 minute'"
            " AND a.starts_at < b.starts_at + mb.runtime_min * interval '1 minute'").fetchall()
        assert overlapping == []
