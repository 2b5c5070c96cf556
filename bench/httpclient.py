"""A lean keep-alive HTTP/1.1 client for the spike's simulated customers.

Why not httpx: its pool, h11 and anyio layers cost the spike about 1.3 ms of CPU a request,
as much as the service spends answering it, so on a small machine the client set the pace and
its own queueing filled the latency figures. This one writes a prepared head and reads the
answer's head and Content-Length body off a bare asyncio protocol: the service, not the
client, is what a spike measures. It speaks only what the service answers the spike with
(Content-Length framing; a chunked answer is refused loudly), nothing more."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

MAX_HEAD = 65536


class TransportError(Exception):
    """The connection failed, closed mid-answer, or the answer could not be read."""


def _header(lowered_head: bytes, name: bytes) -> bytes | None:
    """The value of a header (name lowercase, ending in a colon) in a lowercased head."""
    at = lowered_head.find(b"\r\n" + name)
    if at < 0:
        return None
    start = at + 2 + len(name)
    end = lowered_head.find(b"\r\n", start)
    return lowered_head[start:end if end >= 0 else None].strip()


def parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, whether the server keeps the connection) of an answer's head
    (Content-Length 0 when absent). A chunked answer is a TransportError: the bench clients
    read Content-Length bodies only. Kept cheap: the ceilings' client calls it per answer."""
    lowered = head.lower()
    encoding = _header(lowered, b"transfer-encoding:")
    if encoding is not None and encoding != b"identity":
        raise TransportError("a chunked answer: this client reads Content-Length bodies only")
    length = _header(lowered, b"content-length:")
    return int(head[9:12]), int(length) if length is not None else 0, _header(lowered, b"connection:") != b"close"


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.buffer = bytearray()
        self.status = 0
        self.remaining = -1  # body bytes still to come; -1 while reading a head
        self.answered_before = False  # a request was answered on it: reused from the pool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.buffer.clear()
        self.remaining = -1
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.done():
            self._fail(TransportError("the server sent bytes nobody asked for"))
            return
        self.buffer += data
        if self.remaining < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._fail(TransportError("the answer's head is too long"))
                return
            try:
                self.status, self.remaining, keep_alive = parse_head(bytes(self.buffer[:end]))
            except (TransportError, ValueError) as exc:
                self._fail(exc if isinstance(exc, TransportError) else TransportError(str(exc)))
                return
            del self.buffer[:end + 4]
            if not keep_alive:
                self.closed = True  # answered, then closed: not for the next request
        if len(self.buffer) >= self.remaining:
            body = bytes(self.buffer[:self.remaining])
            self.answered_before = True
            self.answer.set_result((self.status, body))

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(TransportError(f"the connection closed mid-answer: {exc}"))


class LeanClient:
    """Up to `connections` keep-alive connections to one host; a request takes an idle one
    (or opens one), so callers should bound their concurrency to `connections`."""

    def __init__(self, host: str, port: int, connections: int, timeout_s: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.idle: deque[_Connection] = deque()
        self.limit = asyncio.Semaphore(connections)
        self.head_host = f"Host: {host}:{port}\r\n".encode()

    async def _connection(self) -> _Connection:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed:
                return connection
        return await self._new_connection()

    async def _new_connection(self) -> _Connection:
        try:
            _, connection = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise TransportError(f"cannot connect: {exc}") from exc
        return connection

    async def request(self, method: str, path: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """(status, body) of one request."""
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self.head_host]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode())
        if body is not None:
            head.append(b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
        head.append(b"\r\n")
        request = b"".join(head) + (body or b"")
        async with self.limit:
            connection = await self._connection()
            try:
                async with asyncio.timeout(self.timeout_s):
                    answer = await connection.send(request)
            except TransportError:
                # A kept-alive connection the server closed as the request went out (its idle
                # timeout): a GET changes nothing, so it is sent once more on a new connection.
                if method != "GET" or not connection.answered_before or connection.buffer:
                    raise
                connection = await self._new_connection()
                async with asyncio.timeout(self.timeout_s):
                    answer = await connection.send(request)
            except BaseException:
                connection._fail(TransportError("abandoned mid-answer"))
                raise
            self.idle.append(connection)
            return answer

    async def aclose(self) -> None:
        while self.idle:
            connection = self.idle.pop()
            if connection.transport is not None:
                connection.transport.close()

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


class EventStream(asyncio.Protocol):
    """One Server-Sent Events stream on a connection of its own: the answer's head, then its
    chunked body cut into events; `next()` gives each event's data, None once the stream ends.
    A browser's EventSource, for the customers that follow their queue ticket live."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.buffer = bytearray()  # the body's bytes not cut into chunks yet
        self.text = bytearray()  # the chunks' bytes not cut into events yet
        self.head_read = False
        self.events: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_read:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._end(TransportError("the answer's head is too long"))
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            del self.buffer[:end + 4]
            self.head_read = True
            if self.status != 200 or _header(head, b"transfer-encoding:") != b"chunked":
                self._end(None)  # not a stream: nothing to follow
                return
            self.opened.set_result(self.status)
        self._cut_chunks()

    def _cut_chunks(self) -> None:
        while True:
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self.buffer[:line_end]).split(b";")[0], 16)
            if size == 0:
                self._end(None)  # the last chunk: the server ended the stream
                return
            if len(self.buffer) < line_end + 2 + size + 2:
                return
            self.text += self.buffer[line_end + 2:line_end + 2 + size]
            del self.buffer[:line_end + 2 + size + 2]
            self._cut_events()

    def _cut_events(self) -> None:
        while (end := self.text.find(b"\n\n")) >= 0:
            event = bytes(self.text[:end])
            del self.text[:end + 2]
            data = b"\n".join(line[6:] for line in event.split(b"\n") if line.startswith(b"data: "))
            if data:  # a comment (keepalive) carries none
                self.events.put_nowait(data)

    def _end(self, error: Exception | None) -> None:
        if not self.opened.done():
            if error is None:
                self.opened.set_result(self.status)
            else:
                self.opened.set_exception(error)
        self.events.put_nowait(None)
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._end(TransportError(f"the connection closed: {exc}") if not self.head_read else None)

    async def next(self) -> bytes | None:
        return await self.events.get()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


async def open_stream(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> EventStream:
    """A GET of an event stream on a new connection; returns once the answer's head came
    (its status in `.status`: a stream only when 200)."""
    try:
        _, stream = await asyncio.get_running_loop().create_connection(EventStream, host, port)
    except OSError as exc:
        raise TransportError(f"cannot connect: {exc}") from exc
    head = [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n".encode()]
    head += [f"{name}: {value}\r\n".encode() for name, value in (headers or {}).items()]
    assert stream.transport is not None
    stream.transport.write(b"".join(head) + b"\r\n")
    await stream.opened
    return stream
