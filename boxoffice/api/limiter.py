"""Abuse limits, kept in Redis so they hold across workers and machines: fixed one-minute
windows on holds and waitlist joins,
- per client address (BOXOFFICE_RATE_IP_PER_MIN), counted before the body is even read,
  so a bot's malformed requests count too;
- per customer and show (BOXOFFICE_RATE_HOLDS_PER_MIN), counted once the customer is
  validated; one budget for holds and joins, and per show, so hammering one show never
  eats into another's.
A limit of 0 turns that check off. Over a limit: 429 limit_exceeded with Retry-After,
the seconds until the window ends."""

from __future__ import annotations

from starlette.requests import Request

from boxoffice.engine.errors import LimitExceeded
from boxoffice.engine.wiring import Engine

WINDOW_MS = 60_000


class Limiter:
    def __init__(self, ctx: Engine) -> None:
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

    @staticmethod
    def client_address(request: Request) -> str:
        # The peer as uvicorn reports it: it takes X-Forwarded-For only from the proxies
        # named by --forwarded-allow-ips (default 127.0.0.1), so a client cannot pick its
        # own address; behind a load balancer, name it there or all clients share one budget.
        return request.client.host if request.client else "unknown"

    async def check_client(self, request: Request) -> None:
        await self._count("ip", self.client_address(request), self.ctx.settings.rate_limit_ip_per_min)

    async def check_customer(self, customer: str, show_id: int) -> None:
        await self._count("customer", f"{show_id}:{customer}", self.ctx.settings.rate_limit_holds_per_min)
