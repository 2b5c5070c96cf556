"""The demo catalog the test session seeds, and picking a show of it for a test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from boxoffice.engine.wiring import Engine

SEED = 7


def seed_start_date() -> date:
    # Shows start from tomorrow, so every seeded show is in the future all day.
    return (datetime.now(UTC) + timedelta(days=1)).date()


@dataclass(frozen=True)
class ShowRef:
    show_id: int
    hall_id: int
    seat_ids: list[str]


async def pick_show(context: Engine, min_seats: int = 60, max_seats: int = 5000) -> ShowRef:
    """An open future show of a hall with a seat count in range (deterministic)."""
    (show,) = await pick_shows(context, 1, min_seats, max_seats)
    return show


async def pick_shows(context: Engine, count: int, min_seats: int = 60, max_seats: int = 5000) -> list[ShowRef]:
    """`count` distinct open future shows of halls with a seat count in range (deterministic)."""
    from sqlalchemy import text

    from boxoffice.engine.db import db_time

    async with context.sql.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT s.id, s.hall_id FROM shows s JOIN halls h ON h.id = s.hall_id"
            " WHERE s.starts_at > :soon AND h.seat_count BETWEEN :lo AND :hi ORDER BY s.id LIMIT :n"),
            {"soon": db_time(conn, datetime.now(UTC) + timedelta(hours=2)), "lo": min_seats, "hi": max_seats,
             "n": count},
        )).all()
    assert len(rows) == count, "the demo catalog has too few shows of that size"
    return [ShowRef(int(show_id), int(hall_id), [s.id for s in (await context.catalog.hall_plan(int(hall_id))).seats])
            for show_id, hall_id in rows]
