"""Browse endpoints, on the real servers and on the embedded backend."""

from __future__ import annotations

import httpx
import pytest

from tests.support.backends import BOTH

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)


async def test_cities_are_sorted_by_name_with_cinema_counts(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/cities")
    assert answer.status_code == 200
    cities = answer.json()["cities"]
    assert [c["name"] for c in cities] == sorted(c["name"] for c in cities)
    assert all(c["cinema_count"] == 2 and len(c["country"]) == 2 for c in cities)
    assert "public" in answer.headers["cache-control"]


async def test_a_city_lists_its_movies_and_their_cinemas_and_show_times(client: httpx.AsyncClient) -> None:
    movies = (await client.get("/v1/cities/1/movies")).json()["movies"]
    assert movies, "the demo city shows movies"
    assert set(movies[0]) == {"id", "title", "runtime_min", "rating", "release_date", "genres"}
    shows = (await client.get(f"/v1/cities/1/movies/{movies[0]['id']}/shows")).json()["cinemas"]
    assert shows and shows[0]["shows"]
    first = shows[0]["shows"][0]
    assert set(first) == {"id", "starts_at", "hall", "available"}
    assert first["starts_at"].endswith("Z") and first["available"] > 0
    day = first["starts_at"][:10]
    one_day = (await client.get(f"/v1/cities/1/movies/{movies[0]['id']}/shows", params={"date": day})).json()
    assert all(s["starts_at"].startswith(day) for c in one_day["cinemas"] for s in c["shows"])
    detail = (await client.get(f"/v1/shows/{first['id']}")).json()
    assert detail["id"] == first["id"] and detail["status"] == "open"
    assert {p["category"] for p in detail["prices"]} == {"standard", "premium", "vip"}
    assert all(isinstance(p["amount"], int) and p["currency"] == "EUR" for p in detail["prices"])


@pytest.mark.parametrize("path", ["/v1/cities/999999/movies", "/v1/cities/1/movies/999999/shows",
                                  "/v1/shows/999999", "/v1/shows/999999/seats",
                                  "/v1/shows/999999/seats/counts"])
async def test_unknown_ids_answer_404_in_the_error_format(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found" and answer.json()["message"]


@pytest.mark.parametrize("path", ["/v1/cities/abc/movies", "/v1/cities/-1/movies", "/v1/shows/0",
                                  "/v1/shows/1e3", "/v1/shows/99999999999999999999999",
                                  "/v1/cities/1/movies/1/shows?date=tomorrow"])
async def test_malformed_ids_answer_422_naming_the_field(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid_request" and body["details"][0]["field"]


async def test_the_seat_map_tells_every_seat_apart(client: httpx.AsyncClient, show: object) -> None:
    show_id = show.show_id  # type: ignore[attr-defined]
    answer = await client.get(f"/v1/shows/{show_id}/seats")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json" and answer.headers["cache-control"] == "no-store"
    assert int(answer.headers["content-length"]) == len(answer.content)
    body = answer.json()
    assert len(body["seats"]) == len(show.seat_ids)  # type: ignore[attr-defined]
    assert body["counts"] == {"available": len(body["seats"]), "held": 0, "booked": 0}
    assert {s["kind"] for s in body["seats"]} == {"standard", "wheelchair", "companion"}


async def test_the_counts_are_the_seat_maps_own_as_seats_are_held_and_booked(
        client: httpx.AsyncClient, show: object) -> None:
    show_id, seat_ids = show.show_id, show.seat_ids  # type: ignore[attr-defined]

    async def both() -> tuple[dict[str, int], dict[str, int]]:
        seat_map = (await client.get(f"/v1/shows/{show_id}/seats")).json()
        answer = await client.get(f"/v1/shows/{show_id}/seats/counts")
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
        assert answer.json()["show_id"] == str(show_id)
        return answer.json()["counts"], seat_map["counts"]

    counts, from_map = await both()
    assert counts == from_map == {"available": len(seat_ids), "held": 0, "booked": 0}
    held = await client.post(f"/v1/shows/{show_id}/holds", json={"seats": seat_ids[:3], "customer": "a@example.org"})
    assert held.status_code == 201
    counts, from_map = await both()
    assert counts == from_map and counts["held"] == 3
    booked = await client.post(f"/v1/holds/{held.json()['hold_id']}/confirm",
                               json={"payment": {"method": "card", "token": "tok_ok"}},
                               headers={"Idempotency-Key": "counts-test-key-0001"})
    assert booked.status_code == 201
    best = await client.post(f"/v1/shows/{show_id}/holds", json={"count": 4, "customer": "b@example.org"})
    assert best.status_code == 201
    counts, from_map = await both()
    assert counts == from_map == {"available": len(seat_ids) - 7, "held": 4, "booked": 3}


async def test_openapi_describes_every_browse_path(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ["/v1/cities", "/v1/cities/{city_id}/movies", "/v1/cities/{city_id}/movies/{movie_id}/shows",
                 "/v1/shows/{show_id}", "/v1/shows/{show_id}/seats", "/v1/shows/{show_id}/seats/counts"]:
        assert "get" in spec["paths"][path]
