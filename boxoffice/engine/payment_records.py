"""Our own record of every payment attempt (the `payments` table), written BEFORE the
provider is called. Its status is the single point of decision about a charge:
whoever moves a row out of 'pending' (a live confirm or the reconciler) owns the
outcome, so a charge ends in exactly one booking or one refund.

Every age here is measured on the database's clock (db.elapsed_s against CURRENT_TIMESTAMP),
because the database stamped the rows: the app's clock may be off, and is another clock on
every host."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine.db import elapsed_s
from boxoffice.engine.ids import new_payment_id


class PaymentStatus(StrEnum):
    PENDING = "pending"  # the provider was (or is being) called; the outcome is open
    CAPTURED = "captured"  # charged and booked (booking_id is set)
    DECLINED = "declined"  # the provider said no: nothing charged
    FAILED = "failed"  # the provider failed, or the charge was never made: nothing charged
    REFUNDED = "refunded"  # charged, no booking: the money goes back


COLUMNS = "id, hold_id, show_id, provider_key, amount, currency, fence, customer, seats, idempotency_key"


@dataclass(frozen=True)
class PaymentRecord:
    id: str
    hold_id: str
    show_id: int
    provider_key: str
    amount: int
    currency: str
    fence: int
    customer: str
    seats: list[str]
    idempotency_key: str | None

    @classmethod
    def from_row(cls, row: Any) -> PaymentRecord:
        return cls(row[0], row[1], int(row[2]), row[3], int(row[4]), row[5], int(row[6]), row[7],
                   str(row[8]).split(","), row[9])


@dataclass(frozen=True)
class KeyState:
    """What earlier confirms with one client key did for one hold."""

    booking_id: str | None  # a booking was made: answer it again
    in_flight: bool  # a payment of this key is still pending: wait for its outcome
    attempts: int  # payment rows so far (declined or failed ones included)


def provider_key(hold_id: str, client_key: str, attempt: int) -> str:
    """The key the provider sees: the client's key scoped to the hold, plus the attempt, so
    a retry after a decline is a new charge but a replay of the same attempt never is.
    Hashed: the hold id is a capability the provider has no business seeing."""
    digest = hashlib.sha256(f"{hold_id}\n{client_key}".encode()).hexdigest()[:40]
    return f"bo_{digest}_{attempt}"


class PaymentRecords:
    def __init__(self, sql: AsyncEngine, provider_name: str) -> None:
        # Every statement here stands alone: autocommit saves the BEGIN and COMMIT round trips.
        self.sql = sql.execution_options(isolation_level="AUTOCOMMIT")
        self.provider_name = provider_name

    async def key_state(self, hold_id: str, client_key: str) -> KeyState:
        async with self.sql.connect() as conn:
            rows = list(await conn.execute(
                text("SELECT status, booking_id FROM payments WHERE hold_id = :h AND idempotency_key = :k"),
                {"h": hold_id, "k": client_key},
            ))
        booking = next((r[1] for r in rows if r[0] == PaymentStatus.CAPTURED), None)
        return KeyState(booking, any(r[0] == PaymentStatus.PENDING for r in rows), len(rows))

    async def open(self, *, hold_id: str, show_id: int, fence: int, customer: str, seats: list[str],
                   amount: int, currency: str, client_key: str, attempt: int) -> PaymentRecord:
        """Records the intent to charge. Raises IntegrityError when a twin with the same
        client key recorded the same attempt first."""
        record = PaymentRecord(new_payment_id(), hold_id, show_id, provider_key(hold_id, client_key, attempt),
                               amount, currency, fence, customer, seats, client_key)
        async with self.sql.begin() as conn:
            await conn.execute(
                text("INSERT INTO payments (id, hold_id, show_id, provider_key, provider, amount, currency,"
                     " status, fence, customer, seats, idempotency_key) VALUES (:id, :hold, :show, :key,"
                     " :provider, :amount, :currency, 'pending', :fence, :customer, :seats, :client_key)"),
                {"id": record.id, "hold": hold_id, "show": show_id, "key": record.provider_key,
                 "provider": self.provider_name, "amount": amount, "currency": currency, "fence": fence,
                 "customer": customer, "seats": ",".join(seats), "client_key": client_key},
            )
        return record

    async def settle(self, payment_id: str, status: PaymentStatus, *, provider_settled: bool = False) -> bool:
        """Moves a pending payment to a final status other than captured (only the sale
        captures); False when it was not pending any more: someone else decided first."""
        assert status is not PaymentStatus.CAPTURED
        settled_at = ", provider_settled_at = CURRENT_TIMESTAMP" if provider_settled else ""
        async with self.sql.begin() as conn:
            moved = await conn.execute(
                text(f"UPDATE payments SET status = :s, updated_at = CURRENT_TIMESTAMP{settled_at}"
                     " WHERE id = :id AND status = 'pending'"),
                {"s": status.value, "id": payment_id},
            )
        return moved.rowcount == 1

    async def provider_settled(self, payment_id: str) -> None:
        async with self.sql.begin() as conn:
            await conn.execute(
                text("UPDATE payments SET provider_settled_at = CURRENT_TIMESTAMP WHERE id = :id"),
                {"id": payment_id},
            )

    async def status(self, payment_id: str) -> tuple[PaymentStatus, str | None]:
        async with self.sql.connect() as conn:
            row = (await conn.execute(
                text("SELECT status, booking_id FROM payments WHERE id = :id"), {"id": payment_id},
            )).one()
        return PaymentStatus(row[0]), row[1]

    async def pending_before(self, age_s: float, limit: int = 500) -> list[PaymentRecord]:
        """Pending payments older than `age_s`: their confirm was cut off (or is very slow)."""
        async with self.sql.connect() as conn:
            rows = await conn.execute(
                text(f"SELECT {COLUMNS} FROM payments WHERE status = 'pending'"
                     f" AND {elapsed_s(conn, 'created_at')} > :age ORDER BY created_at LIMIT :limit"),
                {"age": age_s, "limit": limit},
            )
            return [PaymentRecord.from_row(r) for r in rows]

    async def watched_due(self, grace_s: float, window_s: float,
                          limit: int = 500) -> list[tuple[PaymentRecord, bool]]:
        """Failed or refunded payments whose provider side was not yet seen to agree (a refund
        cut off, a charge that may land after we gave up), due a look-up now, each with
        whether its settle window has passed. Due: decided more than `grace_s` ago, and never
        looked up, or now at least twice as old as at the last look-up (so ~log2(window /
        grace) look-ups in all, not one per pass), or past the window and last looked up
        before it (one last look)."""
        async with self.sql.connect() as conn:
            age = elapsed_s(conn, "updated_at")
            since_look = elapsed_s(conn, "provider_checked_at")
            age_at_look = elapsed_s(conn, "updated_at", "provider_checked_at")
            rows = await conn.execute(
                text(f"SELECT {COLUMNS}, {age} > :window FROM payments WHERE provider_settled_at IS NULL"
                     f" AND status IN ('failed', 'refunded') AND {age} > :grace"
                     f" AND (provider_checked_at IS NULL OR {since_look} >= {age_at_look}"
                     f" OR ({age} > :window AND {age_at_look} <= :window))"
                     " ORDER BY updated_at LIMIT :limit"),
                {"grace": grace_s, "window": window_s, "limit": limit},
            )
            return [(PaymentRecord.from_row(r), bool(r[-1])) for r in rows]

    async def looked_up(self, payment_id: str) -> None:
        """The provider had nothing final to say about the payment yet: look again later."""
        async with self.sql.begin() as conn:
            await conn.execute(
                text("UPDATE payments SET provider_checked_at = CURRENT_TIMESTAMP WHERE id = :id"),
                {"id": payment_id},
            )
