"""A brute-force model of best available (boxoffice/lua/includes/best.lua, docs/API.md):
every block of the hall is scored and the lowest key wins. The tests hold the scripts'
choices against it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from boxoffice.engine.catalog import Seat

STRAND_PENALTY = 1_000_000


@dataclass(frozen=True)
class Place:
    """A seat as the search sees it: its row, its place along the row, its rank."""

    id: str
    row: str
    place: int
    rank: int
    category: str
    kind: str = "standard"


def places_of(seats: Iterable[Seat], places: dict[str, int]) -> list[Place]:
    return [Place(s.id, s.row, places[s.id], s.rank, s.category, s.kind) for s in seats]


def strands(block: list[Place], by_place: dict[tuple[str, int], Place], free: set[str]) -> int:
    """Single free seats the block leaves beside itself, before a taken seat, an aisle or a wall."""
    count = 0
    for edge, step in ((block[0].place, -1), (block[-1].place, 1)):
        beside = by_place.get((block[0].row, edge + step))
        if beside is not None and beside.id in free:
            beyond = by_place.get((block[0].row, edge + 2 * step))
            if beyond is None or beyond.id not in free:
                count += 1
    return count


def blocks(seats: list[Place], eligible: set[str], count: int) -> list[list[Place]]:
    """Every run of `count` eligible seats side by side in one row, of one category."""
    rows: dict[str, list[Place]] = {}
    for seat in seats:
        rows.setdefault(seat.row, []).append(seat)
    out = []
    for row in rows.values():
        row.sort(key=lambda s: s.place)
        for i in range(len(row) - count + 1):
            block = row[i:i + count]
            if (block[-1].place - block[0].place == count - 1 and all(s.id in eligible for s in block)
                    and len({s.category for s in block}) == 1):
                out.append(block)
    return out


def block_key(block: list[Place], seats: list[Place], free: set[str]) -> tuple[int, str, int]:
    by_place = {(s.row, s.place): s for s in seats}
    return (sum(s.rank for s in block) + STRAND_PENALTY * strands(block, by_place, free), block[0].row,
            block[0].place)


def best_block(seats: list[Place], eligible: set[str], free: set[str], count: int) -> list[str] | None:
    scored = [(block_key(b, seats, free), b) for b in blocks(seats, eligible, count)]
    if not scored:
        return None
    return [s.id for s in min(scored, key=lambda kb: kb[0])[1]]


def best_scattered(seats: list[Place], eligible: set[str], count: int) -> list[str] | None:
    chosen = sorted((s for s in seats if s.id in eligible), key=lambda s: s.rank)[:count]
    return [s.id for s in chosen] if len(chosen) == count else None
