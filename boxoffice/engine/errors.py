"""Engine errors: one class per contract error code. The scripts' negative return codes
are mirrored in ScriptCode and turned into these in one place (boxoffice/engine/redis/gateway.py)."""

from __future__ import annotations

import time
from enum import IntEnum
from typing import Any


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
    # The release queue (lua/includes/gate.lua, lua/queue_join-8.lua).
    SALE_NOT_OPEN = -21
    PASS_REQUIRED = -22
    QUEUE_NOT_OPEN = -23
    ALREADY_QUEUED = -24


class BoxOfficeError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


class NotFound(BoxOfficeError):
    status, code = 404, "not_found"


class Unauthorized(BoxOfficeError):
    status, code = 401, "unauthorized"


class CancelTooLate(BoxOfficeError):
    status, code = 409, "cancel_too_late"


class InvalidRequest(BoxOfficeError):
    status, code = 422, "invalid_request"

    def __init__(self, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, details=details or [])


class SeatsUnavailable(BoxOfficeError):
    status, code = 409, "seats_unavailable"


class HoldExpired(BoxOfficeError):
    status, code = 410, "hold_expired"


class HoldNotActive(BoxOfficeError):
    status, code = 409, "hold_not_active"


class EntryNotWaiting(BoxOfficeError):
    status, code = 409, "entry_not_waiting"


class PaymentDeclined(BoxOfficeError):
    status, code = 402, "payment_declined"


class LimitExceeded(BoxOfficeError):
    status, code = 429, "limit_exceeded"


class NoChance(BoxOfficeError):
    status, code = 409, "no_chance"


class AlreadyWaiting(BoxOfficeError):
    status, code = 409, "already_waiting"


class ShowClosed(BoxOfficeError):
    status, code = 409, "show_closed"


class WouldStrandSeat(BoxOfficeError):
    status, code = 409, "would_strand_seat"


def _utc_text(ms: int) -> str:
    """RFC 3339 of a Redis-clock time in ms (the gateway may not import the domain's formatter)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


class SaleNotOpen(BoxOfficeError):
    status, code = 409, "sale_not_open"

    def __init__(self, message: str, opens_ms: int) -> None:
        super().__init__(message, sale_opens_at=_utc_text(opens_ms))


class QueueNotOpen(BoxOfficeError):
    """opens_ms 0: the show is on sale without a queue."""

    status, code = 409, "queue_not_open"

    def __init__(self, message: str, opens_ms: int = 0, queue_opens_ms: int = 0) -> None:
        if opens_ms == 0:
            super().__init__(message, sale_opens_at=None)
        else:
            super().__init__(message, sale_opens_at=_utc_text(opens_ms), queue_opens_at=_utc_text(queue_opens_ms))


class AlreadyQueued(BoxOfficeError):
    status, code = 409, "already_queued"


class PassRequired(BoxOfficeError):
    status, code = 403, "pass_required"


class QueueTicketEnded(BoxOfficeError):
    status, code = 409, "ticket_not_waiting"


class PayloadTooLarge(BoxOfficeError):
    status, code = 413, "payload_too_large"


class Unavailable(BoxOfficeError):
    status, code = 503, "unavailable"

    def __init__(self, message: str, retry_after_s: int = 2, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.retry_after_s = retry_after_s
