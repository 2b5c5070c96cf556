"""What status a seat shows: the one rule behind the seat map, its live stream, the counts
endpoint and the tests. A seat's own state is a character ('0' free, 'h' held, 'b' booked:
the status map of lua/includes/statusmap.lua, read by lua/seat_status-8.lua); a free seat of
a price category the queue waits for ("*": any) shows as held, since it is the queue's
(waiters first, docs/DESIGN.md)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from boxoffice.engine.statuses import SeatStatus

FREE, HELD, BOOKED = "0", "h", "b"
STATUS_OF = {FREE: SeatStatus.AVAILABLE, HELD: SeatStatus.HELD, BOOKED: SeatStatus.BOOKED}
CHAR_OF = {status.value: char for char, status in STATUS_OF.items()}
ANY_CATEGORY = "*"


def shown(own: str, category: str, waited: Collection[str]) -> str:
    """The character a seat shows: its own, except a free seat the queue could use."""
    if own == FREE and waited and (ANY_CATEGORY in waited or category in waited):
        return HELD
    return own


def shown_map(status_map: str, categories: Sequence[str], waited: Collection[str]) -> str:
    """shown() for every seat of a status map (categories: each seat's, in the map's order).
    Without waiters the map is its own answer (the rush's common case, no per-seat work)."""
    if not waited:
        return status_map
    waited = frozenset(waited)
    return "".join(shown(own, category, waited) for own, category in zip(status_map, categories, strict=True))
