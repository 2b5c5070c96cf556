"""The one rule of what a seat shows (engine/seat_view.py), which the seat map, its stream,
the counts endpoint and Holds.seat_statuses all apply."""

from __future__ import annotations

from boxoffice.engine.seat_view import shown, shown_map


def test_a_free_seat_of_a_waited_category_shows_held() -> None:
    assert shown("0", "vip", frozenset({"vip"})) == "h"
    assert shown("0", "std", frozenset({"vip"})) == "0"
    assert shown("0", "std", frozenset({"*"})) == "h"


def test_held_and_booked_seats_show_their_own_state() -> None:
    for own in "hb":
        assert shown(own, "vip", frozenset({"vip", "*"})) == own


def test_the_whole_map_applies_the_rule_seat_by_seat() -> None:
    status_map, categories = "0hb00", ["vip", "vip", "vip", "std", "vip"]
    assert shown_map(status_map, categories, []) == status_map
    assert shown_map(status_map, categories, ["vip"]) == "hhb0h"
    assert shown_map(status_map, categories, ["*"]) == "hhbhh"
