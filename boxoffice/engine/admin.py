"""What operators change through the admin API (docs/API.md, "Operators"): cities,
cinemas, halls with their seat plans, movies and shows, each created in one transaction
together with its record in `admin_changes` (what, when, under which token's name);
closing a show; a show's report. Input arrives validated in shape (api/validation.py);
the facts only the database knows (a known city, a hall free at that time, a price for
every category of the hall) are checked here, under one lock per database so two
operators never take the same id or the same hall time."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from boxoffice.engine.catalog import Catalog, Cinema, City, Hall, Movie, ShowInfo, movie_of
from boxoffice.engine.db import as_utc, db_time, is_sqlite, rfc3339
from boxoffice.engine.errors import InvalidRequest
from boxoffice.engine.holds import Holds
from boxoffice.engine.ids import random_part
from boxoffice.engine.redis.keys import Keys
from boxoffice.engine.release_queue import ReleaseQueue, ShowWithQueue

# Any constant works; it only has to be the same in every service process.
ADMIN_LOCK_ID = 0x626F6164
# The longest show (movies.runtime_min's bound): shows that may overlap start this close.
LONGEST_SHOW = timedelta(minutes=600)
TABLES = {"city": "cities", "cinema": "cinemas", "hall": "halls", "movie": "movies", "show": "shows"}


# What the admin routes ask for, in shape already (api/validation.py).
@dataclass(frozen=True)
class CityRequest:
    name: str
    country: str


@dataclass(frozen=True)
class CinemaRequest:
    city_id: int
    name: str
    address: str


@dataclass(frozen=True)
class SeatRequest:
    id: str
    row: str
    number: int
    x: int
    y: int
    category: str
    kind: str


@dataclass(frozen=True)
class HallRequest:
    cinema_id: int
    name: str
    seats: list[SeatRequest]


@dataclass(frozen=True)
class MovieRequest:
    title: str
    runtime_min: int
    rating: str
    release_date: date
    genres: list[str]


@dataclass(frozen=True)
class ShowRequest:
    hall_id: int
    movie_id: int
    starts_at: datetime
    prices: dict[str, int]
    currency: str
    sale_opens_at: datetime | None
    queue_order: str


@dataclass(frozen=True)
class ShowReport:
    """A show's sales at a glance (docs/API.md, "The report")."""

    show_id: int
    status: str
    currency: str
    seats: int
    free: int
    held: int  # seats held now (Redis)
    sold: int  # seats of standing bookings (PostgreSQL)
    waiting: int  # waitlist entries waiting
    queued: int  # release queue tickets waiting
    revenue: int  # the standing bookings' amounts, in minor units
    refunded: int  # the cancelled bookings' refunds, in minor units
    bookings: int  # standing bookings
    cancelled: int  # cancellations


def refused(field: str, text_: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {text_}", details=[{"field": field, "problem": text_}])


class CatalogChanges:
    """Creates cities, cinemas, halls, movies and shows: the admin API's routes and the seed
    command both create through here, so a seeded catalog passes the same checks and is
    recorded the same way (under the name "seed")."""

    def __init__(self, sql: AsyncEngine, catalog: Catalog) -> None:
        self.sql = sql
        self.catalog = catalog
        # SQLite has no advisory lock; it is one process (embedded mode).
        self._local = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _change(self, who: str, action: str) -> AsyncIterator[tuple[AsyncConnection, list[str]]]:
        """One transaction under the admin lock; the caller appends the target's id to the
        list, and the change is recorded in the same transaction."""
        async with self._local, self.sql.begin() as conn:
            if not is_sqlite(conn):
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADMIN_LOCK_ID})
            target: list[str] = []
            yield conn, target
            await record(conn, who, action, target[0], target[1] if len(target) > 1 else "")
        self.catalog.browse_cache.clear()

    @staticmethod
    async def _next_id(conn: AsyncConnection, kind: str) -> int:
        return int((await conn.execute(text(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {TABLES[kind]}"))).scalar_one())

    @staticmethod
    async def _exists(conn: AsyncConnection, kind: str, id_: int) -> bool:
        found = await conn.execute(text(f"SELECT 1 FROM {TABLES[kind]} WHERE id = :id"), {"id": id_})
        return found.first() is not None

    async def create_city(self, who: str, city: CityRequest) -> City:
        async with self._change(who, "create_city") as (conn, target):
            if (await conn.execute(text("SELECT 1 FROM cities WHERE country = :c AND name = :n"),
                                   {"c": city.country, "n": city.name})).first():
                raise refused("name", "this country has a city of this name")
            city_id = await self._next_id(conn, "city")
            await conn.execute(text("INSERT INTO cities (id, name, country) VALUES (:id, :n, :c)"),
                               {"id": city_id, "n": city.name, "c": city.country})
            target.append(str(city_id))
        return City(city_id, city.name, city.country, cinema_count=0)

    async def create_cinema(self, who: str, cinema: CinemaRequest) -> Cinema:
        async with self._change(who, "create_cinema") as (conn, target):
            if not await self._exists(conn, "city", cinema.city_id):
                raise refused("city_id", f"no city with id {cinema.city_id}")
            if (await conn.execute(text("SELECT 1 FROM cinemas WHERE city_id = :c AND name = :n"),
                                   {"c": cinema.city_id, "n": cinema.name})).first():
                raise refused("name", "this city has a cinema of this name")
            cinema_id = await self._next_id(conn, "cinema")
            await conn.execute(text("INSERT INTO cinemas (id, city_id, name, address) VALUES (:id, :c, :n, :a)"),
                               {"id": cinema_id, "c": cinema.city_id, "n": cinema.name, "a": cinema.address})
            target.append(str(cinema_id))
        return Cinema(cinema_id, cinema.name, cinema.address, cinema.city_id)

    async def create_hall(self, who: str, hall: HallRequest) -> Hall:
        async with self._change(who, "create_hall") as (conn, target):
            if not await self._exists(conn, "cinema", hall.cinema_id):
                raise refused("cinema_id", f"no cinema with id {hall.cinema_id}")
            if (await conn.execute(text("SELECT 1 FROM halls WHERE cinema_id = :c AND name = :n"),
                                   {"c": hall.cinema_id, "n": hall.name})).first():
                raise refused("name", "this cinema has a hall of this name")
            hall_id = await self._next_id(conn, "hall")
            await conn.execute(text("INSERT INTO halls (id, cinema_id, name, seat_count) VALUES (:id, :c, :n, :s)"),
                               {"id": hall_id, "c": hall.cinema_id, "n": hall.name, "s": len(hall.seats)})
            await conn.execute(
                text("INSERT INTO seats (hall_id, id, row_label, number, category, kind, x, y)"
                     " VALUES (:hall, :id, :row, :number, :category, :kind, :x, :y)"),
                [{"hall": hall_id, "id": s.id, "row": s.row, "number": s.number, "category": s.category,
                  "kind": s.kind, "x": s.x, "y": s.y} for s in hall.seats])
            target += [str(hall_id), json.dumps({"seats": len(hall.seats)})]
        return Hall(hall_id, hall.name, len(hall.seats))

    async def create_movie(self, who: str, movie: MovieRequest) -> Movie:
        async with self._change(who, "create_movie") as (conn, target):
            movie_id = await self._next_id(conn, "movie")
            row = (movie_id, movie.title, movie.runtime_min, movie.rating, movie.release_date, ",".join(movie.genres))
            await conn.execute(
                text("INSERT INTO movies (id, title, runtime_min, rating, release_date, genres)"
                     " VALUES (:id, :t, :r, :rating, :d, :g)"),
                {"id": row[0], "t": row[1], "r": row[2], "rating": row[3],
                 "d": movie.release_date.isoformat() if is_sqlite(conn) else movie.release_date, "g": row[5]})
            target.append(str(movie_id))
        return movie_of(row)

    async def create_show(self, who: str, show: ShowRequest) -> ShowInfo:
        async with self._change(who, "create_show") as (conn, target):
            runtime = (await conn.execute(text("SELECT runtime_min FROM movies WHERE id = :id"),
                                          {"id": show.movie_id})).scalar()
            if runtime is None:
                raise refused("movie_id", f"no movie with id {show.movie_id}")
            if not await self._exists(conn, "hall", show.hall_id):
                raise refused("hall_id", f"no hall with id {show.hall_id}")
            if show.starts_at <= datetime.now(show.starts_at.tzinfo):
                raise refused("starts_at", "must be in the future")
            categories = {r[0] for r in await conn.execute(
                text("SELECT DISTINCT category FROM seats WHERE hall_id = :h"), {"h": show.hall_id})}
            missing = sorted(categories - set(show.prices))
            if missing:
                raise refused("prices", f"no price for the hall's categories: {', '.join(missing)}")
            extra = sorted(set(show.prices) - categories)
            if extra:
                raise refused("prices", f"the hall has no seats of: {', '.join(extra)}")
            await self._hall_free(conn, show, int(runtime))
            show_id = await self._next_id(conn, "show")
            await conn.execute(
                text("INSERT INTO shows (id, movie_id, hall_id, starts_at, status, currency, sale_opens_at,"
                     " queue_order) VALUES (:id, :m, :h, :s, 'open', :c, :o, :q)"),
                {"id": show_id, "m": show.movie_id, "h": show.hall_id, "s": db_time(conn, show.starts_at),
                 "c": show.currency, "o": None if show.sale_opens_at is None else db_time(conn, show.sale_opens_at),
                 "q": show.queue_order})
            await conn.execute(text("INSERT INTO show_prices (show_id, category, amount) VALUES (:s, :c, :a)"),
                               [{"s": show_id, "c": c, "a": a} for c, a in show.prices.items()])
            target.append(str(show_id))
        return await self.catalog.show(show_id, fresh=True)

    async def _hall_free(self, conn: AsyncConnection, show: ShowRequest, runtime_min: int) -> None:
        """A hall shows one movie at a time: no other show of the hall may overlap this one
        (its start to its start plus the movie's runtime)."""
        ends = show.starts_at + timedelta(minutes=runtime_min)
        rows = await conn.execute(
            text("SELECT s.id, s.starts_at, m.runtime_min FROM shows s JOIN movies m ON m.id = s.movie_id"
                 " WHERE s.hall_id = :h AND s.starts_at > :after AND s.starts_at < :before"),
            {"h": show.hall_id, "after": db_time(conn, show.starts_at - LONGEST_SHOW),
             "before": db_time(conn, ends)})
        for other_id, other_start, other_runtime in rows:
            other_start = as_utc(other_start)
            if other_start < ends and other_start + timedelta(minutes=int(other_runtime)) > show.starts_at:
                raise refused("starts_at", f"the hall is busy then: show {other_id} starts"
                                           f" {rfc3339(other_start)}")


class Admin(CatalogChanges):
    """The admin API's engine side: the catalog changes, closing a show, a show's report."""

    def __init__(self, sql: AsyncEngine, catalog: Catalog, holds: Holds, redis: Any, keys: Keys,
                 queue: ReleaseQueue) -> None:
        super().__init__(sql, catalog)
        self.holds = holds
        self.queue = queue
        self.redis = redis
        self.keys = keys

    async def create_show_with_queue(self, who: str, show: ShowRequest) -> ShowWithQueue:
        """The catalog change (create_show), answered as GET /v1/shows/{id} answers: its queue too."""
        made = await self.create_show(who, show)
        return await self.queue.public_show(made.id)

    async def close_show(self, who: str, show_id: int, reason: str) -> ShowWithQueue:
        """Closes the show (engine/holds.py): safe to repeat; answers it closed."""
        released, cancelled = await self.holds.close_show(show_id)
        async with self.sql.begin() as conn:
            await record(conn, who, "close_show", str(show_id),
                         json.dumps({"reason": reason, "holds_released": released, "waiters_cancelled": cancelled}))
        self.catalog.browse_cache.clear()
        await self.catalog.show(show_id, fresh=True)
        return await self.queue.public_show(show_id)

    async def report(self, show_id: int) -> ShowReport:
        show = await self.catalog.show(show_id, fresh=True)  # 404 for an unknown show
        status_map, _ = await self.holds.seat_state(show_id)  # loads the show when Redis lacks it
        held = status_map.count("h")
        waiting = await self.redis.hget(self.keys.show_keys(show_id)[7], "waiting")
        queued = await self.redis.zcard(self.keys.queue(show_id))  # release queue tickets waiting
        async with self.sql.connect() as conn:
            sold = (await conn.execute(text("SELECT count(*) FROM booked_seats WHERE show_id = :s"),
                                       {"s": show_id})).scalar_one()
            bookings, revenue = (await conn.execute(
                text("SELECT count(*), COALESCE(SUM(b.amount), 0) FROM bookings b WHERE b.show_id = :s"
                     " AND NOT EXISTS (SELECT 1 FROM cancellations c WHERE c.booking_id = b.id)"),
                {"s": show_id})).one()
            cancelled, refunded = (await conn.execute(
                text("SELECT count(*), COALESCE(SUM(CASE WHEN status = 'refunded' THEN amount ELSE 0 END), 0)"
                     " FROM cancellations WHERE show_id = :s"), {"s": show_id})).one()
        seats = show.hall.seat_count
        return ShowReport(show_id, show.status, show.currency, seats, free=max(0, seats - int(sold) - held),
                          held=held, sold=int(sold), waiting=int(waiting or 0), queued=int(queued),
                          revenue=int(revenue), refunded=int(refunded), bookings=int(bookings),
                          cancelled=int(cancelled))


async def record(conn: AsyncConnection, who: str, action: str, target: str, details: str = "") -> None:
    await conn.execute(
        text("INSERT INTO admin_changes (id, token_name, action, target, details) VALUES (:id, :w, :a, :t, :d)"),
        {"id": "adm_" + random_part(), "w": who, "a": action, "t": target, "d": details})

