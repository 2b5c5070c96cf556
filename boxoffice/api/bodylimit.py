"""Request bodies over BOXOFFICE_MAX_BODY_BYTES are refused with 413 before anything
parses them: at once when Content-Length says so, else as soon as the streamed
(chunked) body passes the limit. Raw ASGI, so it costs nothing on bodiless requests."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.engine.errors import InvalidRequest, PayloadTooLarge


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than {limit} bytes", limit=limit)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
                await self._answer(send, InvalidRequest(
                    "the Content-Length header is malformed",
                    details=[{"field": "content-length", "problem": "must be one decimal number"}]))
                return
            if int(declared) > self.max_bytes:
                await self._answer(send, too_large(self.max_bytes))
                return
            if not chunked:
                # HTTP/1.1 frames the body by Content-Length: the server hands the app no
                # more than it declared, so there is nothing left to count.
                await self.app(scope, receive, send)
                return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the endpoint's read: the app's error handler answers 413.
                    raise too_large(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)

    @staticmethod
    async def _answer(send: Send, error: PayloadTooLarge | InvalidRequest) -> None:
        body = orjson.dumps(error.body())
        await send({"type": "http.response.start", "status": error.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
