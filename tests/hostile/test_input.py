"""Bounds (docs/API.md): bodies over the size limit are refused with 413 before they are read
whole or parsed; malformed JSON, wrong types, unknown fields, non-JSON content types,
bad seat lists, customers, categories, ids and query parameters get 422 naming each
offending field. Every test runs against a show with a booking, a hold and a granted
waitlist entry, and proves all of it is exactly as before (tests/support/state.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from boxoffice.api.app import create_app
from boxoffice.api.bodylimit import BodySizeLimit
from boxoffice.api.errors import PayloadTooLarge, error_response
from boxoffice.api.validation import hold_request
from boxoffice.engine.errors import InvalidRequest
from boxoffice.engine.wiring import Engine
from tests.support import rawasgi
from tests.support.backends import base_settings
from tests.support.live import LiveServer, serve
from tests.support.scene import Scene, make_scene
from tests.support.services import RedisServer, uvicorn_args
from tests.support.shows import ShowRef
from tests.support.state import nothing_changes

LIMIT = 16_384
JSON = {"content-type": "application/json"}


@pytest.fixture
async def scene(client: httpx.AsyncClient, show: ShowRef) -> Scene:
    return await make_scene(client, show)


def refused(answer: Any, status: int, code: str, *fields: str) -> None:
    """The contract's error answer, naming every one of `fields` in its details."""
    body = answer.json()
    assert answer.status_code == status, (answer.status_code, body)
    assert body["error"] == code and isinstance(body["message"], str) and body["message"], body
    named = {d["field"] for d in body.get("details", [])}
    for wanted in fields:
        assert wanted in named, f"{wanted!r} not named in {body}"


def body_endpoints(scene: Scene) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, extra headers) of every endpoint that reads a body."""
    return [("POST", f"/v1/shows/{scene.show_id}/holds", {}),
            ("POST", f"/v1/shows/{scene.show_id}/waitlist", {}),
            ("POST", f"/v1/holds/{scene.hold_id}/confirm", {"Idempotency-Key": "k-1"})]


# -- size ----------------------------------------------------------------------------


async def test_a_declared_body_over_the_limit_is_refused_before_a_byte_is_read(ctx: Engine, scene: Scene) -> None:
    app = create_app(ctx.settings, engine=ctx)
    async with nothing_changes(ctx, [scene.show_id]):
        for method, path, extra in [*body_endpoints(scene), ("GET", "/v1/cities", {}),
                                    ("DELETE", f"/v1/holds/{scene.hold_id}", {})]:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(LIMIT + 1).encode()),
                       *((k.lower().encode(), v.encode()) for k, v in extra.items())]
            answer = await rawasgi.call(app, method, path, headers, [b"{" * (LIMIT + 1)])
            refused(answer, 413, "payload_too_large")
            assert answer.json()["limit"] == LIMIT
            assert answer.chunks_read_at_answer == 0, f"{method} {path} read the body before refusing it"
            assert answer.headers["connection"] == "close"
            assert answer.chunks_read == 1 and answer.complete, "the rest was drained, then the answer ended"


async def test_a_streamed_body_is_cut_off_as_soon_as_it_passes_the_limit(ctx: Engine, scene: Scene) -> None:
    app = create_app(ctx.settings, engine=ctx)
    chunks = [b"[" * 4096] * 16  # 64 KiB of what would be invalid JSON, no Content-Length
    async with nothing_changes(ctx, [scene.show_id]):
        for method, path, extra in body_endpoints(scene):
            headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked"),
                       *((k.lower().encode(), v.encode()) for k, v in extra.items())]
            answer = await rawasgi.call(app, method, path, headers, list(chunks))
            refused(answer, 413, "payload_too_large")  # not 422: it was never parsed
            assert answer.chunks_read_at_answer == LIMIT // 4096 + 1, "refused at the first chunk over the limit"
            assert answer.headers["connection"] == "close"
            assert answer.chunks_read == len(chunks) and answer.complete, "the rest was drained, then the answer ended"


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, and answers a PayloadTooLarge raised by the read as the app does."""
    try:
        while (await receive()).get("more_body", False):
            pass
    except PayloadTooLarge as exc:
        await error_response(exc)(scope, receive, send)
        return
    await JSONResponse({})(scope, receive, send)


async def test_a_refused_body_is_drained_within_bounds() -> None:
    """After the 413 is written, the rest of a refused body is read and dropped so that the
    client gets to read the answer; past drain_bytes or drain_s, the connection is given up."""
    piece = b"[" * 4096
    declared = [(b"content-type", b"application/json"), (b"content-length", b"%d" % (64 * len(piece)))]
    streamed = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    roomy = BodySizeLimit(reading_app, LIMIT, drain_bytes=64 * len(piece))
    tight = BodySizeLimit(reading_app, LIMIT, drain_bytes=16 * len(piece))
    # Within the bound: drained to the end.
    for headers in (declared, streamed):
        answer = await rawasgi.call(roomy, "POST", "/", headers, [piece] * 64)
        refused(answer, 413, "payload_too_large")
        assert answer.headers["connection"] == "close" and answer.complete
        assert answer.chunks_read == 64
    # A declared body larger than the bound: not read at all, the answer ends at once.
    answer = await rawasgi.call(tight, "POST", "/", declared, [piece] * 64)
    refused(answer, 413, "payload_too_large")
    assert answer.headers["connection"] == "close" and answer.complete and answer.chunks_read == 0
    # A streamed one: read up to the bound, not to its end.
    answer = await rawasgi.call(tight, "POST", "/", streamed, [piece] * 64)
    refused(answer, 413, "payload_too_large")
    assert answer.headers["connection"] == "close" and answer.complete
    assert answer.chunks_read == LIMIT // len(piece) + 1 + 16, answer.chunks_read
    # A client that stalls mid-body: given up after drain_s, the answer ends.
    stalled = BodySizeLimit(reading_app, LIMIT, drain_s=0.1)
    for headers in (declared, streamed):
        async with asyncio.timeout(10):
            answer = await rawasgi.call(stalled, "POST", "/", headers, [piece] * 8, endless=True)
        refused(answer, 413, "payload_too_large")
        assert answer.headers["connection"] == "close" and answer.complete


async def test_an_ordinary_request_goes_through_the_body_limit_unwrapped() -> None:
    """The drain costs nothing on the hot paths: a body declared within the limit and a
    bodiless request reach the app with the server's own send (and a declared body, or no
    body at all over HTTP/1.x, with its own receive); without HTTP/1.x framing a body may
    come with neither header, so there receive() counts it."""
    seen: list[tuple[Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((receive, send))
        await JSONResponse({})(scope, receive, send)

    limit = BodySizeLimit(app, LIMIT)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", b"2")]}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        pass

    await limit(scope, receive, send)
    await limit({**scope, "method": "GET", "headers": [], "http_version": "1.1"}, receive, send)
    await limit({**scope, "method": "GET", "headers": [], "http_version": "2"}, receive, send)
    assert seen[0] == (receive, send)
    assert seen[1] == (receive, send)
    assert seen[2][1] is send and seen[2][0] is not receive


async def test_a_body_with_neither_header_is_counted_without_http1_framing() -> None:
    """A server that streams a body with neither Content-Length nor Transfer-Encoding (HTTP/2
    frames bodies itself) still gets the 413 once the body passes the limit."""
    piece = b"[" * 4096
    answer = await rawasgi.call(BodySizeLimit(reading_app, LIMIT), "POST", "/", [], [piece] * 64,
                                http_version="2")
    refused(answer, 413, "payload_too_large")
    assert answer.chunks_read == LIMIT // len(piece) + 1, answer.chunks_read


async def test_a_body_just_under_the_limit_is_parsed(client: httpx.AsyncClient, ctx: Engine, scene: Scene) -> None:
    body = b'{"seats": ["A1"], "customer": "ana@example.org", "pad": "' + b"x" * (LIMIT - 80) + b'"}'
    assert len(body) <= LIMIT
    async with nothing_changes(ctx, [scene.show_id]):
        answer = await client.post(f"/v1/shows/{scene.show_id}/holds", content=body, headers=JSON)
    refused(answer, 422, "invalid_request", "pad")


async def test_the_body_limit_is_configurable(ctx: Engine, scene: Scene) -> None:
    app = create_app(ctx.settings.with_changes(max_body_bytes=400), engine=ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as small:
        async with nothing_changes(ctx, [scene.show_id]):
            fits = {"seats": [scene.free_seats[0]], "customer": "x" * 255}
            answer = await small.post(f"/v1/shows/{scene.show_id}/holds", json=fits)
            refused(answer, 422, "invalid_request", "customer")  # under 400 bytes: parsed, then refused
            over = {"seats": [scene.free_seats[0]], "customer": "x" * 400}
            refused(await small.post(f"/v1/shows/{scene.show_id}/holds", json=over), 413, "payload_too_large")


async def test_a_malformed_content_length_is_refused(ctx: Engine, scene: Scene) -> None:
    app = create_app(ctx.settings, engine=ctx)
    async with nothing_changes(ctx, [scene.show_id]):
        for values in ([b"abc"], [b"-1"], [b"1e3"], ["\u00b2".encode("latin-1")], [b"12", b"12"], [b" 12"]):
            headers = [(b"content-type", b"application/json"), *((b"content-length", v) for v in values)]
            answer = await rawasgi.call(app, "POST", f"/v1/shows/{scene.show_id}/holds", headers, [b"{}"])
            refused(answer, 422, "invalid_request", "content-length")


def test_a_chunked_body_over_the_limit_is_refused_by_the_real_server(redis_server: RedisServer,
                                                                     database_url: str) -> None:
    """Over real HTTP/1.1 with Transfer-Encoding: chunked and no Content-Length: the 413
    arrives while the client is still sending, before the body is even finished."""
    with serve(base_settings("real", redis_server.url, database_url, "")) as live:
        host, port = live.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"POST /v1/shows/1/holds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            chunk = b"[" * 4096
            for _ in range(LIMIT // len(chunk) + 1):
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            # No terminating chunk: the server must answer without waiting for the rest.
            answer = b""
            while not answer_complete(answer):
                data = conn.recv(65536)
                assert data, f"the server closed without a whole answer: {answer!r}"
                answer += data
        text = answer.decode("latin-1")
        assert text.startswith("HTTP/1.1 413"), text[:200]
        assert '"error":"payload_too_large"' in text
        assert "Traceback" not in live.log()


def answer_complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


# The 413 of a large body on a kept-alive connection reaches the client. The production
# default first: `boxoffice serve` runs uvicorn.run's defaults, whose "auto" protocol is
# httptools when installed (uvicorn/protocols/http/auto.py); then each protocol by name.
SERVERS = {
    "boxoffice-serve": ["boxoffice.engine.cli", "serve"],
    "httptools": [*uvicorn_args(), "--http", "httptools"],
    "h11": [*uvicorn_args(), "--http", "h11"],
}
BIG = 3_000_000  # the report's body: over the limit, under the drain bound
TRIES = 10


@pytest.fixture(scope="module", params=list(SERVERS))
def live_server(request: pytest.FixtureRequest, redis_server: RedisServer, database_url: str) -> Iterator[LiveServer]:
    if request.param == "boxoffice-serve":
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        assert AutoHTTPProtocol is HttpToolsProtocol, "the production default is no longer httptools"
    with serve(base_settings("real", redis_server.url, database_url, ""), module_args=SERVERS[request.param]) as live:
        yield live


def local_port(answer: httpx.Response) -> int:
    """The client's port of the connection that carried `answer` (open while it streams)."""
    return int(answer.extensions["network_stream"].get_extra_info("client_addr")[1])


async def test_a_large_body_on_a_kept_alive_connection_gets_its_413(live_server: LiveServer) -> None:
    """httpx (as most clients) sends the whole body before it reads the answer. The 413 is
    written while a 3 MB body is still arriving; it must reach the client, on a connection
    that already carried a request, whether the body is declared or streamed (chunked), and
    close that connection (the client must not send the next request on it). The async
    client is the one that lost it: the server's close with the body unread answers the
    client's writes with RST, and asyncio drops a socket's unread input when a write to it
    fails (the sync client read the 413 anyway; a fresh connection lost it as often)."""
    big = b"[" * BIG

    async def streamed() -> AsyncIterator[bytes]:
        for start in range(0, BIG, 65_536):
            yield big[start:start + 65_536]

    lost: dict[str, list[str]] = {"content-length": [], "chunked": []}
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10.0) as client:
        for framing, failures in lost.items():
            for attempt in range(TRIES):
                warm = await client.get("/v1/cities")  # one ordinary request first: the connection is kept alive
                assert warm.status_code == 200, warm.text
                try:
                    async with client.stream("POST", "/v1/shows/1/holds", headers=JSON,
                                             content=big if framing == "content-length" else streamed()) as answer:
                        assert local_port(answer) == local_port(warm), "the POST did not reuse the connection"
                        await answer.aread()
                except httpx.TransportError as exc:
                    failures.append(f"#{attempt}: {type(exc).__name__}: {exc!r}")
                    continue
                if answer.status_code != 413 or answer.json().get("error") != "payload_too_large":
                    failures.append(f"#{attempt}: {answer.status_code} {answer.text[:200]}")
                elif answer.headers.get("connection") != "close":
                    failures.append(f"#{attempt}: 413 without Connection: close")
        # An ordinary request after all of it (on a new connection: the 413 closed the last).
        assert (await client.get("/v1/cities")).status_code == 200
    summary = {framing: f"{len(failures)} of {TRIES}" for framing, failures in lost.items()}
    assert not any(lost.values()), f"tries that lost their 413: {summary}: {lost}"
    assert "Traceback" not in live_server.log()


def test_a_refused_body_is_drained_only_so_far(live_server: LiveServer) -> None:
    """Draining is bounded: an endless chunked body is cut off, the connection closed, after
    the limit and the drain bound (plus what the two sockets' buffers hold: 8-10 MiB in all
    when measured), not read forever."""
    host, port = live_server.url.removeprefix("http://").split(":")
    piece = b"[" * 65_536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent, most = 0, 256 * 2**20
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /v1/shows/1/holds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < most:
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server: what this test waits for
    assert sent < 64 * 2**20, f"the server was still reading after {sent >> 20} MiB"


# -- JSON, types, unknown fields, content types ----------------------------------------------


async def test_malformed_json_is_refused_naming_the_body(client: httpx.AsyncClient, ctx: Engine,
                                                         scene: Scene) -> None:
    bodies = [b"", b"{", b'{"seats": [}', b"[]", b'"seats"', b"null", b"1", b"true", b'{"a":1} x', b"NaN",
              b"\xef\xbb\xbf{}", b'{"customer": "\xff"}', b'{"customer": "\\ud800"}', b"[" * 5000 + b"]" * 5000,
              b'{"seats": ["A1"], "customer": "a@b.c",}', b"{'seats': ['A1']}"]
    async with nothing_changes(ctx, [scene.show_id]):
        for method, path, extra in body_endpoints(scene):
            for body in bodies:
                answer = await client.request(method, path, content=body, headers={**JSON, **extra})
                refused(answer, 422, "invalid_request", "body")


async def test_wrong_types_are_refused_naming_each_field(client: httpx.AsyncClient, ctx: Engine,
                                                         scene: Scene) -> None:
    holds, waitlist = f"/v1/shows/{scene.show_id}/holds", f"/v1/shows/{scene.show_id}/waitlist"
    confirm = f"/v1/holds/{scene.hold_id}/confirm"
    seat, customer = scene.free_seats[0], "dan@example.org"
    cases: list[tuple[str, dict[str, Any], set[str]]] = [
        (holds, {"seats": seat, "customer": customer}, {"seats"}),
        (holds, {"seats": [1, 2], "customer": customer}, {"seats[0]", "seats[1]"}),
        (holds, {"seats": [None, {"id": seat}, [seat]], "customer": customer}, {"seats[0]", "seats[1]", "seats[2]"}),
        (holds, {"seats": {"0": seat}, "customer": customer}, {"seats"}),
        (holds, {"seats": [seat], "customer": 42}, {"customer"}),
        (holds, {"seats": [seat], "customer": None}, {"customer"}),
        (holds, {"seats": [seat], "customer": [customer]}, {"customer"}),
        (holds, {"seats": True, "customer": False}, {"seats", "customer"}),
        (holds, {}, {"seats", "customer"}),
        (waitlist, {"count": "2", "customer": customer}, {"count"}),
        (waitlist, {"count": True, "customer": customer}, {"count"}),
        (waitlist, {"count": 2.5, "customer": customer}, {"count"}),
        (waitlist, {"count": 0, "customer": customer}, {"count"}),
        (waitlist, {"count": -1, "customer": customer}, {"count"}),
        (waitlist, {"count": 11, "customer": customer}, {"count"}),
        (waitlist, {"count": 2**70, "customer": customer}, {"count"}),
        (waitlist, {"count": None, "customer": customer}, {"count"}),
        (waitlist, {"count": 2, "customer": customer, "category": 5}, {"category"}),
        (waitlist, {"count": 2, "customer": customer, "category": ["vip"]}, {"category"}),
        (confirm, {"payment": "card"}, {"payment"}),
        (confirm, {"payment": None}, {"payment"}),
        (confirm, {"payment": {"method": "cash", "token": "tok_ok"}}, {"payment.method"}),
        (confirm, {"payment": {"method": "card", "token": 1}}, {"payment.token"}),
        (confirm, {"payment": {"method": "card"}}, {"payment.token"}),
        (confirm, {}, {"payment"}),
    ]
    async with nothing_changes(ctx, [scene.show_id]):
        for path, body, fields in cases:
            headers = {"Idempotency-Key": "k-1"} if path == confirm else {}
            answer = await client.post(path, json=body, headers=headers)
            refused(answer, 422, "invalid_request", *fields)


async def test_unknown_fields_are_refused_naming_them(client: httpx.AsyncClient, ctx: Engine, scene: Scene) -> None:
    seat, customer = scene.free_seats[0], "dan@example.org"
    cases = [
        (f"/v1/shows/{scene.show_id}/holds", {"seats": [seat], "customer": customer, "admin": True}, "admin"),
        (f"/v1/shows/{scene.show_id}/holds", {"seats": [seat], "customer": customer, "__proto__": {}}, "__proto__"),
        (f"/v1/shows/{scene.show_id}/holds", {"seats": [seat], "customer": customer, "ttl_s": 99999}, "ttl_s"),
        (f"/v1/shows/{scene.show_id}/waitlist", {"count": 1, "customer": customer, "position": 1}, "position"),
        (f"/v1/holds/{scene.hold_id}/confirm", {"payment": {"method": "card", "token": "tok_ok"}, "amount": 0},
         "amount"),
        (f"/v1/holds/{scene.hold_id}/confirm", {"payment": {"method": "card", "token": "tok_ok", "amount": 0}},
         "payment.amount"),
    ]
    async with nothing_changes(ctx, [scene.show_id]):
        for path, body, field in cases:
            answer = await client.post(path, json=body, headers={"Idempotency-Key": "k-1"})
            refused(answer, 422, "invalid_request", field)
        flood = {"seats": [seat], "customer": customer, **{f"f{i}": i for i in range(1000)}}
        answer = await client.post(f"/v1/shows/{scene.show_id}/holds", json=flood)
        refused(answer, 422, "invalid_request", "f0")
        assert len(answer.json()["details"]) <= 20, "a flood of unknown fields is answered briefly"


async def test_non_json_content_types_are_refused(client: httpx.AsyncClient, ctx: Engine, scene: Scene) -> None:
    body = f'{{"seats": ["{scene.free_seats[0]}"], "customer": "dan@example.org"}}'.encode()
    types = [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
             "application/xml", "application/json-patch+json", "application/jsonx", "text/json", "*/*", ""]
    async with nothing_changes(ctx, [scene.show_id]):
        for method, path, extra in body_endpoints(scene):
            for content_type in types:
                headers = dict(extra) | ({"content-type": content_type} if content_type is not None else {})
                answer = await client.request(method, path, content=body, headers=headers)
                refused(answer, 422, "invalid_request", "content-type")
        form = await client.post(f"/v1/shows/{scene.show_id}/holds",
                                 data={"seats": scene.free_seats[0], "customer": "dan@example.org"})
        refused(form, 422, "invalid_request", "content-type")


# -- fields: seats, customers, categories, ids, query ---------------------------------------


async def test_seat_lists_are_length_and_character_checked(client: httpx.AsyncClient, ctx: Engine,
                                                           scene: Scene) -> None:
    free = scene.free_seats
    cases: list[tuple[list[Any], str]] = [
        ([], "seats"), (free[:11], "seats"), (free[:1] * 3000, "seats"), ([free[0], free[0]], "seats"),
        (["ZZ999"], "seats"), (["a1"], "seats[0]"), (["A0"], "seats[0]"), (["A01"], "seats[0]"),
        (["AAAA1"], "seats[0]"), (["A1000"], "seats[0]"), ([" A1"], "seats[0]"), (["A1 "], "seats[0]"),
        (["A1\n"], "seats[0]"), (["A-1"], "seats[0]"), (["A" * 10_000], "seats[0]"), ([""], "seats[0]"),
        ([free[0], "B2,C3"], "seats[1]"), (["A1|x"], "seats[0]"),
    ]
    async with nothing_changes(ctx, [scene.show_id]):
        for seats, field in cases:
            answer = await client.post(f"/v1/shows/{scene.show_id}/holds",
                                       json={"seats": seats, "customer": "dan@example.org"})
            refused(answer, 422, "invalid_request", field)
        # A seat another hold has: a clean 409 naming it, nothing held.
        taken = await client.post(f"/v1/shows/{scene.show_id}/holds",
                                  json={"seats": [free[0], scene.seat_ids[2]], "customer": "dan@example.org"})
        assert taken.status_code == 409 and taken.json()["unavailable"] == [scene.seat_ids[2]]


async def test_customers_are_length_and_character_checked(client: httpx.AsyncClient, ctx: Engine,
                                                          scene: Scene) -> None:
    bad = ["", " ", "a" * 255, "a" * 20_000, "ana @example.org", "ana@example.org\n", "\tana", "<script>",
           "ana\"@x", "ana'@x", "{ana}@x", "ana;rm", "ana\\x", "ana,bob", "ana|bob", "ana@exämple.org", "😀",
           "ana@example.org\u200b"]
    async with nothing_changes(ctx, [scene.show_id]):
        for customer in bad:
            for path, body in [(f"/v1/shows/{scene.show_id}/holds", {"seats": [scene.free_seats[0]]}),
                               (f"/v1/shows/{scene.show_id}/waitlist", {"count": 1})]:
                answer = await client.post(path, json={**body, "customer": customer})
                if len(customer) > LIMIT:
                    refused(answer, 413, "payload_too_large")
                else:
                    refused(answer, 422, "invalid_request", "customer")
    # The boundary, on the parser itself: 254 characters pass, 255 do not.
    assert hold_request({"seats": ["A1"], "customer": "a" * 254}) == (["A1"], "a" * 254, None)
    with pytest.raises(InvalidRequest):
        hold_request({"seats": ["A1"], "customer": "a" * 255})


async def test_categories_are_length_and_character_checked(client: httpx.AsyncClient, ctx: Engine,
                                                           scene: Scene) -> None:
    # "*" and "" would be the Lua scripts' any-category wildcard: refused before any script.
    bad = ["", "*", "Standard", "standard\n", "a" * 33, "../../etc", "vip'--", "wc:*", "stand ard", "1vip",
           "nonexistent"]
    async with nothing_changes(ctx, [scene.show_id]):
        for category in bad:
            answer = await client.post(f"/v1/shows/{scene.show_id}/waitlist",
                                       json={"count": 1, "customer": "dan@example.org", "category": category})
            refused(answer, 422, "invalid_request", "category")


async def test_path_ids_are_length_and_character_checked(client: httpx.AsyncClient, ctx: Engine,
                                                         scene: Scene) -> None:
    numeric = ["0", "01", "-1", "1.0", "1e3", "0x1", "\u0661", "\uff11", "1" * 19, "99999999999999999999999",
               "%201", "1%0A", "%00"]
    opaque = ["a" * 81, "a" * 5000, "H1-a%00", "%E2%80%AE", "a.b", "a%20b", "a%0A", "'", "%22", "*", "%2E%2E"]
    async with nothing_changes(ctx, [scene.show_id]):
        for raw in numeric:
            for path in (f"/v1/shows/{raw}", f"/v1/shows/{raw}/seats", f"/v1/cities/{raw}/movies",
                         f"/v1/cities/1/movies/{raw}/shows", f"/v1/shows/{raw}/seats/events"):
                answer = await client.get(path)
                assert answer.status_code == 422, (path, answer.status_code)
                refused(answer, 422, "invalid_request")
            refused(await client.post(f"/v1/shows/{raw}/holds", json={"seats": ["A1"], "customer": "a@b.c"}),
                    422, "invalid_request", "show_id")
        for raw in opaque:
            for method, path in (("GET", f"/v1/holds/{raw}"), ("DELETE", f"/v1/holds/{raw}"),
                                 ("GET", f"/v1/bookings/{raw}"), ("GET", f"/v1/waitlist/{raw}"),
                                 ("DELETE", f"/v1/waitlist/{raw}"), ("GET", f"/v1/waitlist/{raw}/events")):
                answer = await client.request(method, path)
                assert answer.status_code == 422, (method, path, answer.status_code)
                refused(answer, 422, "invalid_request")
            answer = await client.post(f"/v1/holds/{raw}/confirm", headers={"Idempotency-Key": "k"},
                                       json={"payment": {"method": "card", "token": "tok_ok"}})
            refused(answer, 422, "invalid_request", "hold_id")


async def test_query_parameters_are_length_and_character_checked(client: httpx.AsyncClient, ctx: Engine,
                                                                 scene: Scene) -> None:
    movies = (await client.get("/v1/cities/1/movies")).json()["movies"]
    path = f"/v1/cities/1/movies/{movies[0]['id']}/shows"
    fullwidth = "\uff12\uff10\uff12\uff16-\uff11\uff12-\uff10\uff11"  # 2026-12-01: int() would take it
    bad = ["", "2026-13-01", "2026-02-30", fullwidth, "2026-12-01\n", "2026-12-01T00:00:00Z", "26-12-01",
           "2026-1-1", "x" * 5000, "'; DROP TABLE shows; --", "2026-12-01%00"]
    async with nothing_changes(ctx, [scene.show_id]):
        for value in bad:
            refused(await client.get(path, params={"date": value}), 422, "invalid_request", "date")
        ok = await client.get(path, params={"date": "2026-12-01", "unknown": "ignored"})
        assert ok.status_code == 200


async def test_idempotency_keys_and_tokens_are_checked(client: httpx.AsyncClient, ctx: Engine, scene: Scene) -> None:
    confirm = f"/v1/holds/{scene.hold_id}/confirm"
    pay = {"payment": {"method": "card", "token": "tok_ok"}}
    async with nothing_changes(ctx, [scene.show_id]):
        for key in ["", "k" * 201, "a b", "k;1", "ключ", "k'--"]:
            answer = await client.post(confirm, json=pay, headers={"Idempotency-Key": key.encode()})
            refused(answer, 422, "invalid_request", "Idempotency-Key")
        refused(await client.post(confirm, json=pay), 422, "invalid_request", "Idempotency-Key")
        for token in ["", "t" * 65, "tok ok", "tok_ok\n", "tok_ok'--", "../tok"]:
            answer = await client.post(confirm, json={"payment": {"method": "card", "token": token}},
                                       headers={"Idempotency-Key": "k-1"})
            refused(answer, 422, "invalid_request", "payment.token")


async def test_a_guessable_creation_key_is_refused(client: httpx.AsyncClient, ctx: Engine, scene: Scene) -> None:
    """A hold's or entry's key names it for whoever knows the customer and the show: a short
    one is refused with the body's other faults, and nothing changes."""
    seat = scene.free_seats[0]
    async with nothing_changes(ctx, [scene.show_id]):
        for path, body in [(f"/v1/shows/{scene.show_id}/holds", {"seats": [seat], "customer": "dan@example.org"}),
                           (f"/v1/shows/{scene.show_id}/waitlist", {"count": 1, "customer": "dan@example.org"})]:
            for key in ["k-1", "x" * 15, "a b" * 10, "a" * 201]:
                answer = await client.post(path, json={**body, "extra": 1}, headers={"Idempotency-Key": key})
                refused(answer, 422, "invalid_request", "Idempotency-Key", "extra")
