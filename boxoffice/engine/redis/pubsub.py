"""Live updates across processes: the scripts PUBLISH one message per change on the show's
channel ("<queue changed 0|1>;<seat>=<status>,...;<waited categories>;<ended entries>", see
lua/includes/settle.lua), and each process fans them out to its local listeners (SSE
streams). A listener that may have missed messages (its queue overflowed, the subscription
reconnected) gets None: resync.

A process subscribes to a show's channel only while a local listener of that show exists
(a live seat map, a waitlist entry's stream), and drops it when the last one ends: a change
message reaches only the processes that serve a stream of its show, and a PUBLISH no one
listens to costs Redis a dictionary look-up (a pattern subscription per process made
every PUBLISH match and write to every process: 1.8 µs of Redis per message with 8 workers,
against 0.14). A listener is handed its queue only once Redis confirmed the subscription,
so it never misses a change made after it read the show's state.

The scripts publish a show's changes only while some process serves a stream of it (a
PUBLISH no one hears still cost Redis a message built and a call, on every hold): with its
subscription a process takes a lease on the show's messages (lua/listen-1.lua, `listen`
below), before the listener reads the show's state, and renews it every LEASE_RENEW_S
while it listens. A renewal that finds the lease began anew since its last one (it had run
out, or the show was loaded again) tells the show's listeners to resync: a change may have
gone unpublished in between.

On a single Redis server over TCP the subscription is a bare connection whose replies
hiredis parses (redis-py's pubsub costs several microseconds a message); a cluster, TLS, a
unix socket or embedded mode use redis-py's pubsub. On a Redis Cluster a classic PUBLISH
still crosses the cluster bus to every node (see docs/SCALING.md, Known limits)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from boxoffice.engine.redis.autopipeline import handshake, pack, tcp_options

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
RECONNECT_DELAY_S = 0.5
# How long a new listener waits for Redis to confirm its show's subscription; past it the
# connection is taken as lost, and the listener resyncs when it is back.
SUBSCRIBE_TIMEOUT_S = 5.0
CLIENT_NAME = "boxoffice-events"
# The lease on a show's change messages (lua/listen-1.lua), renewed well before it runs out.
LEASE_MS = 60_000
LEASE_RENEW_S = 15.0

# Takes or renews this process's lease on a show's messages: (show_id, load the show when
# Redis does not hold it) -> when the running lease began (ms), None: the show is not loaded.
Listen = Callable[[int, bool], Awaitable[int | None]]


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
class ShowWatches:
    """The watched records (waitlist entries, queue tickets) of one show in this process. A
    release's queue has tens of thousands of streams and its show many changes a second:
    a change costs one count, one event set for every stream of the show together, and a
    look-up of the records it ended, whatever the number of streams."""

    generation: int = 0  # changes of the show seen so far
    next_change: asyncio.Event = field(default_factory=asyncio.Event)  # set by the next change
    by_entry: dict[str, set[EntryWatch]] = field(default_factory=lambda: defaultdict(set))

    def changed(self, ended: Iterable[str]) -> None:
        self.generation += 1
        event, self.next_change = self.next_change, asyncio.Event()
        event.set()
        for entry_id in ended:
            for watch in self.by_entry.get(entry_id, ()):
                watch.ended.set()


@dataclass(eq=False)
class EntryWatch:
    """One record's stream: no queue of messages. It wakes for its record's own ending at
    once and reads other changes of the show (position, eta) at its own pace."""

    entry_id: str
    show: ShowWatches
    seen: int = 0  # the show's generation when the stream last read the record
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # a change ended this entry (or: resync)

    def __post_init__(self) -> None:
        self.seen = self.show.generation

    @property
    def changed(self) -> bool:
        """The show changed since the last read."""
        return self.show.generation != self.seen

    async def next_change(self) -> None:
        """Returns once the show changed since the last read."""
        while not self.changed:
            await self.show.next_change.wait()

    def reading(self) -> None:
        """The stream reads the record now: changes from here on are news."""
        self.seen = self.show.generation
        self.ended.clear()


class EventHub:
    def __init__(self, pubsub_redis: Any, pattern: str, listen: Listen) -> None:
        """`pattern`: the change channels' names with "*" for the show's tag (Keys.changes_pattern);
        `listen` takes the lease on a show's messages (ShowScripts.listen)."""
        self.redis = pubsub_redis
        self._listen = listen
        # show -> when its running lease began, as this process last learnt it
        self._lease_since: dict[int, int] = {}
        # show -> the lease taken for its subscription on the current connection (done when
        # taken, or when taking it failed)
        self._leases: dict[int, asyncio.Future[None]] = {}
        self._renewer: asyncio.Task[None] | None = None
        self.prefix, _, self.suffix = pattern.partition("*")
        # Subscribed by every connection first: it makes the connection a subscriber (and
        # proves it works) while no show is listened to. Nothing is published there.
        self.anchor = self.prefix + "hub" + self.suffix
        self.listeners: dict[int, set[asyncio.Queue[ShowChange | None]]] = defaultdict(set)
        self.watches: dict[int, ShowWatches] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._link: _Link | None = None  # the connection, once its subscriptions are confirmed
        # show -> its subscription on the current connection (done when Redis confirmed it)
        self._subscribed: dict[int, asyncio.Future[None]] = {}
        # channel -> one future per SUBSCRIBE sent and not yet confirmed, oldest first
        self._acks: dict[str, deque[asyncio.Future[None]]] = defaultdict(deque)

    def channel(self, show_id: int) -> str:
        return f"{self.prefix}{{{show_id}}}{self.suffix}"

    def subscribed_shows(self) -> set[int]:
        """The shows this process holds a subscription for (tests, metrics)."""
        return set(self._subscribed)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")
        self._renewer = asyncio.create_task(self._renew_forever(), name="event-hub-leases")

    async def stop(self) -> None:
        for task in (self._task, self._renewer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- listeners -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def listen(self, show_id: int) -> Any:
        queue: asyncio.Queue[ShowChange | None] = asyncio.Queue(QUEUE_LIMIT)
        self.listeners[show_id].add(queue)
        try:
            await self._want(show_id)
            yield queue
        finally:
            self.listeners[show_id].discard(queue)
            if not self.listeners[show_id]:
                del self.listeners[show_id]
            self._unwant(show_id)

    @contextlib.asynccontextmanager
    async def watch_entry(self, show_id: int, entry_id: str) -> Any:
        show = self.watches.get(show_id)
        if show is None:
            show = self.watches[show_id] = ShowWatches()
        watch = EntryWatch(entry_id, show)
        show.by_entry[entry_id].add(watch)
        try:
            await self._want(show_id)
            yield watch
        finally:
            show.by_entry[entry_id].discard(watch)
            if not show.by_entry[entry_id]:
                del show.by_entry[entry_id]
            if not show.by_entry and self.watches.get(show_id) is show:
                del self.watches[show_id]
            self._unwant(show_id)

    def _wanted(self, show_id: int) -> bool:
        return show_id in self.listeners or show_id in self.watches

    async def _want(self, show_id: int) -> None:
        """Returns once this process is subscribed to the show and holds a lease on its
        messages (or not connected: then the listener is told to resync when the connection
        is back and subscribed)."""
        if show_id not in self._subscribed and self._link is not None:
            confirmed = self._subscribed[show_id] = self._subscribe(self._link, show_id)
            # Loads the show if need be: its first listener reads its state next, and what
            # changes from here on is published.
            self._leases[show_id] = self._lease_after(confirmed, show_id, resync=False)
        leased = self._leases.get(show_id)
        if leased is not None and not leased.done():
            # asyncio.timeout, not wait_for: a listener cancelled as the confirmation comes
            # must end, not go on (Python 3.11's wait_for can swallow that cancellation).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_S):
                    await asyncio.shield(leased)

    def _unwant(self, show_id: int) -> None:
        if self._wanted(show_id) or show_id not in self._subscribed:
            return
        del self._subscribed[show_id]
        self._leases.pop(show_id, None)
        self._lease_since.pop(show_id, None)
        if self._link is not None:
            self._link.send("UNSUBSCRIBE", self.channel(show_id))

    def _subscribe(self, link: _Link, show_id: int) -> asyncio.Future[None]:
        channel = self.channel(show_id)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[channel].append(ack)
        link.send("SUBSCRIBE", channel)
        return ack

    # -- leases on the shows' messages -----------------------------------------------------

    def _lease_after(self, confirmed: asyncio.Future[None], show_id: int, resync: bool) -> asyncio.Future[None]:
        """Takes the show's lease once its subscription is confirmed (loading the show if need
        be), then, if `resync`, has its listeners read afresh."""
        async def take() -> None:
            await confirmed
            await self._renewed(show_id, load=True)
            if resync:
                self._resync_show(show_id)

        leased = asyncio.ensure_future(take())
        leased.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no warning
        return leased

    async def _renewed(self, show_id: int, load: bool) -> bool:
        """Takes or renews the lease on the show's messages; True when the lease began anew
        since this process last learnt it (a change may have gone unpublished). An error is
        logged: the next renewal finds the lease begun anew if it ran out meanwhile."""
        try:
            since = await self._listen(show_id, load)
        except Exception as exc:
            log.warning("could not take the lease on show %s's change messages (%s)", show_id, exc)
            return False
        if since is None or not self._wanted(show_id):
            return False  # not loaded: nothing is published; the lease begins anew once it is
        known = self._lease_since.get(show_id)
        self._lease_since[show_id] = since
        return known is not None and known != since

    async def renew_all(self) -> None:
        """Renews the lease of every show whose lease this process took; a show's listeners
        resync when its lease began anew since."""
        for show_id, leased in list(self._leases.items()):
            if leased.done() and await self._renewed(show_id, load=False):
                self._resync_show(show_id)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            await self.renew_all()

    def _acknowledged(self, channel: str) -> None:
        """Redis confirmed a SUBSCRIBE: the oldest one sent for the channel."""
        pending = self._acks.get(channel)
        if pending:
            ack = pending.popleft()
            if not pending:
                del self._acks[channel]
            if not ack.done():
                ack.set_result(None)

    # -- messages --------------------------------------------------------------------------

    def _dispatch(self, change: ShowChange) -> None:
        watches = self.watches.get(change.show_id)
        if watches is not None:
            watches.changed(change.ended)
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
        """One published change: parsed only when a local stream listens to its show (a
        message may still come just after the last listener left)."""
        show_id = show_of(channel)
        if show_id is None or not self._wanted(show_id):
            return
        change = parse_message(channel, data)
        if change is not None:
            self._dispatch(change)

    def _resync_show(self, show_id: int) -> None:
        """Messages of the show may have been missed: its listeners read afresh."""
        for queue in list(self.listeners.get(show_id, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        watches = self.watches.get(show_id)
        if watches is not None:
            watches.changed(list(watches.by_entry))  # every record reads afresh, at once

    # -- the connection --------------------------------------------------------------------

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
            finally:
                self._lost()
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _ready(self, link: _Link, ended: asyncio.Future[Any]) -> None:
        """A new connection: the anchor and every show listened to now subscribed, then
        every listener resyncs (changes made while there was no subscription were missed).
        Raises if the connection `ended` first or Redis does not confirm in time."""
        anchor = asyncio.get_running_loop().create_future()
        self._acks[self.anchor].append(anchor)
        link.send("SUBSCRIBE", self.anchor)
        shows = set(self.listeners) | set(self.watches)
        for show_id in shows:
            self._subscribed[show_id] = self._subscribe(link, show_id)
        self._link = link
        # asyncio.wait, not gather: a timeout must not cancel the futures listeners await.
        pending: set[asyncio.Future[Any]] = {anchor, *self._subscribed.values()}
        deadline = asyncio.get_running_loop().time() + SUBSCRIBE_TIMEOUT_S
        while pending:
            left = deadline - asyncio.get_running_loop().time()
            done, pending = await asyncio.wait(pending | {ended}, timeout=max(left, 0),
                                               return_when=asyncio.FIRST_COMPLETED)
            pending.discard(ended)
            if not done or ended.done():
                raise RedisConnectionError("the subscriptions were not confirmed")
        self.connected.set()
        # Every listener reads afresh (changes made while there was no subscription were
        # missed), each once its show's lease is taken again (Redis may have lost it).
        for show_id in shows:
            self._leases[show_id] = self._lease_after(self._subscribed[show_id], show_id, resync=True)

    def _lost(self) -> None:
        self.connected.clear()
        self._link = None
        for pending in self._acks.values():
            for ack in pending:
                if not ack.done():
                    ack.set_exception(RedisConnectionError("subscription lost"))
                    ack.exception()  # retrieved: no "never retrieved" warning when nobody waits
        self._acks.clear()
        self._subscribed.clear()
        self._leases.clear()

    async def _subscribe_redis_py(self) -> None:
        """Cluster, TLS, unix socket or embedded: redis-py's pubsub."""
        pubsub = self.redis.pubsub()
        link = _RedisPyLink(pubsub)
        try:
            reader = asyncio.create_task(self._read_redis_py(pubsub, link))
            try:
                await self._ready(link, reader)
                await reader
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
                link.close()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _read_redis_py(self, pubsub: Any, link: _RedisPyLink) -> None:
        await link.sent_first.wait()  # redis-py reads nothing before the first SUBSCRIBE
        while True:
            link.raise_if_failed()
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            kind, channel = message.get("type"), message.get("channel")
            if isinstance(channel, bytes):
                channel = channel.decode()
            if kind == "message":
                data = message["data"]
                self._message(channel, data.decode() if isinstance(data, bytes) else data)
            elif kind == "subscribe":
                self._acknowledged(channel)

    async def _subscribe_direct(self, options: dict[str, Any]) -> None:
        """A single server over TCP: one bare connection, replies fed to hiredis.
        Returns when the connection is lost; raises when it cannot be made."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(options["connect_timeout_s"]):
            transport, subscriber = await loop.create_connection(
                lambda: _Subscriber(self), options["host"], options["port"])
        try:
            # Subscriptions are not per database: no SELECT.
            for command in handshake(CLIENT_NAME, options["username"], options["password"]):
                transport.write(pack(command))
                subscriber.expect(command[0])
            await self._ready(subscriber, subscriber.closed)
            await subscriber.closed
            raise RedisConnectionError("Redis closed the subscription")
        finally:
            transport.close()


class _Link:
    """Where SUBSCRIBE and UNSUBSCRIBE go; replies come back to the hub."""

    def send(self, command: str, channel: str) -> None:
        raise NotImplementedError


class _RedisPyLink(_Link):
    """redis-py's pubsub sends from a coroutine: the commands go out in order from a task."""

    def __init__(self, pubsub: Any) -> None:
        self.pubsub = pubsub
        self.outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.sent_first = asyncio.Event()
        self.failed: BaseException | None = None
        self.sender = asyncio.create_task(self._send_all())

    def send(self, command: str, channel: str) -> None:
        self.outbox.put_nowait((command, channel))

    async def _send_all(self) -> None:
        try:
            while True:
                command, channel = await self.outbox.get()
                if command == "SUBSCRIBE":
                    await self.pubsub.subscribe(channel)
                else:
                    await self.pubsub.unsubscribe(channel)
                self.sent_first.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the reader raises it
            self.failed = exc
            self.sent_first.set()

    def raise_if_failed(self) -> None:
        if self.failed is not None:
            raise RedisConnectionError(f"could not subscribe: {self.failed}")

    def close(self) -> None:
        self.sender.cancel()


class _Subscriber(asyncio.Protocol, _Link):
    """The bare subscription connection: message replies go to the hub as they arrive."""

    def __init__(self, hub: EventHub) -> None:
        loop = asyncio.get_running_loop()
        self.hub = hub
        self.transport: Any = None  # an asyncio or uvloop transport
        self.reader = hiredis.Reader(encoding="utf-8", errors="replace", replyError=ResponseError)
        self.closed: asyncio.Future[None] = loop.create_future()
        self.expected: list[str] = []  # the commands whose replies come before the subscription's

    def expect(self, command: str) -> None:
        self.expected.append(command)

    def send(self, command: str, channel: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(pack((command, channel)))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                try:
                    self.hub._message(reply[1], reply[2])
                except Exception:  # one bad message must not end the subscription
                    log.exception("could not dispatch a change message")
            elif self.expected:
                command = self.expected.pop(0)
                if isinstance(reply, ResponseError) and command != "CLIENT":  # a name refused is no matter
                    self.refused(reply)
            elif isinstance(reply, ResponseError):
                self.refused(reply)  # SUBSCRIBE refused
            elif isinstance(reply, list) and len(reply) == 3 and reply[0] == "subscribe":
                self.hub._acknowledged(reply[1])

    def refused(self, error: ResponseError) -> None:
        """AUTH or SUBSCRIBE refused: this connection is of no use."""
        log.warning("event subscription refused: %s", error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
