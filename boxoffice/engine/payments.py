"""Payment providers. The engine talks to a PaymentProvider only; the one in use is named by
BOXOFFICE_PAYMENT_PROVIDER ("module:Class"), so a real provider plugs in by configuration.

Every call carries the engine's idempotency key: calling twice with the same key never
charges twice, and `lookup` tells the reconciler what happened to a key after a crash.
`authorize` may capture at once (the simulated provider does) or answer AUTHORIZED, and
then the engine calls `capture`; `refund` gives back a capture or voids an authorization.

Only some answers are final (`ChargeStatus.final`): declined, refunded (or voided) and
expired mean the provider will never take money under that key. An authorization can still
be captured until it is voided or expires, a capture stands until refunded, and "nothing
found" (`lookup` answers None) is never final: a request that timed out on our side may
still be in flight and land later. The reconciler watches such keys (engine/reconciler.py).
A provider class is built with the service's SQL engine (the simulated one keeps its
books there; a real one may ignore it and read its own settings from the environment)."""

from __future__ import annotations

import asyncio
import importlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


class ChargeStatus(StrEnum):
    AUTHORIZED = "authorized"  # approved, not taken yet: capture it (or refund to void it)
    CAPTURED = "captured"  # the money is taken
    DECLINED = "declined"  # refused: nothing taken
    REFUNDED = "refunded"  # given back (or the authorization voided)
    EXPIRED = "expired"  # an authorization that lapsed uncaptured: nothing taken, never capturable

    @property
    def final(self) -> bool:
        """The provider will never take money under this key again."""
        return self in (ChargeStatus.DECLINED, ChargeStatus.REFUNDED, ChargeStatus.EXPIRED)


@dataclass(frozen=True)
class Charge:
    key: str
    status: ChargeStatus
    reference: str | None
    amount: int
    currency: str


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed: nothing was charged."""


class PaymentProvider(Protocol):
    name: str

    async def authorize(self, key: str, token: str, amount: int, currency: str) -> Charge: ...
    async def capture(self, key: str) -> Charge: ...
    async def refund(self, key: str) -> Charge: ...
    async def lookup(self, key: str) -> Charge | None: ...


def load_provider(spec: str, engine: AsyncEngine) -> PaymentProvider:
    module_name, _, class_name = spec.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    return cls(engine)  # type: ignore[no-any-return]


class SimulatedProvider:
    """The contract's test provider: tok_ok approves, tok_decline declines, tok_slow approves
    after 2 s, tok_error fails like an outage. Authorize captures at once (card-present
    style); its books live in the simulated_payments table, outside our transactions.

    tok_timeout is a request whose answer is lost on the way back: the engine sees an outage
    (ProviderUnavailable), `lookup` finds nothing, yet the request is still in flight in this
    process and is captured when `land_in_flight` is called. A test decides when it lands
    (say, after the reconciler's first look); a served process never lands it."""

    name = "simulated"
    SLOW_S = 2.0

    def __init__(self, engine: AsyncEngine) -> None:
        # Single statements: autocommit saves the BEGIN and COMMIT round trips.
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.in_flight: dict[str, tuple[int, str]] = {}  # tok_timeout requests not landed yet

    async def authorize(self, key: str, token: str, amount: int, currency: str) -> Charge:
        if token == "tok_error":
            raise ProviderUnavailable("the simulated provider is failing (tok_error)")
        if token == "tok_timeout":
            self.in_flight.setdefault(key, (amount, currency))
            raise ProviderUnavailable("the simulated provider did not answer in time (tok_timeout)")
        if token == "tok_slow":
            await asyncio.sleep(self.SLOW_S)
        elif token != "tok_ok":
            return Charge(key, ChargeStatus.DECLINED, None, amount, currency)
        return await self._capture_now(key, amount, currency)

    async def land_in_flight(self) -> list[Charge]:
        """Lands every tok_timeout request still in flight: each is captured now."""
        landed = []
        while self.in_flight:
            key, (amount, currency) = self.in_flight.popitem()
            landed.append(await self._capture_now(key, amount, currency))
        return landed

    async def _capture_now(self, key: str, amount: int, currency: str) -> Charge:
        async with self.engine.begin() as conn:
            # The same key twice never charges twice: the first charge answers again.
            row = (await conn.execute(
                text("INSERT INTO simulated_payments (provider_key, reference, amount, currency, status)"
                     " VALUES (:k, :r, :a, :c, 'captured') ON CONFLICT (provider_key) DO NOTHING"
                     " RETURNING reference"),
                {"k": key, "r": "sim_" + secrets.token_hex(12), "a": amount, "c": currency},
            )).first()
        if row is not None:
            return Charge(key, ChargeStatus.CAPTURED, row[0], amount, currency)
        charge = await self.lookup(key)
        assert charge is not None
        return charge

    async def capture(self, key: str) -> Charge:
        charge = await self.lookup(key)
        if charge is None:
            raise ProviderUnavailable(f"no authorization for {key}")
        return charge

    async def refund(self, key: str) -> Charge:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE simulated_payments SET status = 'refunded', refunded_at = CURRENT_TIMESTAMP"
                    " WHERE provider_key = :k AND status = 'captured'"
                ),
                {"k": key},
            )
        charge = await self.lookup(key)
        if charge is None:
            raise ProviderUnavailable(f"nothing to refund for {key}")
        return charge

    async def lookup(self, key: str) -> Charge | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT reference, amount, currency, status FROM simulated_payments"
                        " WHERE provider_key = :k"
                    ),
                    {"k": key},
                )
            ).first()
        if row is None:
            return None
        return Charge(key, ChargeStatus(row[3]), row[0], int(row[1]), row[2])
