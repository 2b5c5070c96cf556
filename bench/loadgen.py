"""A lean HTTP/1.1 load generator for the ceiling comparisons: keep-alive connections, each
sending prepared requests one after the other. It stays cheap, so the server, not the
client, sets the pace — and both sides of a comparison are driven by exactly the same client.

Each connection is a bare asyncio protocol: the head of an answer is parsed, its body only
counted (kept only for the last answer, which callers may look at). A 200 kB seat map costs
the client a few reads instead of a buffer growing and being sliced, so on a small machine
the client does not eat the core the server needs (it did: ~100 µs a seat map with
asyncio streams, as much as the bare server)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench.httpclient import TransportError, parse_head
from bench.stats import latency_summary

MAX_HEAD = 65536


def request_bytes(method: str, path: str, body: Any = None, host: str = "127.0.0.1",
                  client: str | None = None) -> bytes:
    """One request; `client` is the address the load balancer in front saw (X-Forwarded-For),
    so one load generator presents many customers' addresses (bench/servers.py trusts it)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if client is not None:
        head += f"X-Forwarded-For: {client}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    payload = orjson.dumps(body)
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload


@dataclass
class LoadResult:
    summary: dict[str, Any]
    statuses: Counter[int]
    duration_s: float
    last_body: bytes

    @property
    def per_s(self) -> float:
        return float(self.summary["per_s"])


class _Run:
    """What the connections of one run share: the requests and what came back."""

    def __init__(self, requests: Iterator[bytes], keep_last_body: bool) -> None:
        self.requests = requests
        self.keep_last_body = keep_last_body
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.last_body = b""


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends the next request when the answer to the previous
    one is complete; ends (closes) when the requests run out."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head = bytearray()  # a head split over several reads
        self.body: list[bytes] = []
        self.status = 0
        self.remaining = -1  # body bytes still to come; -1 while waiting for a head
        self.in_flight = False
        self.began = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send_next()

    def send_next(self) -> None:
        assert self.transport is not None
        request = next(self.run.requests, None)
        if request is None:
            self.transport.close()
            return
        self.in_flight = True
        self.began = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        pos, size = 0, len(data)
        while pos < size:
            if self.remaining < 0:
                end = -1 if self.head else data.find(b"\r\n\r\n", pos)
                if end >= 0:
                    if not self.read_head(data[pos:end]):
                        return
                    pos = end + 4
                else:
                    self.head += data[pos:]
                    end = self.head.find(b"\r\n\r\n")
                    if end < 0:
                        if len(self.head) > MAX_HEAD:
                            self.fail(ValueError("the answer's head is too long"))
                        return
                    if not self.read_head(bytes(self.head[:end])):
                        return
                    data, pos, size = bytes(self.head[end + 4:]), 0, len(self.head) - end - 4
                    self.head.clear()
            taken = min(self.remaining, size - pos)
            if self.run.keep_last_body:
                self.body.append(data[pos:pos + taken])
            pos += taken
            self.remaining -= taken
            if self.remaining == 0:
                self.complete()

    def read_head(self, head: bytes) -> bool:
        try:
            self.status, self.remaining, _ = parse_head(head)
        except (TransportError, ValueError) as exc:
            self.fail(exc)
            return False
        return True

    def complete(self) -> None:
        run = self.run
        run.latencies.append(time.perf_counter() - self.began)
        run.statuses[self.status] += 1
        if run.keep_last_body:
            run.last_body = b"".join(self.body)
            self.body.clear()
        self.remaining = -1
        self.in_flight = False
        self.send_next()

    def fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if self.in_flight:
            self.done.set_exception(exc or ConnectionError("the server closed the connection mid-answer"))
        else:
            self.done.set_result(None)


async def run_load(host: str, port: int, requests: Iterator[bytes], concurrency: int,
                   keep_last_body: bool = False) -> LoadResult:
    """Sends every request of `requests` over `concurrency` connections; latency per request.
    With keep_last_body the result carries the body of the last answer (else b"")."""
    loop = asyncio.get_running_loop()
    run = _Run(requests, keep_last_body)
    began = time.perf_counter()
    opened = await asyncio.gather(*(loop.create_connection(lambda: _Connection(run), host, port)
                                    for _ in range(concurrency)))
    await asyncio.gather(*(connection.done for _, connection in opened))
    duration = time.perf_counter() - began
    return LoadResult(latency_summary(run.latencies, duration), run.statuses, duration, run.last_body)


def client_address(i: int) -> str:
    """The i-th simulated customer's own address (10.0.0.0/8, 16 million of them)."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
