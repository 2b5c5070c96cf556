"""Live updates across processes: the scripts PUBLISH one message per change on the show's
channel ("<queue changed 0|1>;<seat>=<status>,...;<waited categories>;<ended entries>", see
lua/includes/settle.lua); each process holds one pattern subscription and fans the
messages out to its local listeners (SSE streams). A listener that may have missed
messages (its queue overflowed, the subscription reconnected) gets None: resync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class ShowChange:
    show_id: int
    queue_changed: bool
    # the changed seats' own statuses: available, held or booked
    seats: dict[str, str] = field(default_factory=dict)
    # the price categories the queue waits for ("*": any): their free seats are the queue's
    waited: frozenset[str] = frozenset()
    # the waitlist entries this change ended (granted, impossible, cancelled, expired)
    ended: frozenset[str] = frozenset()


def parse_message(channel: str, data: str) -> ShowChange | None:
    try:
        show_id = int(channel.split("{", 1)[1].split("}", 1)[0])
        queue_flag, seat_part, waited_part, ended_part = [*data.split(";"), "", "", ""][:4]
        seats = dict(item.split("=", 1) for item in seat_part.split(",") if "=" in item)
    except (IndexError, ValueError):
        return None
    waited = frozenset(c for c in waited_part.split(",") if c)
    ended = frozenset(e for e in ended_part.split(",") if e)
    return ShowChange(show_id, queue_flag == "1", seats, waited, ended)


@dataclass(eq=False)
class EntryWatch:
    """A waitlist entry's stream: no queue of messages, two flags. A long queue has many
    streams, and a busy show many changes; each stream wakes for its own ending at once
    and reads other changes (position, eta) at its own pace."""

    entry_id: str
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # the show changed since the last read
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # a change ended this entry (or: resync)

    def notify(self, ended: bool) -> None:
        self.changed.set()
        if ended:
            self.ended.set()


class EventHub:
    def __init__(self, pubsub_redis: Any, pattern: str) -> None:
        self.redis = pubsub_redis
        self.pattern = pattern
        self.listeners: dict[int, set[asyncio.Queue[ShowChange | None]]] = defaultdict(set)
        self.watches: dict[int, set[EntryWatch]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    @contextlib.asynccontextmanager
    async def listen(self, show_id: int) -> Any:
        queue: asyncio.Queue[ShowChange | None] = asyncio.Queue(QUEUE_LIMIT)
        self.listeners[show_id].add(queue)
        try:
            yield queue
        finally:
            self.listeners[show_id].discard(queue)
            if not self.listeners[show_id]:
                del self.listeners[show_id]

    @contextlib.asynccontextmanager
    async def watch_entry(self, show_id: int, entry_id: str) -> Any:
        watch = EntryWatch(entry_id)
        self.watches[show_id].add(watch)
        try:
            yield watch
        finally:
            self.watches[show_id].discard(watch)
            if not self.watches[show_id]:
                del self.watches[show_id]

    def _dispatch(self, change: ShowChange) -> None:
        for watch in list(self.watches.get(change.show_id, ())):
            watch.notify(watch.entry_id in change.ended)
        for queue in list(self.listeners.get(change.show_id, ())):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                # A stalled client: tell it to resync from a fresh full state.
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(None)

    async def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self.pattern)
                self.connected.set()
                # Listeners resync after a (re)connect: messages may have been missed.
                for queues in list(self.listeners.values()):
                    for queue in list(queues):
                        with contextlib.suppress(asyncio.QueueFull):
                            queue.put_nowait(None)
                for watches in list(self.watches.values()):
                    for watch in list(watches):
                        watch.notify(ended=True)
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel, data = message["channel"], message["data"]
                    if isinstance(channel, bytes):
                        channel = channel.decode()
                    if isinstance(data, bytes):
                        data = data.decode()
                    change = parse_message(channel, data)
                    if change is not None:
                        self._dispatch(change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("event subscription lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
