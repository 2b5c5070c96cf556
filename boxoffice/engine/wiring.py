"""The one place the engine is put together: connections, then each component with what
it uses, then the background tasks. Nothing in the engine imports this module; the API
(boxoffice/api/app.py), the tests and the benchmarks open an Engine here and hand its
components around.

Calls that go back up the chain are callbacks given here, never references to the whole:
the gateway asks the show loader for a missing show and tells the sweeper of an earlier
wake; the expiry wake-ups wake the sweeper; the sweeper asks the show loader to unload a
show that played; confirms report the bookings they marked to the reconciler's queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine import db, health, metrics
from boxoffice.engine.admin import Admin
from boxoffice.engine.bookings import Bookings
from boxoffice.engine.cancellations import Cancellations
from boxoffice.engine.catalog import Catalog
from boxoffice.engine.confirm import Checkpoint, Confirmations, no_checkpoint
from boxoffice.engine.embedded import prepare_embedded
from boxoffice.engine.holds import Holds
from boxoffice.engine.ids import IdSigner
from boxoffice.engine.payment_records import PaymentRecords
from boxoffice.engine.payments import PaymentProvider, load_provider
from boxoffice.engine.reconciler import Reconciler, ReconcileTimes
from boxoffice.engine.redis.clients import make_redis
from boxoffice.engine.redis.expiry_wakeups import ExpiryWakeups, unavailable_reason
from boxoffice.engine.redis.gateway import QueuePace, ShowScripts
from boxoffice.engine.redis.keys import Keys
from boxoffice.engine.redis.pubsub import LEASE_MS, EventHub
from boxoffice.engine.redis.scripts import ScriptRunner
from boxoffice.engine.release_queue import ReleaseQueue
from boxoffice.engine.settings import Settings
from boxoffice.engine.show_loader import ShowLoader
from boxoffice.engine.sweeper import Sweeper
from boxoffice.engine.waitlist import Waitlist

log = logging.getLogger(__name__)

# Bookings marked in Redis and not yet noted in PostgreSQL; losing some (a crash, an
# overflow) only costs the reconciler a check.
MARKED_QUEUE = 50_000


@dataclass
class Engine:
    """Every component of one service process, and what it was built from. Components
    get their parts in their constructors (build_engine); none holds the Engine."""

    settings: Settings
    redis: Any
    pubsub_redis: Any
    sql: AsyncEngine
    keys: Keys
    scripts: ScriptRunner
    gateway: ShowScripts
    catalog: Catalog
    signer: IdSigner
    payments: PaymentProvider
    payment_records: PaymentRecords
    events: EventHub
    shows: ShowLoader
    bookings: Bookings
    holds: Holds
    confirmations: Confirmations
    cancellations: Cancellations
    admin: Admin
    waitlist: Waitlist
    release_queue: ReleaseQueue
    wakeups: ExpiryWakeups
    sweeper: Sweeper
    reconciler: Reconciler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background(self) -> None:
        self.events.start()
        self.tasks.append(asyncio.create_task(self.sweeper.run_forever(), name="sweeper"))
        self.tasks.append(self.wakeups.start())
        self.tasks.append(asyncio.create_task(self.reconciler.run_forever(), name="reconciler"))
        self.tasks.append(asyncio.create_task(metrics.sample_pools_forever(self.redis, self.sql),
                                              name="pool-metrics"))
        self.tasks.append(asyncio.create_task(
            metrics.sample_dependencies_forever(self.redis, self.sql, self.settings.redis_cluster),
            name="dependency-metrics"))

    async def health(self) -> dict[str, str]:
        """{dependency: "ok" | "down"} (engine/health.py)."""
        return await health.check_all(self.redis, self.sql, self.settings.redis_cluster)

    async def close(self) -> None:
        await stop_tasks(self.tasks)
        await self.events.stop()
        await self.scripts.aclose()
        for client in {id(self.redis): self.redis, id(self.pubsub_redis): self.pubsub_redis}.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        await self.sql.dispose()


def build_engine(settings: Settings, redis: Any, pubsub_redis: Any, sql: AsyncEngine, secret: str,
                 checkpoint: Checkpoint = no_checkpoint) -> Engine:
    """Every component, each given what it uses. `checkpoint` (tests only) is called with
    each step a confirm or cancel finished (tests/support/crashable.py kills the process there)."""
    keys = Keys(settings.key_prefix)
    scripts = ScriptRunner(redis, autopipeline=settings.redis_autopipeline and not settings.embedded)
    catalog = Catalog(sql, settings.browse_cache_s)
    signer = IdSigner(secret)
    payments = load_provider(settings.payment_provider, sql)
    records = PaymentRecords(sql, payments.name)
    # The gateway calls back up: a missing show is loaded, an earlier wake indexed (both
    # components below use the gateway, so they are named here before they exist).
    gateway = ShowScripts(scripts, keys, settings.hold_ttl_s * 1000,
                          load_missing=lambda show_id: shows.load(show_id),
                          on_earlier_wake=lambda show_id, wake: sweeper.index(show_id, wake))
    shows = ShowLoader(gateway, catalog, redis, keys, settings.unload_after_s)
    wakeups = ExpiryWakeups(redis, pubsub_redis, keys, on_wake=lambda: sweeper.wake(),
                            unavailable=unavailable_reason(settings), sweep_interval_s=settings.sweep_interval_s)
    sweeper = Sweeper(redis, keys, gateway, wakeups, unload=shows.unload, unload_after_s=settings.unload_after_s,
                      interval_s=settings.sweep_interval_s, on_tick=lambda: release_queue.tick_all())
    release_queue = ReleaseQueue(gateway, catalog, signer, redis, keys, QueuePace(
        settings.queue_opens_before_s * 1000, settings.queue_shoppers, settings.queue_group_size,
        settings.queue_admit_per_s, settings.queue_pass_s * 1000), on_running=lambda: sweeper.wake())
    bookings = Bookings(sql, catalog, settings.cancel_cutoff_s)
    holds = Holds(gateway, catalog, signer, bookings)
    marked: deque[str] = deque(maxlen=MARKED_QUEUE)
    confirmations = Confirmations(sql, gateway, catalog, holds, bookings, records, payments,
                                  pin_ms=settings.confirm_pin_s * 1000, on_marked=marked.append,
                                  checkpoint=checkpoint)
    cancellations = Cancellations(sql, gateway, catalog, bookings, payments, settings.cancel_cutoff_s,
                                  checkpoint=checkpoint)
    reconciler = Reconciler(sql, redis, keys, gateway, payments, records, confirmations, cancellations, marked,
                            ReconcileTimes(grace_s=settings.confirm_grace_s,
                                           settle_window_s=settings.payment_settle_window_s,
                                           interval_s=settings.reconcile_interval_s))
    return Engine(
        settings=settings, redis=redis, pubsub_redis=pubsub_redis, sql=sql, keys=keys, scripts=scripts,
        gateway=gateway, catalog=catalog, signer=signer, payments=payments, payment_records=records,
        events=EventHub(pubsub_redis, keys.changes_pattern(),
                        listen=lambda show_id, load: gateway.listen(show_id, LEASE_MS, load)),
        shows=shows, bookings=bookings, holds=holds,
        confirmations=confirmations, cancellations=cancellations,
        admin=Admin(sql, catalog, holds, redis, keys, release_queue),
        waitlist=Waitlist(gateway, catalog, signer, holds), release_queue=release_queue, wakeups=wakeups,
        sweeper=sweeper,
        reconciler=reconciler,
    )


async def open_engine(settings: Settings, background: bool = True, checkpoint: Checkpoint = no_checkpoint) -> Engine:
    """Connects, prepares the embedded database on its first run, builds the engine and
    (unless `background` is false: tests driving each task themselves) starts its tasks."""
    sql = db.create_engine(settings)
    if settings.embedded:
        await prepare_embedded(sql)
    secret = settings.secret or await db.load_secret(sql)
    redis, pubsub_redis = make_redis(settings)
    engine = build_engine(settings, redis, pubsub_redis, sql, secret, checkpoint)
    if background:
        engine.start_background()
    return engine


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
