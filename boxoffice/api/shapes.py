"""The contract's JSON shapes of the engine's domain objects (docs/API.md), each written
once and used by the routes and the streams alike. Field order is the contract's: the
answers are the same bytes whichever route or stream sends them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from boxoffice.engine.admin import ShowReport
from boxoffice.engine.bookings import Booking
from boxoffice.engine.catalog import Cinema, CinemaShows, City, Hall, Movie, ShowInfo, ShowTime
from boxoffice.engine.db import rfc3339
from boxoffice.engine.holds import Hold
from boxoffice.engine.release_queue import QueueInfo, QueuePass, QueueTicket, ShowWithQueue
from boxoffice.engine.times import ms_to_rfc3339
from boxoffice.engine.waitlist import WaitlistEntry

# -- browse -------------------------------------------------------------------------


def city_json(city: City) -> dict[str, Any]:
    return {"id": str(city.id), "name": city.name, "country": city.country, "cinema_count": city.cinema_count}


def cities_json(cities: Iterable[City]) -> dict[str, Any]:
    return {"cities": [city_json(city) for city in cities]}


def movie_json(movie: Movie) -> dict[str, Any]:
    return {"id": str(movie.id), "title": movie.title, "runtime_min": movie.runtime_min, "rating": movie.rating,
            "release_date": movie.release_date.isoformat(), "genres": list(movie.genres)}


def movies_json(movies: Iterable[Movie]) -> dict[str, Any]:
    return {"movies": [movie_json(movie) for movie in movies]}


def show_time_json(show: ShowTime) -> dict[str, Any]:
    return {"id": str(show.id), "starts_at": rfc3339(show.starts_at),
            "hall": {"id": str(show.hall_id), "name": show.hall_name}, "available": show.available}


def cinemas_json(cinemas: Iterable[CinemaShows]) -> dict[str, Any]:
    return {"cinemas": [{"id": str(c.cinema.id), "name": c.cinema.name, "address": c.cinema.address,
                         "shows": [show_time_json(show) for show in c.shows]} for c in cinemas]}


def show_json(show: ShowInfo) -> dict[str, Any]:
    """The catalog's part of GET /v1/shows/{id}: everything but its live `queue`."""
    cinema, hall = show.cinema, show.hall
    return {
        "id": str(show.id),
        "starts_at": rfc3339(show.starts_at),
        "movie": movie_json(show.movie),
        "cinema": {"id": str(cinema.id), "name": cinema.name, "address": cinema.address,
                   "city_id": str(cinema.city_id)},
        "hall": {"id": str(hall.id), "name": hall.name, "seat_count": hall.seat_count},
        "prices": [{"category": category, "amount": amount, "currency": show.currency}
                   for category, amount in show.prices.items()],
        "status": show.status,
        "sale_opens_at": None if show.sale_opens_at is None else rfc3339(show.sale_opens_at),
    }


def queue_json(queue: QueueInfo) -> dict[str, Any]:
    return {"active": queue.active, "length": queue.length, "order": queue.order}


def show_with_queue_json(public: ShowWithQueue) -> dict[str, Any]:
    """GET /v1/shows/{id}, and the admin API's answers about a show."""
    return {**show_json(public.show), "queue": queue_json(public.queue)}


# -- holds and bookings -------------------------------------------------------------


class SeatsOfCustomer(Protocol):
    """What a hold and a booking both are: a customer's seats of a show."""

    @property
    def show_id(self) -> int: ...

    @property
    def seats(self) -> list[str]: ...

    @property
    def customer(self) -> str: ...


def _claim_json(id_field: str, claim_id: str, claim: SeatsOfCustomer) -> dict[str, Any]:
    """The opening of a hold's or a booking's JSON: its id, then whose seats of which show."""
    return {id_field: claim_id, "show_id": str(claim.show_id), "seats": claim.seats, "customer": claim.customer}


def hold_json(hold: Hold) -> dict[str, Any]:
    body = _claim_json("hold_id", hold.hold_id, hold)
    body["status"] = hold.status.value
    body["expires_at"] = ms_to_rfc3339(hold.expires_at_ms)
    body["ttl_s"] = hold.ttl_s
    if hold.booking_id:
        body["booking_id"] = hold.booking_id
    return body


def booking_json(booking: Booking) -> dict[str, Any]:
    body = _claim_json("booking_id", booking.booking_id, booking)
    body["amount"] = booking.amount
    body["currency"] = booking.currency
    body["status"] = booking.status
    body["created_at"] = rfc3339(booking.created_at)
    if booking.refund is not None:
        body["refund"] = {"amount": booking.refund.amount, "currency": booking.refund.currency,
                          "status": "refunded" if booking.refund.refunded else "pending"}
    elif booking.cancel_until is not None:
        body["cancel_until"] = rfc3339(booking.cancel_until)
    return body


# -- waitlist and release queue -----------------------------------------------------


def joined_entry_json(entry: WaitlistEntry) -> dict[str, Any]:
    """The 201 of a waitlist join: the entry, and its hold when it was granted at once."""
    body: dict[str, Any] = {"entry_id": entry.entry_id, "show_id": str(entry.show_id), "count": entry.count,
                            "category": entry.category, "position": entry.position, "status": entry.status.value}
    if entry.hold is not None:
        body["hold"] = hold_json(entry.hold)
    return body


def entry_json(entry: WaitlistEntry) -> dict[str, Any]:
    """GET /v1/waitlist/{id} and each event of its stream."""
    body: dict[str, Any] = {"entry_id": entry.entry_id, "show_id": str(entry.show_id),
                            "status": entry.status.value}
    if entry.count is not None:  # an entry Redis forgot answers without its count and category
        body["count"] = entry.count
        body["category"] = entry.category
    body["position"] = entry.position
    body["eta_s"] = entry.eta_s
    body["hold"] = None if entry.hold is None else hold_json(entry.hold)
    return body


def pass_json(queue_pass: QueuePass) -> dict[str, Any]:
    return {"token": queue_pass.token, "expires_at": ms_to_rfc3339(queue_pass.expires_at_ms),
            "ttl_s": queue_pass.ttl_s}


def ticket_json(ticket: QueueTicket) -> dict[str, Any]:
    """A release queue ticket: the 201 of a join, GET /v1/queue/{id} and each event of its stream."""
    return {"ticket_id": ticket.ticket_id, "show_id": str(ticket.show_id), "customer": ticket.customer,
            "status": ticket.status.value, "position": ticket.position, "eta_s": ticket.eta_s,
            "pass": None if ticket.queue_pass is None else pass_json(ticket.queue_pass)}


# -- the admin API ------------------------------------------------------------------


def created_cinema_json(cinema: Cinema) -> dict[str, Any]:
    return {"id": str(cinema.id), "city_id": str(cinema.city_id), "name": cinema.name, "address": cinema.address}


def created_hall_json(hall: Hall) -> dict[str, Any]:
    return {"id": str(hall.id), "seat_count": hall.seat_count}


def report_json(report: ShowReport) -> dict[str, Any]:
    return {"show_id": str(report.show_id), "status": report.status, "seats": report.seats, "free": report.free,
            "held": report.held, "sold": report.sold, "waiting": report.waiting, "queued": report.queued,
            "revenue": {"amount": report.revenue, "currency": report.currency},
            "refunded": {"amount": report.refunded, "currency": report.currency},
            "bookings": report.bookings, "cancelled": report.cancelled}
