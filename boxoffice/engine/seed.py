"""Deterministic catalog generator: the same --seed and --start-date give the same data.

`demo` is a small, friendly set, created through the admin API's own code
(create_through_admin): the seed command and the embedded first run make what an operator
would, checked and recorded the same way. `capacity` matches the original capacity estimate
(500 cities x 10 cinemas x 2,000 seats a cinema, 2 shows a day per hall) and is bulk loaded
with COPY (`load`) so it takes minutes, not hours: a benchmark's catalog, not an operator's.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine.admin import (
    CatalogChanges,
    CinemaRequest,
    CityRequest,
    HallRequest,
    MovieRequest,
    SeatRequest,
    ShowRequest,
)
from boxoffice.engine.catalog import Catalog
from boxoffice.engine.limits import SEAT_CATEGORIES

CATEGORIES = SEAT_CATEGORIES  # every category a seat may have (engine/limits.py)
BASE_PRICES = {"standard": 1100, "premium": 1450, "vip": 1900}
SEAT_PITCH = 10  # plan units between seat centres
AISLE_GAP = 10  # extra plan units where an aisle cuts a row

CITY_NAMES = [
    ("Amsterdam", "NL"), ("Barcelona", "ES"), ("Berlin", "DE"), ("Lisbon", "PT"),
    ("Lyon", "FR"), ("Milan", "IT"), ("Oslo", "NO"), ("Prague", "CZ"),
    ("Vienna", "AT"), ("Warsaw", "PL"), ("Dublin", "IE"), ("Helsinki", "FI"),
]
TITLE_WORDS_A = ["The Last", "Midnight", "Silent", "Crimson", "Electric", "Lost", "Golden",
                 "Hidden", "Broken", "Infinite", "Northern", "Paper"]
TITLE_WORDS_B = ["Harbour", "Signal", "Garden", "Comet", "Orchard", "Frontier", "Lantern",
                 "Kingdom", "Tide", "Circuit", "Summer", "Machine"]
GENRES = ["drama", "comedy", "thriller", "sci-fi", "animation", "documentary", "action",
          "romance", "horror", "family"]
RATINGS = ["G", "PG", "PG-13", "R", "12", "16"]
STREETS = ["Main Street", "Station Road", "Market Square", "River Lane", "Park Avenue",
           "Cinema Plaza", "Harbour Street", "Old Town Road"]


@dataclass(frozen=True)
class Scale:
    cities: int
    cinemas_per_city: int
    halls_per_cinema: tuple[int, int]
    seats_per_hall: tuple[int, int]
    movies: int
    days: int
    shows_per_hall_per_day: int


SCALES = {
    "demo": Scale(cities=4, cinemas_per_city=2, halls_per_cinema=(2, 4),
                  seats_per_hall=(60, 400), movies=12, days=4, shows_per_hall_per_day=3),
    # 2,000 seats a cinema: 5 halls of 400.
    "capacity": Scale(cities=500, cinemas_per_city=10, halls_per_cinema=(5, 5),
                      seats_per_hall=(400, 400), movies=40, days=1, shows_per_hall_per_day=2),
}

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "cities": ("id", "name", "country"),
    "movies": ("id", "title", "runtime_min", "rating", "release_date", "genres"),
    "cinemas": ("id", "city_id", "name", "address"),
    "halls": ("id", "cinema_id", "name", "seat_count"),
    "seats": ("hall_id", "id", "row_label", "number", "category", "kind", "x", "y"),
    "shows": ("id", "movie_id", "hall_id", "starts_at", "status", "currency"),
    "show_prices": ("show_id", "category", "amount"),
}
TABLE_ORDER = tuple(TABLE_COLUMNS)


def row_label(index: int) -> str:
    """A, B, ... Z, AA, AB, ... like real halls."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def hall_seats(hall_id: int, seat_target: int, rng: random.Random) -> list[tuple[Any, ...]]:
    """Rows of seats with one or two aisles; front rows standard, middle premium, back vip;
    wheelchair spaces with a companion seat at the ends of the last row."""
    per_row = max(8, min(40, round((seat_target * 1.6) ** 0.5)))
    rows = max(3, -(-seat_target // per_row))
    aisles = [per_row // 2] if per_row < 20 else [per_row // 4, per_row - per_row // 4]
    seats: list[tuple[Any, ...]] = []
    made = 0
    for r in range(rows):
        label = row_label(r)
        in_row = min(per_row, seat_target - made)
        if in_row <= 0:
            break
        category = "standard" if r < rows * 0.45 else ("premium" if r < rows * 0.8 else "vip")
        offset = (per_row - in_row) // 2  # centre a short last row
        for n in range(1, in_row + 1):
            column = offset + n - 1
            x = column * SEAT_PITCH + sum(AISLE_GAP for a in aisles if column >= a)
            kind = "standard"
            if r == rows - 1 and n in (1, in_row):
                kind = "wheelchair"
            elif r == rows - 1 and n in (2, in_row - 1):
                kind = "companion"
            seats.append((hall_id, f"{label}{n}", label, n, category, kind, x, r * SEAT_PITCH))
        made += in_row
    del rng  # layout is fully determined by the target; kept for future variety
    return seats


CLEANING = timedelta(minutes=20)  # between a show's end and the next show in its hall


def next_start(starts: datetime, runtime_min: int) -> datetime:
    """When the hall's next show may start: after this one and the cleaning, on a quarter hour."""
    free = starts + timedelta(minutes=runtime_min) + CLEANING
    return free + timedelta(minutes=-free.minute % 15)


def generate(scale_name: str, seed: int, start: date) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Yields (table, rows) batches in foreign-key order."""
    scale = SCALES[scale_name]
    rng = random.Random(seed)
    cities = []
    for i in range(scale.cities):
        if i < len(CITY_NAMES):
            name, country = CITY_NAMES[i]
        else:
            name, country = f"City {i + 1:04d}", CITY_NAMES[i % len(CITY_NAMES)][1]
        cities.append((i + 1, name, country))
    yield "cities", cities

    movies = []
    titles = [f"{a} {b}" for a in TITLE_WORDS_A for b in TITLE_WORDS_B]
    rng.shuffle(titles)
    for i in range(scale.movies):
        title = titles[i % len(titles)]
        if i >= len(titles):
            title += f" {i // len(titles) + 1}"
        released = start - timedelta(days=rng.randint(0, 60))
        genres = ",".join(sorted(rng.sample(GENRES, rng.randint(1, 3))))
        movies.append((i + 1, title, rng.randint(80, 180), rng.choice(RATINGS),
                       released.isoformat(), genres))
    yield "movies", movies

    hall_id = show_id = 0
    cinema_id = 0
    for city in cities:
        cinemas, halls, seats, shows, prices = [], [], [], [], []
        for c in range(scale.cinemas_per_city):
            cinema_id += 1
            cinemas.append((cinema_id, f"{city[1]} Cinema {c + 1}",
                            f"{rng.randint(1, 200)} {rng.choice(STREETS)}, {city[1]}"))
            for h in range(rng.randint(*scale.halls_per_cinema)):
                hall_id += 1
                seat_rows = hall_seats(hall_id, rng.randint(*scale.seats_per_hall), rng)
                halls.append((hall_id, cinema_id, f"Hall {h + 1}", len(seat_rows)))
                seats.extend(seat_rows)
                categories = sorted({row[4] for row in seat_rows})  # the hall's: a price for each
                for day in range(scale.days):
                    # A hall shows one movie at a time: each show starts after the last one
                    # ended and the hall was cleaned (the admin API refuses overlaps).
                    starts = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(
                        days=day, hours=rng.choice((13, 14, 15, 16)), minutes=rng.choice((0, 15, 30, 45)))
                    for _ in range(scale.shows_per_hall_per_day):
                        show_id += 1
                        movie_id = rng.randint(1, scale.movies)
                        shows.append((show_id, movie_id, hall_id, starts, "open", "EUR"))
                        bump = rng.choice((0, 0, 100, 200))
                        prices.extend((show_id, cat, BASE_PRICES[cat] + bump) for cat in categories)
                        starts = next_start(starts, movies[movie_id - 1][2])
        yield "cinemas", [(cid, city[0], name, addr) for cid, name, addr in cinemas]
        yield "halls", halls
        yield "seats", seats
        yield "shows", shows
        yield "show_prices", prices


SEED_OPERATOR = "seed"  # the name the seed's changes are recorded under (admin_changes)


async def create_through_admin(changes: CatalogChanges, scale_name: str, seed: int, start: date,
                               now: datetime | None = None) -> dict[str, int]:
    """Creates the generated catalog with the admin API's own code (engine/admin.py), so the
    seed passes the same checks as an operator's changes and is recorded the same way.
    Shows that would start before `now` are left out: the admin API refuses them too.
    Ids are the ones the admin code gives; they equal the generator's on an empty database."""
    now = now or datetime.now(UTC)
    counts = dict.fromkeys(TABLE_ORDER, 0)
    made: dict[tuple[str, int], int] = {}  # (table, generated id) -> id given
    halls: list[tuple[Any, ...]] = []
    shows: list[tuple[Any, ...]] = []

    async def create(table: str, generated_id: int, create_it: Any) -> None:
        made[table, generated_id] = (await create_it).id
        counts[table] += 1

    for table, rows in generate(scale_name, seed, start):
        if table == "cities":
            for id_, name, country in rows:
                await create(table, id_, changes.create_city(SEED_OPERATOR, CityRequest(name, country)))
        elif table == "movies":
            for id_, title, runtime, rating, released, genres in rows:
                await create(table, id_, changes.create_movie(SEED_OPERATOR, MovieRequest(
                    title, runtime, rating, date.fromisoformat(released), genres.split(","))))
        elif table == "cinemas":
            for id_, city_id, name, address in rows:
                await create(table, id_, changes.create_cinema(
                    SEED_OPERATOR, CinemaRequest(made["cities", city_id], name, address)))
        elif table == "halls":
            halls = list(rows)
        elif table == "seats":
            plans: dict[int, list[SeatRequest]] = {}
            for hall_id, id_, row, number, category, kind, x, y in rows:
                plans.setdefault(hall_id, []).append(SeatRequest(id_, row, number, x, y, category, kind))
            for id_, cinema_id, name, _ in halls:
                await create("halls", id_, changes.create_hall(
                    SEED_OPERATOR, HallRequest(made["cinemas", cinema_id], name, plans[id_])))
                counts["seats"] += len(plans[id_])
        elif table == "shows":
            shows = list(rows)
        elif table == "show_prices":
            prices: dict[int, dict[str, int]] = {}
            for show_id, category, amount in rows:
                prices.setdefault(show_id, {})[category] = amount
            openings = demo_openings([(id_, starts_at) for id_, _, _, starts_at, _, _ in shows], now)
            for id_, movie_id, hall_id, starts_at, _, currency in shows:
                if starts_at <= now:
                    continue
                opens, order = openings.get(id_, (None, "arrival"))
                wanted = ShowRequest(made["halls", hall_id], made["movies", movie_id], starts_at, prices[id_],
                                     currency, sale_opens_at=opens, queue_order=order)
                await create("shows", id_, changes.create_show(SEED_OPERATOR, wanted))
                counts["show_prices"] += len(prices[id_])
    return counts


# The demo's shows whose sales open soon, through the release queue (docs/API.md, "Release
# queue"): minutes from seeding, and the queue's order. The last shows by id get them, so
# the first shows (which tests and benchmarks pick) stay on sale at once.
DEMO_OPENINGS = ((10, "arrival"), (30, "shuffle_before_open"), (120, "arrival"))


def demo_openings(shows: list[tuple[int, datetime]], now: datetime) -> dict[int, tuple[datetime, str]]:
    """show id -> (sale_opens_at, queue order) for a few future shows of the demo."""
    future = sorted(id_ for id_, starts_at in shows if starts_at > now)
    out: dict[int, tuple[datetime, str]] = {}
    for id_, (minutes, order) in zip(reversed(future), DEMO_OPENINGS, strict=False):
        opens = (now + timedelta(minutes=minutes)).replace(microsecond=0)
        if opens < dict(shows)[id_]:
            out[id_] = (opens, order)
    return out


async def seed_demo(sql: AsyncEngine, seed: int, start: date) -> dict[str, int]:
    """The demo catalog in the database behind `sql` (migrated, empty), through the admin code."""
    return await create_through_admin(CatalogChanges(sql, Catalog(sql, 0)), "demo", seed, start)


class PostgresSink:
    """COPY is an order of magnitude faster than INSERT for millions of seats."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn)

    def write(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        columns = ", ".join(TABLE_COLUMNS[table])
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def finish(self) -> None:
        self.conn.commit()
        self.conn.close()


# Whether the database holds a catalog already (any city): seeding wants an empty one.
HAS_CATALOG = "SELECT count(*) FROM cities"


def has_catalog(sink: PostgresSink) -> bool:
    return bool(sink.conn.execute(HAS_CATALOG).fetchone()[0] > 0)


async def catalog_exists(sql: AsyncEngine) -> bool:
    """HAS_CATALOG through SQLAlchemy: the demo seed command and the embedded first run."""
    async with sql.connect() as conn:
        return bool((await conn.execute(text(HAS_CATALOG))).scalar_one() > 0)


def load(sink: PostgresSink, scale_name: str, seed: int, start: date, progress: bool = True) -> dict[str, int]:
    counts = dict.fromkeys(TABLE_ORDER, 0)
    cities_total = SCALES[scale_name].cities
    cities_done = 0
    began = time.monotonic()
    for table, rows in generate(scale_name, seed, start):
        sink.write(table, rows)
        counts[table] += len(rows)
        if table == "show_prices":
            cities_done += 1
            if progress:
                _progress(cities_done, cities_total, began)
    sink.finish()
    if progress:
        sys.stderr.write("\n")
    return counts


def _progress(done: int, total: int, began: float) -> None:
    width = 40
    filled = width * done // total
    elapsed = time.monotonic() - began
    eta = elapsed / done * (total - done) if done else 0.0
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} cities "
        f"{elapsed:5.1f}s elapsed, ~{eta:4.0f}s left"
    )
    sys.stderr.flush()
