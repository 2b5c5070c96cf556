"""The bench's own corner of the catalog: a city, a cinema, a hall of the size the run asks
for (2,000 seats by default; the demo halls have 60-400) and a movie, made once and then
reused, plus a brand-new show for every run, so a run never meets the seat state, sales or
caches of an earlier one. Works on a demo-seeded database, an empty migrated one, or the
embedded service's SQLite file."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bench.sqldb import BenchDb
from boxoffice.engine import seed

CITY_NAME, CITY_COUNTRY = "Spike City", "EU"
CINEMA_NAME = "Release Day Cinema"
MOVIE_TITLE = "Release Day"


@dataclass(frozen=True)
class SpikeShow:
    show_id: int
    city_id: int
    movie_id: int
    hall_id: int
    seat_count: int


def _next_id(db: BenchDb, table: str) -> int:
    return int(db.value(f"SELECT coalesce(max(id), 0) + 1 FROM {table}"))


def _find_or_insert(db: BenchDb, table: str, where: str, params: tuple[object, ...],
                    columns: tuple[str, ...], values: tuple[object, ...]) -> int:
    found = db.value(f"SELECT id FROM {table} WHERE {where}", params)
    if found is not None:
        return int(found)
    new_id = _next_id(db, table)
    db.insert_many(table, ("id", *columns), [(new_id, *values)])
    return new_id


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def create_spike_show(db: BenchDb, seats: int = 2000, sale_opens_at: datetime | None = None) -> SpikeShow:
    """A new open show, days ahead, in the bench hall of `seats` seats; with `sale_opens_at`,
    one whose sales open then, behind its release queue (docs/API.md)."""
    if not 10 <= seats <= 5000:
        raise ValueError("a hall has 10 to 5,000 seats")
    with db.transaction():
        city_id = _find_or_insert(db, "cities", "name = %s AND country = %s", (CITY_NAME, CITY_COUNTRY),
                                  ("name", "country"), (CITY_NAME, CITY_COUNTRY))
        cinema_id = _find_or_insert(db, "cinemas", "city_id = %s AND name = %s", (city_id, CINEMA_NAME),
                                    ("city_id", "name", "address"), (city_id, CINEMA_NAME, "1 Premiere Square"))
        movie_id = _find_or_insert(
            db, "movies", "title = %s", (MOVIE_TITLE,),
            ("title", "runtime_min", "rating", "release_date", "genres"),
            (MOVIE_TITLE, 128, "PG-13", date.today().isoformat(), "action,sci-fi"),
        )
        hall_name = f"Spike {seats}"
        hall_id = db.value("SELECT id FROM halls WHERE cinema_id = %s AND name = %s", (cinema_id, hall_name))
        if hall_id is None:
            hall_id = _next_id(db, "halls")
            layout = seed.hall_seats(hall_id, seats, random.Random(hall_id))
            db.insert_many("halls", ("id", "cinema_id", "name", "seat_count"),
                           [(hall_id, cinema_id, hall_name, len(layout))])
            db.insert_many("seats", seed.TABLE_COLUMNS["seats"], layout)
        hall_id = int(hall_id)
        seat_count = int(db.value("SELECT count(*) FROM seats WHERE hall_id = %s", (hall_id,)))
        # One new slot per run: UNIQUE (hall_id, starts_at); far enough ahead to stay open.
        latest = db.value("SELECT max(starts_at) FROM shows WHERE hall_id = %s", (hall_id,))
        soonest = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2)
        starts_at = max(soonest, _as_datetime(latest) + timedelta(minutes=5)) if latest else soonest
        show_id = _next_id(db, "shows")
        db.insert_many("shows", ("id", "movie_id", "hall_id", "starts_at", "status", "currency"),
                       [(show_id, movie_id, hall_id, starts_at, "open", "EUR")])
        if sale_opens_at is not None:
            db.execute("UPDATE shows SET sale_opens_at = %s WHERE id = %s", (sale_opens_at, show_id))
        db.insert_many("show_prices", ("show_id", "category", "amount"),
                       [(show_id, category, seed.BASE_PRICES[category]) for category in seed.CATEGORIES])
    return SpikeShow(show_id, city_id, movie_id, hall_id, seat_count)
