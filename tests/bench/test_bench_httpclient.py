"""The spike's lean HTTP client (bench/httpclient.py) against a scripted server: answers split
over many reads, keep-alive reuse, a server that closes, a chunked answer, a cut-off answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from bench.httpclient import LeanClient, TransportError, open_stream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def test_answers_in_pieces_and_keep_alive() -> None:
    async def main() -> None:
        connections = 0

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while not reader.at_eof():
                try:
                    head, body = await read_request(reader)
                except asyncio.IncompleteReadError:
                    break
                answer = head.split(b" ")[1] + b"|" + body * 1000
                raw = b"HTTP/1.1 201 Created\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer
                for i in range(0, len(raw), 7):  # the head split too
                    writer.write(raw[i:i + 7])
                    await writer.drain()
            writer.close()

        server, port = await serve(echo)
        async with server, LeanClient("127.0.0.1", port, 2) as client:
            for n in range(5):
                status, body = await client.request("POST", f"/p{n}", b"xy", {"Idempotency-Key": "k"})
                assert status == 201
                assert body == f"/p{n}|".encode() + b"xy" * 1000
        assert connections == 1

    asyncio.run(main())


def test_a_server_that_closes_after_answering_gets_a_new_connection() -> None:
    async def main() -> None:
        async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        server, port = await serve(once)
        async with server, LeanClient("127.0.0.1", port, 1) as client:
            assert await client.request("GET", "/a") == (200, b"ok")
            assert await client.request("GET", "/b") == (200, b"ok")

    asyncio.run(main())


@pytest.mark.parametrize("answer, problem", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "chunked"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly", "closed mid-answer"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n", "invalid literal"),
])
def test_answers_it_cannot_read_are_transport_errors(answer: bytes, problem: str) -> None:
    async def main() -> None:
        async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()
            writer.close()

        server, port = await serve(bad)
        async with server, LeanClient("127.0.0.1", port, 1) as client:
            with pytest.raises(TransportError, match=problem):
                await client.request("GET", "/")

    asyncio.run(main())


def test_nobody_listening_is_a_transport_error() -> None:
    async def main() -> None:
        server, port = await serve(lambda r, w: asyncio.sleep(0))
        server.close()
        await server.wait_closed()
        async with LeanClient("127.0.0.1", port, 1) as client:
            with pytest.raises(TransportError, match="cannot connect"):
                await client.request("GET", "/")

    asyncio.run(main())


def test_an_event_stream_cut_anywhere_gives_its_events_in_order_then_its_end() -> None:
    async def main() -> None:
        async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"GET /v1/queue/Q1/events HTTP/1.1\r\n")
            body = b'data: {"position": 2}\n\n: keepalive\n\ndata: {"position": 1}\n\ndata: {"status": "admitted"}\n\n'
            chunks = [body[:10], body[10:31], body[31:]]  # events cut across chunks
            raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            raw += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            for i in range(0, len(raw), 5):  # and every chunk cut across reads
                writer.write(raw[i:i + 5])
                await writer.drain()
            writer.close()

        server, port = await serve(stream)
        async with server:
            events = await open_stream("127.0.0.1", port, "/v1/queue/Q1/events")
            assert events.status == 200
            got = [await events.next() for _ in range(4)]
            assert got == [b'{"position": 2}', b'{"position": 1}', b'{"status": "admitted"}', None]

    asyncio.run(main())


def test_an_answer_that_is_not_a_stream_ends_at_once_with_its_status() -> None:
    async def main() -> None:
        async def missing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()
            writer.close()

        server, port = await serve(missing)
        async with server:
            events = await open_stream("127.0.0.1", port, "/v1/queue/nope/events")
            assert events.status == 404 and await events.next() is None

    asyncio.run(main())


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_kept_connection_closed_as_a_request_goes_out_is_retried_for_a_get_only(method: str) -> None:
    """The server's idle timeout can close a kept-alive connection just as the next request
    is written: a GET is sent once more on a new connection, a POST is reported."""
    async def main() -> None:
        served = 0

        async def close_the_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            await read_request(reader)
            served += 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
            await read_request(reader)  # the next request on this connection: dropped unanswered
            writer.close()

        server, port = await serve(close_the_second)
        async with server, LeanClient("127.0.0.1", port, 1) as client:
            assert await client.request(method, "/a") == (200, b"ok")
            if method == "GET":
                assert await client.request(method, "/b") == (200, b"ok")
                assert served == 2
            else:
                with pytest.raises(TransportError):
                    await client.request(method, "/b", b"{}")
                assert served == 1

    asyncio.run(main())
