"""Payment providers of the tests, loaded by name like a real one (BOXOFFICE_PAYMENT_PROVIDER)."""

from __future__ import annotations

import asyncio
from typing import Any

from boxoffice.engine.payments import Charge, SimulatedProvider


class GatedProvider(SimulatedProvider):
    """tok_slow approves when the test opens the gate (not after 2 s), so a test decides
    what happens while a payment runs, without racing a clock."""

    name = "gated"

    def __init__(self, engine: Any) -> None:
        super().__init__(engine)
        self.waiting = asyncio.Event()  # a tok_slow payment has started
        self.gate = asyncio.Event()

    async def authorize(self, key: str, token: str, amount: int, currency: str) -> Charge:
        if token == "tok_slow":
            self.waiting.set()
            await self.gate.wait()
            token = "tok_ok"
        return await super().authorize(key, token, amount, currency)


GATED = "tests.support.providers:GatedProvider"
