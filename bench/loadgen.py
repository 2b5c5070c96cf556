"""A lean HTTP/1.1 load generator for the ceiling comparisons: keep-alive connections, each
sending prepared requests one after the other. It stays cheap (no client library per
request), so the server, not the client, sets the pace — and both sides of a comparison
are driven by exactly the same client."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench.stats import latency_summary


def request_bytes(method: str, path: str, body: Any = None, host: str = "127.0.0.1") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
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


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    body = await reader.readexactly(length) if length else b""
    return status, body


async def run_load(host: str, port: int, requests: Iterator[bytes], concurrency: int) -> LoadResult:
    """Sends every request of `requests` over `concurrency` connections; latency per request."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    last_body = b""

    async def connection() -> None:
        nonlocal last_body
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for request in requests:
                began = time.perf_counter()
                writer.write(request)
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter() - began)
                statuses[status] += 1
                last_body = body
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    duration = time.perf_counter() - began
    return LoadResult(latency_summary(latencies, duration), statuses, duration, last_body)
