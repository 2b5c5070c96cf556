"""Situations for the browser tests, made through the service's HTTP API as another client
would: a show nobody touched, seats held by others, a confirmed booking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

# A show used by a test starts later than this: time to hold, book and cancel (the
# cancel cut-off is an hour before the start) whatever the hour the tests run at.
LEAD_TIME = timedelta(hours=2)


@dataclass(frozen=True)
class ShowChoice:
    city_id: str
    city_name: str
    movie_id: str
    movie_title: str
    show_id: str
    seat_count: int


def get_json(api: httpx.Client, path: str) -> Any:
    answer = api.get(path)
    assert answer.status_code == 200, f"GET {path} answered {answer.status_code}: {answer.text}"
    return answer.json()


def untouched_shows(api: httpx.Client, claimed: set[tuple[str, str]]) -> Iterator[ShowChoice]:
    """Shows of this service that no test has claimed and nobody holds or booked a seat of,
    starting after LEAD_TIME, so tests do not step on each other on a session-wide service."""
    soon = datetime.now(UTC) + LEAD_TIME
    for city in get_json(api, "/v1/cities")["cities"]:
        for movie in get_json(api, f"/v1/cities/{city['id']}/movies")["movies"]:
            path = f"/v1/cities/{city['id']}/movies/{movie['id']}/shows"
            for cinema in get_json(api, path)["cinemas"]:
                for show in cinema["shows"]:
                    if ((str(api.base_url), show["id"]) in claimed or show["available"] < 12
                            or datetime.fromisoformat(show["starts_at"]) <= soon):
                        continue
                    if get_json(api, f"/v1/shows/{show['id']}")["sale_opens_at"]:
                        continue  # sells through a release queue (the demo seed opens a few later)
                    counts = get_json(api, f"/v1/shows/{show['id']}/seats")["counts"]
                    if counts["held"] or counts["booked"]:
                        continue
                    yield ShowChoice(
                        city["id"], city["name"], movie["id"], movie["title"], show["id"], counts["available"]
                    )


def claim(api: httpx.Client, claimed: set[tuple[str, str]], choice: ShowChoice) -> ShowChoice:
    claimed.add((str(api.base_url), choice.show_id))
    return choice


def seats_of(api: httpx.Client, show_id: str) -> list[dict]:
    return list(get_json(api, f"/v1/shows/{show_id}/seats")["seats"])


def free_seats_side_by_side(api: httpx.Client, show_id: str, count: int) -> list[dict]:
    """`count` free seats next to each other in the row nearest the middle of the hall."""
    rows: dict[str, list[dict]] = {}
    for seat in seats_of(api, show_id):
        rows.setdefault(seat["row"], []).append(seat)
    ordered = list(rows.values())
    middle_first = sorted(range(len(ordered)), key=lambda i: abs(i - len(ordered) // 2))
    for index in middle_first:
        free = sorted((s for s in ordered[index] if s["status"] == "available"), key=lambda s: s["x"])
        if len(free) >= count:
            return free[:count]
    raise AssertionError(f"no row of show {show_id} has {count} free seats")


def hold_directly(api: httpx.Client, show_id: str, seat_ids: list[str], customer: str) -> dict:
    answer = api.post(f"/v1/shows/{show_id}/holds", json={"seats": seat_ids, "customer": customer})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def book(api: httpx.Client, show_id: str, customer: str = "mine@example.org") -> dict:
    """Two free seats held and paid for: a confirmed booking."""
    seats = [s["id"] for s in seats_of(api, show_id) if s["status"] == "available"]
    held = hold_directly(api, show_id, seats[:2], customer)
    booked = api.post(f"/v1/holds/{held['hold_id']}/confirm", headers={"Idempotency-Key": f"book-{held['hold_id']}"},
                      json={"payment": {"method": "card", "token": "tok_ok"}})
    assert booked.status_code == 201, booked.text
    return dict(booked.json())
