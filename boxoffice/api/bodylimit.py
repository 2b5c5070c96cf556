"""Request bodies over BOXOFFICE_MAX_BODY_BYTES are refused with 413 before anything
parses them: at once when Content-Length says so, else as soon as the streamed
(chunked) body passes the limit. Raw ASGI, so it costs nothing on bodiless requests
(an HTTP/1.x request with neither Content-Length nor Transfer-Encoding passes straight through).

A refused body is still arriving when its 413 is written, and many clients (httpx,
requests) send a whole body before they read the answer. Closed with
the body unread, the socket answers the client's next writes with RST, and the client may
never read the 413 (asyncio, httpx.AsyncClient's, drops the unread input of a socket whose
write failed). So the 413 says `Connection: close`, and before its end the rest of the
body is read and dropped, up to DRAIN_BYTES and DRAIN_S (uvicorn's receive() answers
http.disconnect once the answer has ended, so the drain cannot come after it). A body
beyond the bounds is cut off: the connection closes with it unread."""

from __future__ import annotations

import asyncio

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.api.errors import PayloadTooLarge, error_body, status_and_code
from boxoffice.engine.errors import InvalidRequest

DRAIN_BYTES = 4 * 2**20  # past this much of a refused body, close rather than read on
DRAIN_S = 3.0  # and past this long: a trickling client does not hold the connection
CLOSE = (b"connection", b"close")
HTTP1 = ("1.1", "1.0")


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than {limit} bytes", limit=limit)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int = DRAIN_BYTES,
                 drain_s: float = DRAIN_S, admin_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Admin routes take seat plans of up to 5,000 seats (when the admin API exists).
        self.admin_max_bytes = admin_max_bytes
        self.drain_bytes = drain_bytes
        self.drain_s = drain_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if self.admin_max_bytes is not None and scope["path"].startswith("/v1/admin/"):
            limit = self.admin_max_bytes
        declared: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if declared is not None:  # two of them: the request is malformed
                    declared = b"x"
                    break
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None:
            # One plain ASCII number, or the request is malformed (RFC 9110, 8.6).
            if not declared.isdigit():
                # Not drained: with its framing unknown, the body has no end to read to.
                await self._answer(send, InvalidRequest(
                    "the Content-Length header is malformed",
                    details=[{"field": "content-length", "problem": "must be one decimal number"}]))
                return
            length = int(declared)
            if length > limit:
                # Drained only when all of it fits the bound: else reading would not save the answer.
                await self._answer(send, too_large(limit), receive if length <= self.drain_bytes else None)
                return
            if not chunked:
                # HTTP/1.1 frames the body by Content-Length: the server hands the app no
                # more than it declared, so there is nothing left to count.
                await self.app(scope, receive, send)
                return

        if not chunked and scope.get("http_version") in HTTP1:
            # Neither header over HTTP/1.x: no body at all (RFC 9112, 6.3), so nothing to
            # count or drain, and receive and send stay unwrapped on this path of every GET.
            await self.app(scope, receive, send)
            return

        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    # Raised inside the endpoint's read: the app's error handler answers 413.
                    raise too_large(limit)
            return message

        if not chunked:
            # Neither header from a server that may stream a body without either (HTTP/2):
            # counted, nothing to drain (no connection to save).
            await self.app(scope, counting_receive, send)
            return

        async def draining_send(message: Message) -> None:
            # A chunked body refused: the app's 413 closes the connection, and the rest of
            # the body is drained before the 413 ends.
            if refused:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", ()), CLOSE]}
                elif message["type"] == "http.response.body" and not message.get("more_body", False):
                    await send({**message, "more_body": True})
                    await self._drain(receive)
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, counting_receive, draining_send)

    async def _answer(self, send: Send, error: PayloadTooLarge | InvalidRequest,
                      drain: Receive | None = None) -> None:
        """The error, closing the connection; with `drain`, the body is drained before its end."""
        body = orjson.dumps(error_body(error))
        await send({"type": "http.response.start", "status": status_and_code(error)[0],
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()), CLOSE]})
        if drain is None:
            await send({"type": "http.response.body", "body": body})
            return
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await self._drain(drain)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive: Receive) -> None:
        """Reads and drops the rest of the body: to its end, or until the client is gone,
        or at most drain_bytes or drain_s."""
        left = self.drain_bytes
        try:
            async with asyncio.timeout(self.drain_s):
                while left > 0:
                    message = await receive()
                    if message["type"] != "http.request" or not message.get("more_body", False):
                        return
                    left -= len(message.get("body", b""))
        except TimeoutError:
            pass
