"""The contract's errors (docs/API.md "Errors"): the one table that gives each engine error
its HTTP status and error code, the HTTP-only errors, and the answer they all make.
The engine raises domain errors with a message and the facts the contract adds to the body
(`extra`); only this module knows statuses."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from boxoffice.api.responses import JSON
from boxoffice.engine import errors


class PayloadTooLarge(errors.BoxOfficeError):
    """A request body over the limit (api/bodylimit.py, api/validation.py)."""


class Unauthorized(errors.BoxOfficeError):
    """An admin request without a valid token (api/admin.py)."""


# error class -> (status, error code); a class not listed answers as its nearest listed
# base, and one with none as the unexpected error it is (tests/api/test_errors.py lists them all).
TABLE: dict[type[errors.BoxOfficeError], tuple[int, str]] = {
    errors.InvalidRequest: (422, "invalid_request"),
    errors.NotFound: (404, "not_found"),
    errors.CancelTooLate: (409, "cancel_too_late"),
    errors.SeatsUnavailable: (409, "seats_unavailable"),
    errors.HoldExpired: (410, "hold_expired"),
    errors.HoldNotActive: (409, "hold_not_active"),
    errors.EntryNotWaiting: (409, "entry_not_waiting"),
    errors.PaymentDeclined: (402, "payment_declined"),
    errors.LimitExceeded: (429, "limit_exceeded"),
    errors.NoChance: (409, "no_chance"),
    errors.AlreadyWaiting: (409, "already_waiting"),
    errors.ShowClosed: (409, "show_closed"),
    errors.WouldStrandSeat: (409, "would_strand_seat"),
    errors.SaleNotOpen: (409, "sale_not_open"),
    errors.QueueNotOpen: (409, "queue_not_open"),
    errors.AlreadyQueued: (409, "already_queued"),
    errors.QueueTicketEnded: (409, "ticket_not_waiting"),
    errors.PassRequired: (403, "pass_required"),
    errors.Unavailable: (503, "unavailable"),
    PayloadTooLarge: (413, "payload_too_large"),
    Unauthorized: (401, "unauthorized"),
}


def status_and_code(error: errors.BoxOfficeError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        answer = TABLE.get(cls)
        if answer is not None:
            return answer
    return 500, "internal_error"


def code_of(error: errors.BoxOfficeError) -> str:
    return status_and_code(error)[1]


def error_body(error: errors.BoxOfficeError) -> dict[str, Any]:
    """The contract's error object: the code, the message, the error's own fields."""
    return {"error": code_of(error), "message": error.message, **error.extra}


def error_headers(error: errors.BoxOfficeError) -> dict[str, str]:
    """The headers an error's answer carries besides the JSON ones."""
    if isinstance(error, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, errors.Unavailable):
        return {"Retry-After": str(error.retry_after_s)}
    retry_after = error.extra.get("retry_after_s") if isinstance(error, errors.LimitExceeded) else None
    return {"Retry-After": str(retry_after)} if retry_after else {}


def error_response(error: errors.BoxOfficeError) -> JSON:
    status, _ = status_and_code(error)
    return JSON(error_body(error), status_code=status, headers=error_headers(error))


def outcome_of(exc: BaseException) -> str:
    """The outcome label (in /metrics) of an operation that raised `exc`: the error code."""
    if isinstance(exc, errors.BoxOfficeError):
        return code_of(exc)
    if isinstance(exc, RedisError | DBAPIError | OSError):
        return "unavailable"
    if isinstance(exc, Exception):
        return "error"
    return "ok"  # cancelled (the client went away): counted as it ended for the client
