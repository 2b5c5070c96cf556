"""The one rule of what a seat shows (engine/seat_view.py), which the seat map, its stream,
the counts endpoint and Holds.seat_statuses all apply."""

from __future__ import annotations

import random

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


def test_the_whole_map_agrees_with_the_rule_for_every_seat() -> None:
    rng = random.Random(7)
    for _ in range(200):
        size = rng.randint(0, 30)
        status_map = "".join(rng.choice("0hb") for _ in range(size))
        categories = [rng.choice(["vip", "std", "pre"]) for _ in range(size)]
        waited = rng.sample(["vip", "std", "pre", "*", "other"], rng.randint(0, 2))
        expected = "".join(shown(own, category, frozenset(waited))
                           for own, category in zip(status_map, categories, strict=True))
        assert shown_map(status_map, categories, waited) == expected
