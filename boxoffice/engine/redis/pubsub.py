"""Live updates across processes: the scripts PUBLISH one message per change on the show's
channel ("<queue changed 0|1>;<seat>=<status>,...;<waited categories>;<ended entries>", see
lua/includes/settle.lua); each process holds one pattern subscription and fans the
messages out to its local listeners (SSE streams). A listener that may have missed
messages (its queue overflowed, the subscription reconnected) gets None: resync.

Every hold, release and sale publishes, and every process receives every message, so the
reading is kept cheap: on a single Redis server over TCP the subscription is a bare
connection whose replies hiredis parses (redis-py's pubsub costs several microseconds a
message), and a message is only parsed when this process has a listener for its show."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from boxoffice.engine.redis.autopipeline import pack, tcp_options

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
RECONNECT_DELAY_S = 0.5
CLIENT_NAME = "boxoffice-events"


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


def show_of(channel: str) -> int | None:
    """The show id in a change channel's hash tag ("<prefix>:show:{42}:changes")."""
    start = channel.find("{") + 1
    end = channel.find("}", start)
    if start == 0 or end < 0:
        return None
    try:
        return int(channel[start:end])
    except ValueError:
        return None


def parse_message(channel: str, data: str) -> ShowChange | None:
    show_id = show_of(channel)
    if show_id is None:
        return None
    try:
        queue_flag, seat_part, waited_part, ended_part = [*data.split(";"), "", "", ""][:4]
        seats = dict(item.split("=", 1) for item in seat_part.split(",") if "=" in item)
    except ValueError:
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

    def _message(self, channel: str, data: str) -> None:
        """One published change: parsed only when a local stream listens to its show."""
        show_id = show_of(channel)
        if show_id is None or (show_id not in self.listeners and show_id not in self.watches):
            return
        change = parse_message(channel, data)
        if change is not None:
            self._dispatch(change)

    def _resync_all(self) -> None:
        """After a (re)connect: messages may have been missed, every listener reads afresh."""
        for queues in list(self.listeners.values()):
            for queue in list(queues):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
        for watches in list(self.watches.values()):
            for watch in list(watches):
                watch.notify(ended=True)

    async def _run(self) -> None:
        direct = tcp_options(self.redis)
        while True:
            try:
                if direct is not None:
                    await self._subscribe_direct(direct)
                else:
                    await self._subscribe_redis_py()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event subscription lost (%s); reconnecting", exc)
            self.connected.clear()
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _subscribe_redis_py(self) -> None:
        """Cluster, TLS, unix socket or embedded: redis-py's pubsub."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(self.pattern)
            self.connected.set()
            self._resync_all()
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                channel, data = message["channel"], message["data"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                if isinstance(data, bytes):
                    data = data.decode()
                self._message(channel, data)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _subscribe_direct(self, options: dict[str, Any]) -> None:
        """A single server over TCP: one bare connection, PSUBSCRIBE, replies fed to hiredis.
        Returns when the connection is lost; raises when it cannot be made."""
        loop = asyncio.get_running_loop()
        transport, subscriber = await asyncio.wait_for(
            loop.create_connection(lambda: _Subscriber(self), options["host"], options["port"]),
            options["connect_timeout_s"])
        try:
            if options["password"]:
                auth = ("AUTH", options["username"], options["password"]) if options["username"] \
                    else ("AUTH", options["password"])
                transport.write(pack(auth))
                subscriber.expect("AUTH")
            transport.write(pack(("CLIENT", "SETNAME", CLIENT_NAME)))  # tells it apart in CLIENT LIST
            subscriber.expect("CLIENT")
            transport.write(pack(("PSUBSCRIBE", self.pattern)))
            await asyncio.wait_for(subscriber.subscribed, options["connect_timeout_s"])
            self.connected.set()
            self._resync_all()
            await subscriber.closed
            raise RedisConnectionError("Redis closed the subscription")
        finally:
            transport.close()


class _Subscriber(asyncio.Protocol):
    """The bare subscription connection: pmessage replies go to the hub as they arrive."""

    def __init__(self, hub: EventHub) -> None:
        loop = asyncio.get_running_loop()
        self.hub = hub
        self.transport: asyncio.BaseTransport | None = None
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace", replyError=ResponseError)
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.expected: list[str] = []  # the commands whose replies come before the subscription's

    def expect(self, command: str) -> None:
        self.expected.append(command)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if isinstance(reply, list) and len(reply) == 4 and reply[0] == "pmessage":
                try:
                    self.hub._message(reply[2], reply[3])
                except Exception:  # one bad message must not end the subscription
                    log.exception("could not dispatch a change message")
            elif self.expected:
                command = self.expected.pop(0)
                if isinstance(reply, ResponseError) and command != "CLIENT":  # a name refused is no matter
                    self.refused(reply)
            elif isinstance(reply, ResponseError):
                self.refused(reply)  # PSUBSCRIBE refused
            elif isinstance(reply, list) and reply and reply[0] == "psubscribe" and not self.subscribed.done():
                self.subscribed.set_result(None)

    def refused(self, error: ResponseError) -> None:
        """AUTH or PSUBSCRIBE refused: this connection is of no use."""
        if not self.subscribed.done():
            self.subscribed.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(exc or RedisConnectionError("Redis closed the connection"))
        if not self.closed.done():
            self.closed.set_result(None)
