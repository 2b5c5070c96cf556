"""A show with something to lose, for hostile-input tests: a booking, an active hold and a
waitlist entry made through the API, so "nothing changed" is checked against real state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.shows import ShowRef


@dataclass(frozen=True)
class Scene:
    show_id: int
    seat_ids: list[str]
    booked_hold_id: str
    booking_id: str
    hold_id: str
    entry_id: str
    granted_hold_id: str
    free_seats: list[str]


async def created(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def make_scene(client: httpx.AsyncClient, show: ShowRef) -> Scene:
    seats = show.seat_ids
    url = f"/v1/shows/{show.show_id}"
    booked = await created(await client.post(f"{url}/holds", json={"seats": seats[:2], "customer": "ana@example.org"}))
    booking = await created(await client.post(
        f"/v1/holds/{booked['hold_id']}/confirm", headers={"Idempotency-Key": "scene-1"},
        json={"payment": {"method": "card", "token": "tok_ok"}}))
    hold = await created(await client.post(f"{url}/holds", json={"seats": seats[2:4], "customer": "bob@example.org"}))
    # Free seats remain, so the entry is granted at once and holds seats of its own.
    entry = await created(await client.post(f"{url}/waitlist", json={"count": 2, "customer": "cy@example.org"}))
    status = (await client.get(f"/v1/waitlist/{entry['entry_id']}")).json()
    assert status["status"] == "granted", status
    seat_map = (await client.get(f"{url}/seats")).json()
    free = [s["id"] for s in seat_map["seats"] if s["status"] == "available"]
    assert seat_map["counts"]["booked"] == 2 and seat_map["counts"]["held"] == 4, seat_map["counts"]
    return Scene(show.show_id, seats, booked["hold_id"], booking["booking_id"], hold["hold_id"],
                 entry["entry_id"], status["hold"]["hold_id"], free)
