"""Abuse limits (docs/API.md, "Limits"): fixed one-minute windows on holds and waitlist
joins, counted inside the hold and join scripts themselves (lua/includes/ratelimit.lua),
so they cost no Redis round trip of their own and hold across workers and machines:
- per client address and show (BOXOFFICE_RATE_IP_PER_MIN);
- per customer and show (BOXOFFICE_RATE_HOLDS_PER_MIN).
Holds and joins share both budgets; per show, so hammering one show never eats into
another's. A limit of 0 turns that count off. Over a limit: 429 limit_exceeded with
Retry-After, the seconds until the window ends. This module only says which limits and
which address a request counts against."""

from __future__ import annotations

from starlette.requests import Request

from boxoffice.api.context import engine_context
from boxoffice.engine.redis.gateway import RateLimits

# Longer is not an address (an IPv6 address with a zone fits): cut, so a key stays small.
MAX_ADDRESS_LENGTH = 64


def client_address(request: Request) -> str:
    # The peer as uvicorn reports it: it takes X-Forwarded-For only from the proxies named
    # by --forwarded-allow-ips (default 127.0.0.1), so a client cannot pick its own address;
    # behind a load balancer, name it there or all clients share one budget.
    return request.client.host[:MAX_ADDRESS_LENGTH] if request.client else ""


def request_limits(request: Request) -> RateLimits:
    settings = engine_context(request).settings
    return RateLimits(settings.rate_limit_holds_per_min, settings.rate_limit_ip_per_min, client_address(request))
