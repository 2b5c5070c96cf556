"""Statuses of the domain, as str enums (their values are the contract's words)."""

from __future__ import annotations

from enum import StrEnum


class SeatStatus(StrEnum):
    AVAILABLE = "available"  # free, and no waiter could use it
    HELD = "held"  # in a hold, or kept for the waitlist
    BOOKED = "booked"  # sold: committed in PostgreSQL


class HoldStatus(StrEnum):
    ACTIVE = "active"  # seats are this hold's until expires_at (or while a confirm runs)
    EXPIRED = "expired"  # the deadline passed unpaid
    RELEASED = "released"  # given back by its owner
    CONFIRMED = "confirmed"  # paid: a booking exists


class EntryStatus(StrEnum):
    WAITING = "waiting"
    GRANTED = "granted"  # seats were granted as a hold
    IMPOSSIBLE = "impossible"  # not enough unsold seats remain
    CANCELLED = "cancelled"  # the customer left
    EXPIRED = "expired"  # the show started


class TicketStatus(StrEnum):
    """A release queue ticket's (docs/API.md, "A ticket")."""

    WAITING = "waiting"
    ADMITTED = "admitted"  # a pass was given; it stays admitted once the pass is used
    EXPIRED = "expired"  # the pass lapsed unused, or Redis no longer knows the ticket
    SOLD_OUT = "sold_out"
    LEFT = "left"
    CLOSED = "closed"  # the show was closed or started
