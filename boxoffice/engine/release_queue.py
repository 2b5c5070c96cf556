"""The release queue: fair access at the opening of sales (docs/API.md, "Release queue").

A show with `sale_opens_at` sells through a queue held in Redis beside its seats
(lua/includes/queue.lua). Joining, leaving, reading a ticket and the sweeper's admission
tick are one script call each; admission is paced inside the scripts on Redis's clock,
and holds and waitlist joins check the pass in their own script (lua/includes/gate.lua).
This module validates, draws the random seeds and shapes the answers."""

from __future__ import annotations

import math
import secrets
from typing import TYPE_CHECKING, Any

from boxoffice.engine import metrics
from boxoffice.engine.errors import NotFound, QueueTicketEnded
from boxoffice.engine.ids import new_pass_token
from boxoffice.engine.redis.gateway import NO_LIMITS, QueuePace, RateLimits, TicketView
from boxoffice.engine.times import ms_to_rfc3339

if TYPE_CHECKING:
    from boxoffice.engine.catalog import Catalog
    from boxoffice.engine.ids import IdSigner
    from boxoffice.engine.redis.gateway import ShowScripts
    from boxoffice.engine.redis.keys import Keys

FINAL_TICKET_STATES = frozenset({"expired", "sold_out", "left", "closed"})
QUEUE_ORDERS = ("arrival", "shuffle_before_open")


def draw_seed() -> str:
    """The seed of a shuffled queue's one draw, from the OS's CSPRNG: nobody can work out
    or steer the order (lua/includes/queue.lua draw_order). Sent with every call that may
    be the first after the opening; only that one uses it."""
    return secrets.token_hex(16)


class ReleaseQueue:
    def __init__(self, gateway: ShowScripts, catalog: Catalog, signer: IdSigner, redis: Any, keys: Keys,
                 pace: QueuePace) -> None:
        self.gateway = gateway
        self.catalog = catalog
        self.signer = signer
        self.redis = redis
        self.keys = keys
        self.pace = pace

    def parse_ticket_id(self, ticket_id: str) -> int:
        parsed = self.signer.parse(ticket_id, "Q")
        if parsed is None:
            raise NotFound("no such queue ticket")
        return parsed.show_id

    def eta_s(self, view: TicketView) -> int | None:
        """Seconds until admission if the pace holds: the wait for the opening, then one
        second for each `queue_admit_per_s` ahead. A floor, not a promise: when the shoppers
        allowed at once are all busy, admission waits for one of them to finish."""
        if view.status != "waiting":
            return None
        until_open = max(0, math.ceil((view.opens_ms - view.now_ms) / 1000))
        if view.position == 0:
            return until_open
        return until_open + math.ceil((view.position - 1) / self.pace.admit_per_s)

    def body(self, ticket_id: str, show_id: int, view: TicketView) -> dict[str, Any]:
        admitted = view.status == "admitted" and bool(view.token)
        return {
            "ticket_id": ticket_id,
            "show_id": str(show_id),
            "customer": view.customer,
            "status": view.status,
            "position": view.position or None,
            "eta_s": self.eta_s(view),
            "pass": {"token": view.token, "expires_at": ms_to_rfc3339(view.pass_expires_ms),
                     "ttl_s": max(0, math.ceil((view.pass_expires_ms - view.now_ms) / 1000))}
            if admitted else None,
        }

    async def join(self, show_id: int, customer: str, idempotency_key: str | None = None,
                   now_ms: int | None = None, limits: RateLimits = NO_LIMITS) -> dict[str, Any]:
        """Joins the show's queue (201 body). With an Idempotency-Key the ticket's id derives
        from it: a retried join answers the ticket its first run made."""
        await self.catalog.show(show_id)  # 404 for an unknown show
        ticket_id = self.signer.new_ticket_id(show_id, customer, idempotency_key)
        view = await self.gateway.queue_join(show_id, ticket_id, customer, new_pass_token(), self.pace,
                                             draw_seed(), now_ms, limits)
        if view.status not in FINAL_TICKET_STATES:  # the sweeper's tick admits for it from now on
            await self.redis.sadd(self.keys.running_queues, str(show_id))
        return self.body(ticket_id, show_id, view)

    async def status(self, ticket_id: str, now_ms: int | None = None) -> dict[str, Any]:
        show_id = self.parse_ticket_id(ticket_id)
        view = await self.gateway.queue_status(show_id, ticket_id, draw_seed(), now_ms)
        if view is None:
            # A genuine id Redis no longer knows: long gone (kept a day after it ended), or
            # lost with a wiped Redis.
            return {"ticket_id": ticket_id, "show_id": str(show_id), "customer": None, "status": "expired",
                    "position": None, "eta_s": None, "pass": None}
        return self.body(ticket_id, show_id, view)

    async def leave(self, ticket_id: str, now_ms: int | None = None) -> None:
        """Leaves the queue, or gives up an unused pass; again after leaving: no change."""
        show_id = self.parse_ticket_id(ticket_id)
        status = await self.gateway.queue_leave(show_id, ticket_id, now_ms)
        if status is not None:
            status = status or "expired"
            if status == "admitted":
                raise QueueTicketEnded("the ticket's pass was used: it ended admitted", status=status)
            raise QueueTicketEnded(f"the ticket is {status}, not waiting", status=status)

    async def info(self, show_id: int, now_ms: int | None = None) -> dict[str, Any]:
        """`queue` of GET /v1/shows/{id}: {active, length, order}."""
        show = await self.catalog.show(show_id)
        if show.sale_opens_at is None:
            return {"active": False, "length": 0, "order": show.queue_order}
        active, length, order = await self.gateway.queue_info(show_id, now_ms)
        return {"active": active, "length": length, "order": order}

    async def public_show(self, show_id: int) -> dict[str, Any]:
        """GET /v1/shows/{id}: the catalog's show and its live `queue`."""
        show = await self.catalog.show(show_id)
        return {**show.details, "queue": await self.info(show_id)}

    async def tick(self, show_id: int, now_ms: int | None = None) -> int:
        """The sweeper's tick for one show: settles and admits (lua/queue_admit-8.lua).
        Answers how many it admitted; takes the show out of the running set once its queue
        ended."""
        tick = await self.gateway.queue_admit(show_id, draw_seed(), now_ms)
        admitted, running = (tick.admitted, tick.running) if tick else (0, False)
        if tick is not None:
            metrics.observe_queue(show_id, tick.waiting, tick.shopping, tick.lapsed, tick.waits_ms)
        if not running:
            await self.redis.srem(self.keys.running_queues, str(show_id))
            metrics.forget_queue(show_id)
        return admitted

    async def tick_all(self) -> int:
        """Every running queue's tick (the sweeper calls it after each sweep)."""
        admitted = 0
        for raw in await self.redis.smembers(self.keys.running_queues):
            admitted += await self.tick(int(raw))
        return admitted
