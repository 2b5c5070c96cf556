"""Wires the engine together: connections, scripts, services and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine import db, metrics
from boxoffice.engine.admin import Admin
from boxoffice.engine.cancellations import Cancellations
from boxoffice.engine.catalog import Catalog
from boxoffice.engine.confirm import Bookings
from boxoffice.engine.holds import Holds
from boxoffice.engine.ids import IdSigner
from boxoffice.engine.payments import PaymentProvider, load_provider
from boxoffice.engine.reconciler import Reconciler
from boxoffice.engine.redis.expiry_wakeups import ExpiryNotifications
from boxoffice.engine.redis.gateway import ShowScripts
from boxoffice.engine.redis.keys import Keys
from boxoffice.engine.redis.pubsub import EventHub
from boxoffice.engine.redis.scripts import ScriptRunner
from boxoffice.engine.release_queue import ReleaseQueue
from boxoffice.engine.settings import Settings
from boxoffice.engine.sweeper import Sweeper
from boxoffice.engine.waitlist import Waitlist

log = logging.getLogger(__name__)

_embedded_server: Any = None


# A dead or hung Redis must turn into a quick 503, not a request that hangs: short socket
# timeouts, and no retries by the client library. A command that timed out or lost its
# connection may have run: sending it again blindly would run a script twice. The scripts
# are idempotent by the id they act on instead, so the caller may repeat a call whose
# answer it lost (a 503 says so with Retry-After).
REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_SOCKET_TIMEOUT_S = 5.0


def _no_retry() -> Any:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), retries=0)


def make_redis(settings: Settings) -> tuple[Any, Any]:
    """(client for commands and scripts, client for pub/sub)."""
    if settings.embedded:
        import fakeredis

        global _embedded_server
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
        client = fakeredis.FakeAsyncRedis(server=_embedded_server, decode_responses=True)
        return client, client
    assert settings.redis_url is not None
    timeouts = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S, "socket_timeout": REDIS_SOCKET_TIMEOUT_S}
    if settings.redis_cluster:
        from boxoffice.engine.redis.cluster import make_cluster_clients

        return make_cluster_clients(settings.redis_url, settings.redis_pool_size, _no_retry(), _no_retry,
                                    REDIS_CONNECT_TIMEOUT_S, REDIS_SOCKET_TIMEOUT_S)
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(
        settings.redis_url, decode_responses=True, max_connections=settings.redis_pool_size, timeout=5,
        retry=_no_retry(), **timeouts,
    )
    client = Redis(connection_pool=pool)
    # Subscriptions wait for messages indefinitely: no socket timeout on that client.
    return client, Redis.from_url(settings.redis_url, decode_responses=True,
                                  socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, retry=_no_retry())


@dataclass
class Context:
    settings: Settings
    redis: Any
    pubsub_redis: Any
    sql: AsyncEngine
    keys: Keys
    scripts: ScriptRunner
    catalog: Catalog
    signer: IdSigner
    payments: PaymentProvider
    events: EventHub
    gateway: ShowScripts = field(init=False)
    inventory: Holds = field(init=False)
    bookings: Bookings = field(init=False)
    cancellations: Cancellations = field(init=False)
    admin: Admin = field(init=False)
    waitlist: Waitlist = field(init=False)
    release_queue: ReleaseQueue = field(init=False)
    sweeper: Sweeper = field(init=False)
    notifications: ExpiryNotifications = field(init=False)
    reconciler: Reconciler = field(init=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gateway = ShowScripts(self.scripts, self.keys, self.hold_ttl_ms,
                                   load_missing=lambda show_id: self.inventory.load_show(show_id),
                                   on_earlier_wake=lambda show_id, wake: self.sweeper.index(show_id, wake))
        self.inventory = Holds(self)
        self.bookings = Bookings(self)
        self.cancellations = Cancellations(self)
        self.admin = Admin(self)
        self.waitlist = Waitlist(self)
        self.release_queue = ReleaseQueue(self)
        self.sweeper = Sweeper(self)
        self.notifications = ExpiryNotifications(self)
        self.reconciler = Reconciler(self)

    @property
    def hold_ttl_ms(self) -> int:
        return self.settings.hold_ttl_s * 1000


async def prepare_embedded(sql: AsyncEngine) -> None:
    """Embedded first run: migrate and seed the local SQLite file once."""
    from boxoffice.engine import seed

    await db.migrate(sql)
    async with sql.connect() as conn:
        has_catalog = (await conn.execute(text("SELECT count(*) FROM cities"))).scalar_one() > 0
    if not has_catalog:
        path = sql.url.database
        assert path is not None
        await seed.seed_demo(sql, 1, datetime.now(UTC).date())
        log.info("embedded database seeded with demo data at %s", path)


async def open_context(settings: Settings, background: bool = True) -> Context:
    sql = db.create_engine(settings)
    if settings.embedded:
        await prepare_embedded(sql)
    secret = settings.secret or await db.load_secret(sql)
    redis, pubsub_redis = make_redis(settings)
    keys = Keys(settings.key_prefix)
    ctx = Context(
        settings=settings,
        redis=redis,
        pubsub_redis=pubsub_redis,
        sql=sql,
        keys=keys,
        scripts=ScriptRunner(redis, autopipeline=settings.redis_autopipeline
                             and not settings.embedded and not settings.redis_cluster),
        catalog=Catalog(sql, settings.browse_cache_s),
        signer=IdSigner(secret),
        payments=load_provider(settings.payment_provider, sql),
        events=EventHub(pubsub_redis, keys.changes_pattern()),
    )
    if background:
        start_background(ctx)
    return ctx


def start_background(ctx: Context) -> None:
    ctx.events.start()
    ctx.tasks.append(asyncio.create_task(ctx.sweeper.run_forever(), name="sweeper"))
    ctx.tasks.append(ctx.notifications.start())
    ctx.tasks.append(asyncio.create_task(ctx.reconciler.run_forever(), name="reconciler"))
    ctx.tasks.append(asyncio.create_task(metrics.sample_pools_forever(ctx), name="pool-metrics"))
    ctx.tasks.append(asyncio.create_task(metrics.sample_dependencies_forever(ctx), name="dependency-metrics"))


# How long closing waits for a background task to end after each cancel.
TASK_STOP_S = 2.0


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancels the background tasks and waits until they ended, cancelling again a task that
    swallowed its cancel (asyncio.wait_for can, on Python 3.11), a few times at most."""
    pending = {task for task in tasks if not task.done()}
    for _ in range(5):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=TASK_STOP_S)
    for task in pending:
        log.error("background task %s would not stop", task.get_name())
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("background task %s ended with %r", task.get_name(), task.exception())


async def close_context(ctx: Context) -> None:
    await stop_tasks(ctx.tasks)
    await ctx.events.stop()
    await ctx.scripts.aclose()
    for client in {id(ctx.redis): ctx.redis, id(ctx.pubsub_redis): ctx.pubsub_redis}.values():
        with contextlib.suppress(Exception):
            await client.aclose()
    await ctx.sql.dispose()
