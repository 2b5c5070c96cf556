"""The release queue: fair access at the opening of sales (docs/API.md, "Release queue").

A show with `sale_opens_at` sells through a queue held in Redis beside its seats
(lua/includes/queue.lua). Joining, leaving, reading a ticket and the sweeper's admission
tick are one script call each; admission is paced inside the scripts on Redis's clock,
and holds and waitlist joins check the pass in their own script (lua/includes/gate.lua).
This module validates, draws the random seeds and answers domain objects (api/shapes.py
writes their JSON)."""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from boxoffice.engine import metrics
from boxoffice.engine.errors import NotFound, QueueTicketEnded
from boxoffice.engine.ids import new_pass_token
from boxoffice.engine.redis.gateway import NO_LIMITS, QueuePace, RateLimits, TicketView
from boxoffice.engine.statuses import TicketStatus

if TYPE_CHECKING:
    from boxoffice.engine.catalog import Catalog, ShowInfo
    from boxoffice.engine.ids import IdSigner
    from boxoffice.engine.redis.gateway import ShowScripts
    from boxoffice.engine.redis.keys import Keys

FINAL_TICKET_STATES = frozenset({TicketStatus.EXPIRED, TicketStatus.SOLD_OUT, TicketStatus.LEFT, TicketStatus.CLOSED})
QUEUE_ORDERS = ("arrival", "shuffle_before_open")
# How often a waiting ticket is worth reading again for its position and eta: about three
# times over its estimated wait, between REFRESH_MIN_S and REFRESH_MAX_S. Its own changes
# (admission, its end) are told at once whatever this says. One rule for the ticket's stream
# and for clients that poll (the X-Queue-Refresh-After header): 20,000 tickets in line cost
# the service about 1,300 reads a second at the default pace, not 2 a second each.
REFRESH_SHARE_OF_ETA = 1 / 3
REFRESH_MIN_S = 0.5
REFRESH_MAX_S = 30.0


def refresh_after_s(eta_s: int) -> float:
    """Seconds after which a ticket waiting `eta_s` more is worth reading again."""
    return min(REFRESH_MAX_S, max(REFRESH_MIN_S, eta_s * REFRESH_SHARE_OF_ETA))


@dataclass(frozen=True)
class QueuePass:
    """An admitted ticket's pass: holds and waitlist joins of the show need it."""

    token: str
    expires_at_ms: int
    now_ms: int  # Redis's clock at the read

    @property
    def ttl_s(self) -> int:
        return max(0, math.ceil((self.expires_at_ms - self.now_ms) / 1000))


@dataclass(frozen=True)
class QueueTicket:
    ticket_id: str
    show_id: int
    customer: str | None  # None: Redis no longer knows the ticket
    status: TicketStatus
    position: int | None  # 1 is admitted next; None unless waiting (and before a shuffle's draw)
    eta_s: int | None  # seconds until admission if the pace holds; None unless waiting
    queue_pass: QueuePass | None  # None unless admitted and not used yet

    @property
    def refresh_after_s(self) -> float | None:
        """Seconds after which a waiting ticket is worth reading again (None: not waiting)."""
        if self.status != TicketStatus.WAITING or self.eta_s is None:
            return None
        return refresh_after_s(self.eta_s)

    @property
    def ended(self) -> bool:
        """Nothing more will happen to it: a final status, or admitted with its pass used."""
        return self.status in FINAL_TICKET_STATES or (self.status == TicketStatus.ADMITTED
                                                      and self.queue_pass is None)


@dataclass(frozen=True)
class QueueInfo:
    """A show's queue as GET /v1/shows/{id} tells it."""

    active: bool
    length: int  # tickets waiting
    order: str  # "arrival" or "shuffle_before_open"


# The queue of a show without an opening (on sale now), one per order: GET /v1/shows/{id}
# of such a show makes no new one.
NO_QUEUE = {order: QueueInfo(False, 0, order) for order in QUEUE_ORDERS}


@dataclass(frozen=True)
class ShowWithQueue:
    """A show as GET /v1/shows/{id} tells it: the catalog's show and its live queue."""

    show: ShowInfo
    queue: QueueInfo


def draw_seed() -> str:
    """The seed of a shuffled queue's one draw, from the OS's CSPRNG: nobody can work out
    or steer the order (lua/includes/queue.lua draw_order). Sent with every call that may
    be the first after the opening; only that one uses it."""
    return secrets.token_hex(16)


class ReleaseQueue:
    def __init__(self, gateway: ShowScripts, catalog: Catalog, signer: IdSigner, redis: Any, keys: Keys,
                 pace: QueuePace, on_running: Callable[[], None] | None = None) -> None:
        # Called when a join left the show's queue running: this process's sweeper ticks at
        # once (an idle one waits up to a second, engine/sweeper.py).
        self.on_running = on_running
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

    def ticket(self, ticket_id: str, show_id: int, view: TicketView) -> QueueTicket:
        status = TicketStatus(view.status)
        admitted = status == TicketStatus.ADMITTED and bool(view.token)
        return QueueTicket(ticket_id, show_id, view.customer, status, view.position or None, self.eta_s(view),
                           QueuePass(view.token, view.pass_expires_ms, view.now_ms) if admitted else None)

    async def join(self, show_id: int, customer: str, idempotency_key: str | None = None,
                   now_ms: int | None = None, limits: RateLimits = NO_LIMITS) -> QueueTicket:
        """Joins the show's queue (the 201 answer). With an Idempotency-Key the ticket's id derives
        from it: a retried join answers the ticket its first run made."""
        await self.catalog.show(show_id)  # 404 for an unknown show
        ticket_id = self.signer.new_ticket_id(show_id, customer, idempotency_key)
        view = await self.gateway.queue_join(show_id, ticket_id, customer, new_pass_token(), self.pace,
                                             draw_seed(), now_ms, limits)
        if view.status not in FINAL_TICKET_STATES:  # the sweeper's tick admits for it from now on
            await self.redis.sadd(self.keys.running_queues, str(show_id))
            if self.on_running is not None:
                self.on_running()
        return self.ticket(ticket_id, show_id, view)

    async def status(self, ticket_id: str, now_ms: int | None = None) -> QueueTicket:
        show_id = self.parse_ticket_id(ticket_id)
        view = await self.gateway.queue_status(show_id, ticket_id, draw_seed(), now_ms)
        if view is None:
            # A genuine id Redis no longer knows: long gone (kept a day after it ended), or
            # lost with a wiped Redis.
            return QueueTicket(ticket_id, show_id, None, TicketStatus.EXPIRED, None, None, None)
        return self.ticket(ticket_id, show_id, view)

    async def leave(self, ticket_id: str, now_ms: int | None = None) -> None:
        """Leaves the queue, or gives up an unused pass; again after leaving: no change."""
        show_id = self.parse_ticket_id(ticket_id)
        status = await self.gateway.queue_leave(show_id, ticket_id, now_ms)
        if status is not None:
            status = status or "expired"
            if status == "admitted":
                raise QueueTicketEnded("the ticket's pass was used: it ended admitted", status=status)
            raise QueueTicketEnded(f"the ticket is {status}, not waiting", status=status)

    async def info(self, show_id: int, now_ms: int | None = None) -> QueueInfo:
        """`queue` of GET /v1/shows/{id}."""
        show = await self.catalog.show(show_id)
        if show.sale_opens_at is None:
            return NO_QUEUE.get(show.queue_order) or QueueInfo(False, 0, show.queue_order)
        active, length, order = await self.gateway.queue_info(show_id, now_ms)
        return QueueInfo(active, length, order)

    async def public_show(self, show_id: int) -> ShowWithQueue:
        """The catalog's show and its live queue: what GET /v1/shows/{id} answers (the admin
        API answers this; api/browse.py reads the two parts itself, to render each once)."""
        show = await self.catalog.show(show_id)
        return ShowWithQueue(show, await self.info(show_id))

    async def tick(self, show_id: int, now_ms: int | None = None) -> int:
        """The sweeper's tick for one show: settles and admits (lua/queue_admit-1.lua).
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
        """Every running queue's tick (the sweeper calls it after each sweep). Answers how
        many queues were running (the sweeper keeps its short interval while one is)."""
        running = await self.redis.smembers(self.keys.running_queues)
        for raw in running:
            await self.tick(int(raw))
        return len(running)
