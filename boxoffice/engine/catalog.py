"""Browse queries over the catalog, and the show facts the engine needs (hall plan,
prices, start time), answered as domain objects (api/shapes.py writes their JSON). Hall
plans never change once seeded, so they are cached for the life of the process;
everything else is cached for `browse_cache_s` seconds (see docs/DESIGN.md, "Caching")."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine.db import as_date, as_utc, db_time
from boxoffice.engine.errors import NotFound

T = TypeVar("T")


class TtlCache(Generic[T]):
    """A small bounded cache; values older than `ttl_s` are loaded again. Concurrent misses
    of one key share a single load (no stampede on the database when a hot entry expires
    under a rush). A key forgotten (`forget`, `clear`, or a `fresh` get) is never answered
    from a load begun before: such a load's value is neither joined nor stored."""

    def __init__(self, ttl_s: float, max_items: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        # key -> (when its load started, its place in the order below, the value)
        self._items: OrderedDict[Any, tuple[float, int, T]] = OrderedDict()
        # Loads and forgettings in the order they happened (a clock could read the same twice).
        self._order = itertools.count()
        # key -> the load in flight and its place in that order
        self._loading: dict[Any, tuple[asyncio.Future[T], int]] = {}
        # key -> the place of its last forgetting (one number a key: kept, even once a newer
        # value is stored, which may be evicted); and of the last clear(), which forgets all
        self._forgotten_at: dict[Any, int] = {}
        self._cleared_at = -1

    async def get(self, key: Any, load: Callable[[], Awaitable[T]], fresh: bool = False) -> T:
        """The key's value; `fresh`: loaded now, whatever is cached or in flight."""
        if fresh:
            self.forget(key)
        hit = self._items.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[2]
        in_flight = self._loading.get(key)
        if in_flight is None or in_flight[1] < self._forgotten(key):
            begun = next(self._order)
            loading = asyncio.ensure_future(self._load(key, load, begun))
            self._loading[key] = (loading, begun)
            loading.add_done_callback(lambda done: self._done(key, done))
        else:
            loading = in_flight[0]
        # shield: one caller giving up does not cancel the load the others wait for
        return await asyncio.shield(loading)

    async def _load(self, key: Any, load: Callable[[], Awaitable[T]], begun: int) -> T:
        started = time.monotonic()
        value = await load()
        kept = self._items.get(key)
        if begun > self._forgotten(key) and (kept is None or begun > kept[1]):  # (nothing newer)
            self._items[key] = (started, begun, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return value

    def _done(self, key: Any, done: asyncio.Future[T]) -> None:
        in_flight = self._loading.get(key)
        if in_flight is not None and in_flight[0] is done:  # (a newer load may have taken its place)
            del self._loading[key]

    def _forgotten(self, key: Any) -> int:
        return max(self._forgotten_at.get(key, -1), self._cleared_at)

    def clear(self) -> None:
        self._items.clear()
        self._forgotten_at.clear()
        self._cleared_at = next(self._order)

    def forget(self, key: Any) -> None:
        self._items.pop(key, None)
        self._forgotten_at[key] = next(self._order)


@dataclass(frozen=True)
class Seat:
    id: str
    row: str
    number: int
    category: str
    kind: str
    x: int
    y: int
    rank: int  # lower is a better seat: centred, towards the middle-back


@dataclass(frozen=True)
class HallPlan:
    hall_id: int
    seats: tuple[Seat, ...]
    by_id: dict[str, Seat]

    def row_places(self) -> dict[str, int]:
        """Each seat's place along its row: seats side by side have consecutive places, an
        aisle skips one or more, so "adjacent" never reaches across an aisle."""
        rows: dict[str, list[Seat]] = {}
        for seat in self.seats:
            rows.setdefault(seat.row, []).append(seat)
        for row in rows.values():
            row.sort(key=lambda seat: seat.x)
        # The hall's seat pitch, not each row's own: in a row whose only gap is an aisle,
        # that gap would count as side by side.
        gaps = [b.x - a.x for row in rows.values() for a, b in itertools.pairwise(row) if b.x > a.x]
        pitch = min(gaps) if gaps else 1
        places: dict[str, int] = {}
        for row in rows.values():
            place = 1
            for i, seat in enumerate(row):
                if i:
                    place += max(1, round((seat.x - row[i - 1].x) / pitch))
                places[seat.id] = place
        return places


@dataclass(frozen=True)
class City:
    id: int
    name: str
    country: str
    cinema_count: int


@dataclass(frozen=True)
class Movie:
    id: int
    title: str
    runtime_min: int
    rating: str
    release_date: date
    genres: tuple[str, ...]


@dataclass(frozen=True)
class Cinema:
    id: int
    name: str
    address: str
    city_id: int


@dataclass(frozen=True)
class Hall:
    id: int
    name: str
    seat_count: int


@dataclass(frozen=True)
class ShowTime:
    """An open show in a cinema's list of a movie's shows."""

    id: int
    starts_at: datetime
    hall_id: int
    hall_name: str
    available: int  # seats not sold, counted in the database (holds not subtracted)


@dataclass(frozen=True)
class CinemaShows:
    cinema: Cinema
    shows: tuple[ShowTime, ...]


@dataclass(frozen=True)
class ShowInfo:
    id: int
    starts_at: datetime
    status: str  # "open" or "closed": the catalog's status
    currency: str
    prices: dict[str, int]  # category: amount, cheapest first
    movie: Movie
    cinema: Cinema
    hall: Hall
    no_stranded_seats: bool = False  # explicit holds may not leave a single seat stranded
    sale_opens_at: datetime | None = None  # None: on sale now (no release queue)
    queue_order: str = "arrival"  # the release queue's order (docs/API.md, "Release queue")

    @property
    def hall_id(self) -> int:
        return self.hall.id

    def is_open(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        return self.status == "open" and self.starts_at > now


def rank_seats(rows: list[tuple[str, str, int, str, str, int, int]]) -> list[Seat]:
    if not rows:
        return []
    xs = [r[5] for r in rows]
    ys = [r[6] for r in rows]
    centre_x = (min(xs) + max(xs)) / 2
    # The best view is about two thirds back from the screen.
    best_y = min(ys) + (max(ys) - min(ys)) * 0.66
    scored = sorted(rows, key=lambda r: abs(r[5] - centre_x) + 1.5 * abs(r[6] - best_y))
    rank = {r[0]: i for i, r in enumerate(scored)}
    return [Seat(r[0], r[1], r[2], r[3], r[4], r[5], r[6], rank[r[0]]) for r in rows]


class Catalog:
    def __init__(self, engine: AsyncEngine, cache_s: float) -> None:
        self.engine = engine
        self.browse_cache: TtlCache[tuple[Any, ...]] = TtlCache(cache_s)
        self.show_cache: TtlCache[ShowInfo] = TtlCache(cache_s, max_items=20_000)
        self.plan_cache: TtlCache[HallPlan] = TtlCache(float("inf"), max_items=2_000)

    async def _rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            bound = {k: db_time(conn, v) if isinstance(v, datetime) else v for k, v in params.items()}
            return list(await conn.execute(text(sql), bound))

    async def cities(self) -> tuple[City, ...]:
        async def load() -> tuple[City, ...]:
            rows = await self._rows(
                "SELECT c.id, c.name, c.country, count(ci.id) FROM cities c"
                " LEFT JOIN cinemas ci ON ci.city_id = c.id"
                " GROUP BY c.id, c.name, c.country ORDER BY c.name, c.id"
            )
            return tuple(City(int(r[0]), r[1], r[2], int(r[3])) for r in rows)

        return await self.browse_cache.get("cities", load)

    async def _require_city(self, city_id: int) -> None:
        if not await self._rows("SELECT 1 FROM cities WHERE id = :id", id=city_id):
            raise NotFound(f"no city with id {city_id}")

    async def movies_in_city(self, city_id: int) -> tuple[Movie, ...]:
        async def load() -> tuple[Movie, ...]:
            await self._require_city(city_id)
            rows = await self._rows(
                "SELECT m.id, m.title, m.runtime_min, m.rating, m.release_date, m.genres"
                " FROM movies m WHERE m.id IN ("
                "  SELECT s.movie_id FROM shows s JOIN halls h ON h.id = s.hall_id"
                "  JOIN cinemas ci ON ci.id = h.cinema_id"
                "  WHERE ci.city_id = :city AND s.status = 'open' AND s.starts_at > :now)"
                " ORDER BY m.title, m.id",
                city=city_id,
                now=datetime.now(UTC),
            )
            return tuple(movie_of(r) for r in rows)

        return await self.browse_cache.get(("movies", city_id), load)

    async def shows_of_movie(self, city_id: int, movie_id: int, day: date | None) -> tuple[CinemaShows, ...]:
        async def load() -> tuple[CinemaShows, ...]:
            await self._require_city(city_id)
            if not await self._rows("SELECT 1 FROM movies WHERE id = :id", id=movie_id):
                raise NotFound(f"no movie with id {movie_id}")
            now = datetime.now(UTC)
            start, end = now, now + timedelta(days=366)
            if day is not None:
                day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
                start, end = max(now, day_start), day_start + timedelta(days=1)
            rows = await self._rows(
                "SELECT ci.id, ci.name, ci.address, s.id, s.starts_at, h.id, h.name,"
                "  h.seat_count - (SELECT count(*) FROM booked_seats b WHERE b.show_id = s.id)"
                " FROM shows s JOIN halls h ON h.id = s.hall_id JOIN cinemas ci ON ci.id = h.cinema_id"
                " WHERE ci.city_id = :city AND s.movie_id = :movie AND s.status = 'open'"
                "  AND s.starts_at > :start AND s.starts_at < :end"
                " ORDER BY ci.name, ci.id, s.starts_at, s.id",
                city=city_id,
                movie=movie_id,
                start=start,
                end=end,
            )
            cinemas: dict[int, tuple[Cinema, list[ShowTime]]] = {}
            for r in rows:
                _, shows = cinemas.setdefault(int(r[0]), (Cinema(int(r[0]), r[1], r[2], city_id), []))
                shows.append(ShowTime(int(r[3]), as_utc(r[4]), int(r[5]), r[6], int(r[7])))
            return tuple(CinemaShows(cinema, tuple(shows)) for cinema, shows in cinemas.values())

        return await self.browse_cache.get(("shows", city_id, movie_id, day), load)

    async def show(self, show_id: int, fresh: bool = False) -> ShowInfo:
        """The show; `fresh` reads the database now (loading Redis's copy of a show takes
        its status from there, not from a cached answer)."""
        async def load() -> ShowInfo:
            rows = await self._rows(
                "SELECT s.id, s.starts_at, s.status, s.currency,"
                "  m.id, m.title, m.runtime_min, m.rating, m.release_date, m.genres,"
                "  ci.id, ci.name, ci.address, ci.city_id, h.id, h.name, h.seat_count, s.sale_opens_at,"
                "  s.no_stranded_seats, s.queue_order"
                " FROM shows s JOIN movies m ON m.id = s.movie_id JOIN halls h ON h.id = s.hall_id"
                " JOIN cinemas ci ON ci.id = h.cinema_id WHERE s.id = :id",
                id=show_id,
            )
            if not rows:
                raise NotFound(f"no show with id {show_id}")
            r = rows[0]
            prices = {
                p[0]: int(p[1])
                for p in await self._rows(
                    "SELECT category, amount FROM show_prices WHERE show_id = :id ORDER BY amount",
                    id=show_id,
                )
            }
            return ShowInfo(
                id=int(r[0]), starts_at=as_utc(r[1]), status=r[2], currency=r[3], prices=prices,
                movie=movie_of(r[4:10]), cinema=Cinema(int(r[10]), r[11], r[12], int(r[13])),
                hall=Hall(int(r[14]), r[15], int(r[16])), no_stranded_seats=bool(r[18]),
                sale_opens_at=None if r[17] is None else as_utc(r[17]), queue_order=r[19] or "arrival")

        return await self.show_cache.get(show_id, load, fresh=fresh)

    async def set_show_status(self, show_id: int, status: str) -> None:
        """Records the show's status (open, closed); browse answers show it within their cache
        time, Redis's copy of the show is changed by the caller."""
        async with self.engine.begin() as conn:
            updated = await conn.execute(text("UPDATE shows SET status = :status WHERE id = :id"),
                                         {"status": status, "id": show_id})
        if updated.rowcount == 0:
            raise NotFound(f"no show with id {show_id}")
        self.show_cache.forget(show_id)

    async def hall_plan(self, hall_id: int) -> HallPlan:
        async def load() -> HallPlan:
            rows = await self._rows(
                "SELECT id, row_label, number, category, kind, x, y FROM seats"
                " WHERE hall_id = :hall ORDER BY y, x",
                hall=hall_id,
            )
            seats = rank_seats([tuple(r) for r in rows])
            return HallPlan(hall_id, tuple(seats), {s.id: s for s in seats})

        return await self.plan_cache.get(hall_id, load)

    async def booked_seats(self, show_id: int) -> list[tuple[str, str]]:
        rows = await self._rows(
            "SELECT seat_id, booking_id FROM booked_seats WHERE show_id = :id", id=show_id
        )
        return [(r[0], r[1]) for r in rows]


def movie_of(r: Any) -> Movie:
    """A movie from its row: (id, title, runtime_min, rating, release_date, genres as "a,b")."""
    return Movie(int(r[0]), r[1], int(r[2]), r[3], as_date(r[4]), tuple(g for g in str(r[5]).split(",") if g))
