"""Calling the ASGI app directly, for requests no well-behaved HTTP client will send
(bytes in headers that httpx refuses, lying Content-Length) and to see how much of a
body the app read before it answered, and after."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class RawAnswer:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks_read: int = 0  # in all
    chunks_read_at_answer: int = 0  # when the answer started
    complete: bool = False  # the answer ended (a last body message)

    @property
    def status_code(self) -> int:
        return self.status

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
               chunks: list[bytes] | None = None, query: bytes = b"", client: tuple[str, int] = ("203.0.113.9", 5000),
               endless: bool = False, http_version: str = "1.1") -> RawAnswer:
    """Sends `chunks` as the body, one receive() each, and records how many were read.
    The client hangs up after the first piece of the answer's body: a stream (SSE) ends
    there, so its head and first event can be inspected. An `endless` body never ends:
    after the chunks, receive() waits until cancelled (a client that stalls mid-body)."""
    answer = RawAnswer()
    pending = list(chunks or [])
    body_sent = False
    hung_up = asyncio.Event()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": http_version, "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode("utf-8", "surrogateescape"),
             "query_string": query, "root_path": "", "headers": [(b"host", b"testserver"), *(headers or [])],
             "client": client, "server": ("testserver", 80), "state": {}}

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not pending:
            if endless:
                await asyncio.Event().wait()
            if body_sent:
                await hung_up.wait()
                return {"type": "http.disconnect"}
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        answer.chunks_read += 1
        chunk = pending.pop(0)
        body_sent = not pending
        return {"type": "http.request", "body": chunk, "more_body": bool(pending) or endless}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.chunks_read_at_answer = answer.chunks_read
            answer.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")
            if message.get("body"):
                hung_up.set()
            answer.complete = not message.get("more_body", False)

    await app(scope, receive, send)
    return answer
