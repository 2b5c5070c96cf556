"""Abuse limits, kept in Redis so they hold across workers and machines: fixed one-minute
windows per customer and per client address on holds and waitlist joins. A limit of 0
turns that check off."""

from __future__ import annotations

from starlette.requests import Request

from engine.errors import LimitExceeded
from engine.service import Context

WINDOW_MS = 60_000


class Limiter:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _count(self, scope: str, subject: str, limit: int) -> None:
        if limit <= 0:
            return
        key = self.ctx.keys.rate(scope, subject)
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.pexpire(key, WINDOW_MS, nx=True)
        pipe.pttl(key)
        count, _, ttl_ms = await pipe.execute()
        if int(count) > limit:
            retry_after = max(1, -(-int(ttl_ms) // 1000)) if int(ttl_ms) > 0 else 1
            raise LimitExceeded(f"too many requests; try again in {retry_after} s", retry_after_s=retry_after)

    def _client(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def check_hold(self, request: Request, customer: str, show_id: int) -> None:
        settings = self.ctx.settings
        await self._count("hold-customer", f"{show_id}:{customer}", settings.rate_limit_holds_per_min)
        await self._count("ip", self._client(request), settings.rate_limit_ip_per_min)

    async def check_join(self, request: Request, customer: str, show_id: int) -> None:
        await self.check_hold(request, customer, show_id)
