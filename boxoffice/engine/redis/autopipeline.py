"""Auto-pipelining: the Redis commands that the concurrent requests of one process issue in
the same event-loop tick leave in ONE write on one shared connection, and their replies are
read back in order by one parser (hiredis), as ioredis and StackExchange.Redis do.

Why: with redis-py every call checks a connection out of the pool, writes, waits and parses
on its own, which costs far more Python time than the script costs Redis. Here a call is
a few microseconds of packing plus a future; the hot path (every show script) goes through
it. Redis runs commands of one connection in order, so answers match futures one to one.

For a single Redis server over TCP (REDIS_URL redis://), and per node on a Redis Cluster
(engine/redis/cluster_pipeline.py); embedded mode keeps redis-py. A failed connection fails
the commands in flight (the API answers 503) and the next command connects again."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Largest batch in one write; beyond it the next tick takes the rest (keeps writes bounded).
MAX_BATCH = 512
CLIENT_NAME = "boxoffice-autopipeline"


# Encoded pieces of the arguments seen lately: a show's script calls repeat the command, the
# script's SHA, the key names and the numbers, only the ids and names in ARGV are new.
_pieces: dict[str | int, bytes] = {}
MAX_PIECES = 4096


def pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (an array of bulk strings). Our commands are ASCII text and
    integers: each piece is built once and then reused; anything else takes the general path."""
    out = [b"*%d\r\n" % len(args)]
    pieces = _pieces
    for arg in args:
        kind = type(arg)
        # Only exact str and int are looked up (True == 1 == 1.0 as dict keys).
        piece = pieces.get(arg) if kind is str or kind is int else None
        if piece is None:
            if kind is str and arg.isascii():
                data = arg.encode()
            elif kind is int:
                data = b"%d" % arg
            else:
                return _pack_any(args)
            piece = b"$%d\r\n%s\r\n" % (len(data), data)
            if len(pieces) >= MAX_PIECES:
                pieces.clear()
            pieces[arg] = piece
        out.append(piece)
    return b"".join(out)


def _pack_any(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Connection(asyncio.Protocol):
    """One TCP connection: futures wait in the order their commands were written."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.replies(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost(exc or RedisConnectionError("Redis closed the connection"))

    def replies(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            future, _ = self.waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def lost(self, exc: Exception) -> None:
        self.alive = False
        error = exc if isinstance(exc, RedisConnectionError | RedisTimeoutError) else RedisConnectionError(str(exc))
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


def tcp_options(client: Any) -> dict[str, Any] | None:
    """Where a redis.asyncio.Redis connects, when it is a single server over plain TCP:
    host, port, db, username, password, connect_timeout_s. None for anything else (TLS, a
    unix socket, a cluster, fakeredis): those keep redis-py."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not kwargs or "host" not in kwargs or kwargs.get("ssl") or "path" in kwargs:
        return None
    if getattr(pool, "connection_class", None).__name__ != "Connection":  # type: ignore[union-attr]
        return None
    return {"host": kwargs["host"], "port": int(kwargs.get("port", 6379)), "db": int(kwargs.get("db", 0) or 0),
            "username": kwargs.get("username"), "password": kwargs.get("password"),
            "connect_timeout_s": float(kwargs.get("socket_connect_timeout") or 2.0)}


def handshake(name: str, username: str | None, password: str | None, db: int = 0) -> list[tuple[Any, ...]]:
    """The commands that open each of our own bare connections to Redis (this pipeline's and
    the live-change subscriber's, engine/redis/pubsub.py): AUTH when a password is set, SELECT
    of a database other than 0, and a name, so operators (and tests) can tell the
    connection apart in CLIENT LIST."""
    commands: list[tuple[Any, ...]] = []
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    if db:
        commands.append(("SELECT", db))
    commands.append(("CLIENT", "SETNAME", name))
    return commands


class AutoPipeline:
    def __init__(self, host: str, port: int, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout_s: float = 2.0, reply_timeout_s: float = 5.0) -> None:
        self.address = (host, port)
        self.handshake = handshake(CLIENT_NAME, username, password, db)
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._queued: list[bytes] = []
        self._queued_futures: list[asyncio.Future[Any]] = []
        self._flush_scheduled = False
        self._watchdog: asyncio.Task[None] | None = None
        self.batches = 0
        self.commands = 0

    @classmethod
    def for_client(cls, client: Any, reply_timeout_s: float = 5.0) -> AutoPipeline | None:
        """Built from a redis.asyncio.Redis's own settings; None where it does not apply."""
        options = tcp_options(client)
        if options is None:
            return None
        return cls(options["host"], options["port"], options["db"], options["username"], options["password"],
                   options["connect_timeout_s"], reply_timeout_s)

    async def execute(self, *args: Any, asking: bool = False) -> Any:
        """Sends one command with the others of this tick and answers its reply. `asking`
        (a Redis Cluster's ASK redirection) sends ASKING just before it on the same connection."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if asking:
            answered: asyncio.Future[Any] = loop.create_future()
            answered.add_done_callback(lambda f: f.cancelled() or f.exception())  # its "OK" is not awaited
            self._queued.append(b"*1\r\n$6\r\nASKING\r\n")
            self._queued_futures.append(answered)
        self._queued.append(pack(args))
        self._queued_futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        connection = self._connection
        if connection is None or not connection.alive:
            asyncio.get_running_loop().create_task(self._connect_then_flush())
            return
        commands, futures = self._queued[:MAX_BATCH], self._queued_futures[:MAX_BATCH]
        del self._queued[:MAX_BATCH], self._queued_futures[:MAX_BATCH]
        now = time.monotonic()
        connection.waiting.extend((f, now) for f in futures)
        connection.transport.write(b"".join(commands))  # type: ignore[union-attr]
        self.batches += 1
        self.commands += len(commands)
        if self._queued and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _connect_then_flush(self) -> None:
        try:
            await self._connect()
        except Exception as exc:
            error = RedisConnectionError(f"cannot connect to Redis at {self.address[0]}:{self.address[1]}: {exc}")
            futures, self._queued_futures, self._queued = self._queued_futures, [], []
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        if self._queued and not self._flush_scheduled:
            self._flush()

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None and self._connection.alive:
                return
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.connect_timeout_s):
                transport, connection = await loop.create_connection(_Connection, *self.address)
            for command in self.handshake:
                future: asyncio.Future[Any] = loop.create_future()
                connection.waiting.append((future, time.monotonic()))
                transport.write(pack(command))
                async with asyncio.timeout(self.connect_timeout_s):
                    await future
            self._connection = connection
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = loop.create_task(self._watch())

    async def _watch(self) -> None:
        """A hung Redis fails its commands after reply_timeout_s instead of holding them forever."""
        while True:
            await asyncio.sleep(min(1.0, self.reply_timeout_s / 2))
            connection = self._connection
            if connection is None or not connection.alive or not connection.waiting:
                continue
            if time.monotonic() - connection.waiting[0][1] > self.reply_timeout_s:
                connection.lost(RedisTimeoutError(f"Redis did not answer within {self.reply_timeout_s} s"))
                if connection.transport is not None:
                    connection.transport.abort()

    @property
    def idle(self) -> bool:
        """Nothing queued or waiting for a reply."""
        connection = self._connection
        return not self._queued and (connection is None or not connection.waiting)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._connection is not None and self._connection.transport is not None:
            self._connection.transport.close()
            self._connection.alive = False
