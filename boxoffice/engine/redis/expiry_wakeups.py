"""Prompt expiry through Redis keyspace notifications, when the server allows them.

At start (and after every reconnect) each service process asks Redis to publish `expired`
key events: flags E and x, merged into whatever flags are already set, never removing
one. Whenever a show gets a next deadline, the engine arms the show's wake key
(keys.wake) to expire exactly then; its `expired` event wakes this process's sweeper at
once instead of at its next timer tick.

Notifications are only a hint: they are fire-and-forget, node-local in a cluster, and come
late when Redis holds many keys with TTLs (it finds expired keys by sampling; see
docs/DESIGN.md, "Expiry"). The sweeper's timer stays the guarantee, so when the server refuses
(managed Redis often does), in cluster mode or embedded, we log it once and go on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from boxoffice.engine.redis.keys import Keys
from boxoffice.engine.settings import Settings

log = logging.getLogger(__name__)

CONFIG_NAME = "notify-keyspace-events"
RECONNECT_DELAY_S = 0.5


def merged_flags(current: str) -> str | None:
    """The flags that publish expired key events (E: keyevent channel, x: expired;
    A stands for every event class) while keeping all of `current`; None when none is missing."""
    missing = ("" if "E" in current else "E") + ("" if "x" in current or "A" in current else "x")
    return current + missing if missing else None


async def enable_expired_events(redis: Any) -> str | None:
    """Turns expired key events on. Returns None on success, else why it could not."""
    try:
        current = (await redis.config_get(CONFIG_NAME)).get(CONFIG_NAME)
        if current is None:
            return "the server does not report notify-keyspace-events"
        wanted = merged_flags(current)
        if wanted is not None:
            await redis.config_set(CONFIG_NAME, wanted)
        return None
    except RedisError as exc:
        return f"CONFIG refused: {exc}"


def unavailable_reason(settings: Settings) -> str | None:
    """Why expired events cannot reach this process with these settings; None when they may."""
    if not settings.keyspace_notifications:
        return "turned off by BOXOFFICE_KEYSPACE_NOTIFICATIONS"
    if settings.embedded:
        return "the embedded Redis has none"
    if settings.redis_cluster:
        return "cluster mode: notifications are node-local"
    return None


class ExpiryWakeups:
    """Listens to `__keyevent@<db>__:expired` and calls `on_wake` (the sweeper's wake) on a
    wake key's expiry. `unavailable`: why notifications cannot be used (unavailable_reason)."""

    def __init__(self, redis: Any, pubsub_redis: Any, keys: Keys, on_wake: Callable[[], None],
                 unavailable: str | None, sweep_interval_s: float) -> None:
        self.redis = redis
        self.pubsub_redis = pubsub_redis
        self.keys = keys
        self.on_wake = on_wake
        self.unavailable = unavailable
        self.sweep_interval_s = sweep_interval_s
        # True while expired events reach this process: only then are wake keys armed.
        self.enabled = False
        self.subscribed = asyncio.Event()
        self.wakeups = 0
        self._warned = False

    def _warn_once(self, reason: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("keyspace notifications unavailable (%s); expiry relies on the sweeper timer"
                        " (every %.2fs)", reason, self.sweep_interval_s)

    def start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self.run_forever(), name="expiry-notifications")

    def arm(self, pipe: Any, show_id: int, wake_ms: int) -> None:
        """Queues on `pipe` the commands that make the show's wake key expire at wake_ms,
        or earlier when it is already armed for an earlier deadline (NX, then LT)."""
        key = self.keys.wake(show_id)
        pipe.set(key, "1", nx=True, pxat=wake_ms)
        pipe.pexpireat(key, wake_ms, lt=True)

    def wake_show(self, key: str) -> int | None:
        """The show id of one of our wake keys, else None."""
        prefix = self.keys.prefix + ":show:{"
        if not (key.startswith(prefix) and key.endswith("}:wake")):
            return None
        try:
            return int(key[len(prefix):-len("}:wake")])
        except ValueError:
            return None

    async def run_forever(self) -> None:
        reason = self.unavailable
        if reason is not None:
            self._warn_once(reason)
            return
        redis = self.pubsub_redis
        channel = f"__keyevent@{redis.connection_pool.connection_kwargs.get('db', 0)}__:expired"
        while True:
            pubsub = redis.pubsub(ignore_subscribe_messages=True)
            try:
                # Again after every reconnect: a restarted server forgot the flags.
                refused = await enable_expired_events(self.redis)
                if refused is not None:
                    self._warn_once(refused)
                    return
                await pubsub.subscribe(channel)
                self.enabled = True
                self.subscribed.set()
                log.info("keyspace notifications on: expired wake keys wake the sweeper")
                # The sweeper looks once now: deadlines armed while we were away.
                self.on_wake()
                async for message in pubsub.listen():
                    if message.get("type") == "message" and self.wake_show(str(message["data"])) is not None:
                        self.wakeups += 1
                        self.on_wake()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("expiry notification subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
            finally:
                self.enabled = False
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
