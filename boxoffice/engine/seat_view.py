"""What status a seat shows: the one rule behind the seat map, its live stream, the counts
endpoint and the tests. A seat's own state is a character ('0' free, 'h' held, 'b' booked:
the status map of lua/includes/statusmap.lua, read by lua/seat_status-1.lua); a free seat of
a price category the queue waits for ("*": any) shows as held, since it is the queue's
(waiters first, docs/DESIGN.md)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from boxoffice.engine.statuses import SeatStatus

FREE, HELD, BOOKED = "0", "h", "b"
STATUS_OF = {FREE: SeatStatus.AVAILABLE, HELD: SeatStatus.HELD, BOOKED: SeatStatus.BOOKED}
CHAR_OF = {status.value: char for char, status in STATUS_OF.items()}
ANY_CATEGORY = "*"


def for_queue(category: str, waited: Collection[str]) -> bool:
    """Whether a free seat of `category` is the queue's: the rule itself."""
    return ANY_CATEGORY in waited or category in waited


def shown(own: str, category: str, waited: Collection[str]) -> str:
    """The character a seat shows: its own, except a free seat the queue could use."""
    return HELD if own == FREE and waited and for_queue(category, waited) else own


def shown_map(status_map: str, categories: Sequence[str], waited: Collection[str]) -> str:
    """shown() for every seat of a status map (categories: each seat's, in the map's order).
    Without waiters the map is its own answer (the rush's common case, no per-seat work);
    with them the rule is asked once per category, then only the free seats are visited."""
    if not waited:
        return status_map
    theirs = {category for category in set(categories) if for_queue(category, waited)}
    if not theirs:
        return status_map
    chars = list(status_map)
    at = status_map.find(FREE)
    while at >= 0:
        if categories[at] in theirs:
            chars[at] = HELD
        at = status_map.find(FREE, at + 1)
    return "".join(chars)
