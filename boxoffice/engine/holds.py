"""Holds: the seat map, holding seats (by list or best available), release, status and
closing a show's sale (show loading: engine/show_loader.py).
Every change of seat state is one Lua script (lua/); this module validates input,
calls the script and turns its answer into results or engine errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from boxoffice.engine.errors import HoldNotActive, InvalidRequest, NotFound
from boxoffice.engine.ids import is_grant_id
from boxoffice.engine.limits import MAX_SEATS_PER_CUSTOMER
from boxoffice.engine.redis.gateway import NO_LIMITS, BestRequest, RateLimits, ShowScripts
from boxoffice.engine.seat_view import FREE, STATUS_OF, shown_map
from boxoffice.engine.statuses import HoldStatus, SeatStatus

if TYPE_CHECKING:
    from boxoffice.engine.bookings import Bookings
    from boxoffice.engine.catalog import Catalog, HallPlan
    from boxoffice.engine.ids import IdSigner


@dataclass(frozen=True)
class Hold:
    hold_id: str
    show_id: int
    seats: list[str]
    customer: str
    status: HoldStatus
    expires_at_ms: int
    now_ms: int
    booking_id: str | None = None

    @property
    def ttl_s(self) -> int:
        """Whole seconds left (0 unless active), on Redis's clock at the read."""
        if self.status is not HoldStatus.ACTIVE:
            return 0
        return max(0, math.ceil((self.expires_at_ms - self.now_ms) / 1000))


class Holds:
    """Holds and the seat map of a show: validates input, calls the show scripts through
    the gateway, and turns their answers into Hold values or engine errors."""

    def __init__(self, gateway: ShowScripts, catalog: Catalog, signer: IdSigner, bookings: Bookings) -> None:
        self.gateway = gateway
        self.catalog = catalog
        self.signer = signer
        self.bookings = bookings

    # -- seat map -----------------------------------------------------------------

    async def seat_state(self, show_id: int, now_ms: int | None = None,
                         plan: HallPlan | None = None) -> tuple[str, list[str]]:
        """Every seat of the show in one string, a character per seat in the hall plan's order
        ('0' free, 'h' held, 'b' booked; lua/includes/statusmap.lua), and the price categories
        the queue waits for ("*": any). One round trip; the seat map splices it (api/seatmap.py)."""
        if plan is None:
            plan = await self.catalog.hall_plan((await self.catalog.show(show_id)).hall_id)
        for _ in range(3):
            status_map, waited, held, booked = await self.gateway.seat_status(show_id, now_ms)
            if (isinstance(status_map, str) and len(status_map) == len(plan.seats)
                    and status_map.count("h") == held and status_map.count("b") == booked):
                return status_map, waited
            # Not numbered yet (or only provisionally), numbered for another plan, or its counts
            # disagree with the stats hash: number the seats in plan order and rebuild the
            # string from the live holds and the booked seats (lua/index_seats-1.lua).
            await self.gateway.index_seats(show_id, [seat.id for seat in plan.seats], now_ms)
        raise RuntimeError(f"show {show_id}: the seat status map would not build")

    async def seat_statuses(self, show_id: int, now_ms: int | None = None) -> dict[str, SeatStatus]:
        """The status every seat shows (seat_view.py) but the available ones, in one round trip.
        now_ms (tests only) moves the scripts' clock, as for every method below."""
        show = await self.catalog.show(show_id)
        plan = await self.catalog.hall_plan(show.hall_id)
        status_map, waited_categories = await self.seat_state(show_id, now_ms, plan)
        shown = shown_map(status_map, [seat.category for seat in plan.seats], waited_categories)
        return {seat.id: STATUS_OF[char] for seat, char in zip(plan.seats, shown, strict=True) if char != FREE}

    # -- holds --------------------------------------------------------------------

    async def hold(self, show_id: int, seats: list[str], customer: str, now_ms: int | None = None,
                   idempotency_key: str | None = None, limits: RateLimits = NO_LIMITS,
                   queue_pass: str = "") -> Hold:
        """Holds the seats; whether the show still sells is Redis's decision (hold_seats). With
        an idempotency key the hold's id derives from it, so a repeated request answers the
        hold its first run made."""
        await self.catalog.show(show_id)  # NotFound for a show that does not exist
        # The list's form is api/validation.py's to check; hold_seats refuses seats not in
        # the hall and repeats (they would corrupt its counts).
        hold_id = self.signer.new_hold_id(show_id, customer, idempotency_key)
        held = await self.gateway.hold_seats(show_id, hold_id, customer, MAX_SEATS_PER_CUSTOMER, seats, now_ms,
                                             limits, queue_pass)
        if held.replayed:
            return await self.hold_status(held.hold_id, now_ms)
        return Hold(held.hold_id, show_id, list(seats), customer, HoldStatus.ACTIVE, held.expires_at_ms,
                    held.now_ms)

    async def hold_best(self, show_id: int, want: BestRequest, customer: str, now_ms: int | None = None,
                        idempotency_key: str | None = None, limits: RateLimits = NO_LIMITS,
                   queue_pass: str = "") -> Hold:
        """Best available: finds and holds the best free seats for `want` in one script call
        (lua/hold_best-1.lua), with every rule of an explicit hold; the hold's id is made as
        for hold(), so a repeated request answers the hold its first run made."""
        show = await self.catalog.show(show_id)
        if want.category is not None and want.category not in show.prices:
            # The count and kind are api/validation.py's; the show's categories are the engine's.
            raise InvalidRequest("the request is not valid", details=[
                {"field": "category", "problem": "not a price category of this show"}])
        hold_id = self.signer.new_hold_id(show_id, customer, idempotency_key)
        held = await self.gateway.hold_best(show_id, hold_id, customer, MAX_SEATS_PER_CUSTOMER, want, now_ms,
                                            limits, queue_pass)
        if held.replayed:
            return await self.hold_status(held.hold_id, now_ms)
        return Hold(held.hold_id, show_id, list(held.seats), customer, HoldStatus.ACTIVE, held.expires_at_ms,
                    held.now_ms)

    def parse_hold_id(self, hold_id: str) -> int:
        parsed = self.signer.parse(hold_id, "HG")
        if parsed is None:
            raise NotFound("no such hold")
        return parsed.show_id

    async def hold_status(self, hold_id: str, now_ms: int | None = None) -> Hold:
        show_id = self.parse_hold_id(hold_id)
        record = await self.gateway.hold_status(show_id, hold_id, now_ms)
        if record is None:
            # A genuine id Redis no longer knows: lost with a wiped Redis, or long gone.
            # PostgreSQL still knows whether it was paid.
            booking_id = await self.bookings.booking_of_hold(hold_id)
            if booking_id is not None:
                booking = await self.bookings.get(booking_id)
                return Hold(hold_id, show_id, booking.seats, booking.customer, HoldStatus.CONFIRMED,
                            0, 0, booking_id)
            if is_grant_id(hold_id):
                # A grant's id is its entry's id with the letter changed: unknown means never granted.
                raise NotFound("no such hold")
            return Hold(hold_id, show_id, [], "", HoldStatus.EXPIRED, 0, 0)
        status = HoldStatus.ACTIVE if record.status == "confirming" else HoldStatus(record.status)
        return Hold(hold_id, show_id, record.seats, record.customer, status, record.expires_at_ms, record.now_ms,
                    record.booking_id or None)

    async def release(self, hold_id: str, now_ms: int | None = None) -> None:
        """Releases an active hold; releasing a released hold again succeeds (idempotent)."""
        show_id = self.parse_hold_id(hold_id)
        status = await self.gateway.release_hold(show_id, hold_id, now_ms)
        if status is not None:
            if not status and is_grant_id(hold_id):
                raise NotFound("no such hold")
            status = status or "expired"
            raise HoldNotActive(f"the hold is {status}", status=status)

    async def close_show(self, show_id: int) -> tuple[int, int]:
        """Closes the show's sale: PostgreSQL records it first (a later load of the show
        reads it there), then one atomic step in Redis ends its holds and its queue. Safe to
        repeat. Returns (holds released, waiters cancelled) by this call."""
        await self.catalog.set_show_status(show_id, "closed")
        return await self.gateway.close_show(show_id)
