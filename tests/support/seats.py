"""What each seat of a show is in Redis, as one dict: seat -> "h:<hold_id>" (held) or
"b:<booking_id>" (booked); free seats are absent. The scripts keep it in three places
(lua/includes/statusmap.lua): the status map says free, held or booked; the seats hash
keeps the booked seats' booking ids; a held seat's hold is the live hold whose hash lists
it (and has not lost it to a booking). seat_marks reads all three and fails when they
disagree, so every test that looks at seats also checks the layout's own rule."""

from __future__ import annotations

from typing import Any

from boxoffice.engine.redis.keys import Keys

LIVE = ("active", "confirming")


async def seat_marks(redis: Any, keys: Keys, show_id: int, check_map: bool = True) -> dict[str, str]:
    """Seat -> "h:<hold_id>" | "b:<booking_id>". Read when no script runs on the show (the
    reads are two round trips). check_map: fail unless the status map agrees."""
    show = keys.show_keys(show_id)
    base = keys.show_base(show_id)
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(show[2])
    pipe.zrange(show[3], 0, -1)
    pipe.get(base + "statusmap")
    pipe.hgetall(base + "seatindex")
    booked_marks, live, status_map, index = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for hold_id in live:
        pipe.hmget(keys.hold(show_id, hold_id), "status", "seats", "lost")
    holds = await pipe.execute() if live else []
    marks: dict[str, str] = {seat: mark for seat, mark in booked_marks.items() if mark.startswith("b:")}
    assert len(marks) == len(booked_marks), f"the seats hash keeps booked seats only: {booked_marks}"
    for hold_id, (status, seats, lost) in zip(live, holds, strict=True):
        if status not in LIVE or not seats:
            continue
        gone = set(lost.split(",")) if lost else set()
        for seat in seats.split(","):
            if seat in gone:
                continue
            assert seat not in marks, f"seat {seat} held by {hold_id} and {marks[seat]}"
            marks[seat] = f"h:{hold_id}"
    if check_map and status_map is not None:
        for seat, position in index.items():
            char = status_map[int(position)]
            expected = marks.get(seat, "0")[0]
            assert char == expected, f"seat {seat}: the status map says {char!r}, the holds and bookings {expected!r}"
    return marks


async def seat_counts(redis: Any, keys: Keys, show_id: int) -> dict[str, int]:
    """The show's stats hash as numbers, with `free`: the hall's seats neither held nor
    booked (the hash keeps no count of them: lua/includes/context.lua, seat_counts)."""
    raw = await redis.hgetall(keys.stats(show_id))
    counts = {name: int(value) for name, value in raw.items()}
    if counts:
        counts["free"] = counts["seats"] - counts.get("held", 0) - counts.get("booked", 0)
    return counts
