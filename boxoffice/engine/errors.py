"""Engine errors: one class per refusal of the domain, carrying a message and the facts the
caller may need (`extra`); which HTTP status and error code each answers is api/errors.py's
table, not the engine's. The scripts' negative return codes are mirrored in ScriptCode and
turned into these in one place (boxoffice/engine/redis/gateway.py)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from boxoffice.engine.times import ms_to_rfc3339


class ScriptCode(IntEnum):
    """Return codes of lua/*.lua, documented in each script's header."""

    NOT_LOADED = -1
    SEATS_UNAVAILABLE = -2
    CUSTOMER_LIMIT = -3
    NOT_ACTIVE = -4
    UNKNOWN_SEAT = -5
    CONFIRM_IN_PROGRESS = -6
    EXPIRED = -7
    UNKNOWN_HOLD = -8
    ALREADY_WAITING = -9
    NO_CHANCE = -10
    NOT_SELLING = -11  # the show started or was closed
    WOULD_STRAND_SEAT = -12  # an explicit hold would leave a single seat stranded
    RATE_LIMITED = -20  # over an abuse limit (lua/includes/ratelimit.lua)
    # The release queue (lua/includes/gate.lua, lua/queue_join-1.lua).
    SALE_NOT_OPEN = -21
    PASS_REQUIRED = -22
    QUEUE_NOT_OPEN = -23
    ALREADY_QUEUED = -24


class BoxOfficeError(Exception):
    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFound(BoxOfficeError):
    """No such show, hold, booking or entry (or an id that is not genuine)."""


class CancelTooLate(BoxOfficeError):
    """The show starts too soon for a cancellation."""


class InvalidRequest(BoxOfficeError):
    """Input that breaks a rule; details name each field and its problem."""

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, details=details or [])


class SeatsUnavailable(BoxOfficeError):
    """A wanted seat is taken (or kept for the waitlist)."""


class HoldExpired(BoxOfficeError):
    """The hold's deadline passed before its confirm."""


class HoldNotActive(BoxOfficeError):
    """The hold was released, confirmed or is being confirmed."""


class EntryNotWaiting(BoxOfficeError):
    """The waitlist entry has ended."""


class PaymentDeclined(BoxOfficeError):
    """The payment provider declined the charge."""


class LimitExceeded(BoxOfficeError):
    """A customer's or a client's limit was reached."""


class NoChance(BoxOfficeError):
    """Not enough unsold seats remain for the waitlist request."""


class AlreadyWaiting(BoxOfficeError):
    """The customer already waits for this show."""


class ShowClosed(BoxOfficeError):
    """The show no longer sells: started or closed."""


class WouldStrandSeat(BoxOfficeError):
    """An explicit hold would leave a single seat stranded."""


class SaleNotOpen(BoxOfficeError):
    """A hold or join before the show's sales open."""

    def __init__(self, message: str, opens_ms: int) -> None:
        super().__init__(message, sale_opens_at=ms_to_rfc3339(opens_ms))


class QueueNotOpen(BoxOfficeError):
    """A queue join before joining opens; opens_ms 0: the show is on sale without a queue."""

    def __init__(self, message: str, opens_ms: int = 0, queue_opens_ms: int = 0) -> None:
        if opens_ms == 0:
            super().__init__(message, sale_opens_at=None)
        else:
            super().__init__(message, sale_opens_at=ms_to_rfc3339(opens_ms),
                             queue_opens_at=ms_to_rfc3339(queue_opens_ms))


class AlreadyQueued(BoxOfficeError):
    """The customer already holds a ticket of this show's queue."""


class PassRequired(BoxOfficeError):
    """A hold or join of a show whose queue runs, without a valid pass of this customer and show."""


class QueueTicketEnded(BoxOfficeError):
    """The ticket no longer waits (it cannot leave again)."""


class Unavailable(BoxOfficeError):
    """A dependency (the payment provider) failed: try again after retry_after_s."""

    def __init__(self, message: str, retry_after_s: int = 2, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after_s = retry_after_s
