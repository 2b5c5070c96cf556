"""The web page: every answer carries the security headers (a CSP that forbids
inline script, X-Content-Type-Options, Referrer-Policy), the page itself runs under that
policy, CORS stays closed unless BOXOFFICE_CORS_ORIGINS opens it to named origins, and
the streams and unknown methods answer bad requests in the contract's error format."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from boxoffice.api.app import create_app
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine
from tests.support import rawasgi
from tests.support.services import ROOT
from tests.support.shows import ShowRef

STATIC = ROOT / "boxoffice" / "api" / "static"
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


def csp_directives(value: str) -> dict[str, list[str]]:
    directives = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def assert_secure_headers(headers: Any, what: str) -> None:
    csp = headers.get("content-security-policy")
    assert csp, f"{what}: no Content-Security-Policy"
    policy = csp_directives(csp)
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts is not None, f"{what}: scripts are not restricted"
    forbidden = {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:", "blob:"}
    assert not forbidden & set(scripts), f"{what}: script-src allows {forbidden & set(scripts)}"
    assert policy.get("object-src") == ["'none'"] and policy.get("frame-ancestors") == ["'none'"], what
    assert policy.get("base-uri") == ["'none'"], what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") in SAFE_REFERRER_POLICIES, what


async def test_every_kind_of_answer_carries_the_security_headers(client: httpx.AsyncClient, ctx: Engine,
                                                                  show: ShowRef) -> None:
    url = f"/v1/shows/{show.show_id}"
    held = await client.post(f"{url}/holds", json={"seats": show.seat_ids[:1], "customer": "ana@example.org"})
    assert held.status_code == 201
    hold_id = held.json()["hold_id"]
    answers = {
        "the page": await client.get("/"),
        "a static file": await client.get("/static/app.js"),
        "a missing static file": await client.get("/static/nope.js"),
        "JSON 200": await client.get("/v1/cities"),
        "201": held,
        "204": await client.delete(f"/v1/holds/{hold_id}"),
        "409": await client.delete(f"/v1/holds/{hold_id}"),
        "404 route": await client.get("/nope"),
        "404 resource": await client.get("/v1/shows/999999999"),
        "405": await client.put("/v1/cities"),
        "422": await client.post(f"{url}/holds", content=b"{"),
        "413": await client.post(f"{url}/holds", content=b"x" * 20_000, headers={"content-type": "application/json"}),
        "HEAD": await client.head("/v1/cities"),
        "OPTIONS": await client.options(f"{url}/holds"),
        "metrics": await client.get("/metrics"),
        "openapi": await client.get("/openapi.json"),
        "healthz": await client.get("/healthz"),
    }
    for what, answer in answers.items():
        assert_secure_headers(answer.headers, what)
    stream = await rawasgi.call(create_app(ctx.settings, engine=ctx), "GET", f"{url}/seats/events")
    assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert stream.body.startswith(b"data: {")
    assert_secure_headers(stream.headers, "an event stream")


async def test_an_unexpected_error_is_a_plain_500_with_the_headers(ctx: Engine) -> None:
    app = create_app(ctx.settings, engine=ctx)

    async def broken(request: Request) -> None:
        raise RuntimeError("secret internals: /srv/boxoffice/engine.py line 12")

    app.add_route("/broken", broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        answer = await http.get("/broken")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal_error",
                             "message": "something went wrong on our side; nothing was changed by it"}
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert_secure_headers(answer.headers, "a 500")


class PageAudit(HTMLParser):
    """Everything in the page that a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"inline handler {name} on <{tag}>")
            if name == "style":
                self.problems.append(f"inline style on <{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.problems.append(f"javascript: URL on <{tag}>")
            if name in ("src", "href") and value and re.match(r"^(https?:)?//", value):
                self.problems.append(f"another origin's {name} on <{tag}>: {value}")
        if tag == "script":
            self.in_script = True
            if not names.get("src"):
                self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("inline <style>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.problems.append("a <script> with a body")


def test_the_page_runs_under_the_policy() -> None:
    audit = PageAudit()
    audit.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert not audit.problems, audit.problems
    for script in STATIC.glob("*.js"):
        code = script.read_text(encoding="utf-8")
        for pattern in (r"\beval\s*\(", r"new\s+Function\s*\(", r"setTimeout\s*\(\s*['\"`]",
                        r"setInterval\s*\(\s*['\"`]", r"\.innerHTML\s*=", r"\.outerHTML\s*=",
                        r"insertAdjacentHTML", r"document\.write"):
            assert not re.search(pattern, code), f"{script.name} uses {pattern}: blocked or unsafe under the CSP"


ORIGIN = "https://tickets.example"
EVIL = "https://evil.example"


def cors_client(ctx: Engine, origins: tuple[str, ...]) -> httpx.AsyncClient:
    app = create_app(ctx.settings.with_changes(cors_origins=origins), engine=ctx)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def preflight(origin: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, idempotency-key"}


async def test_cors_is_closed_unless_configured(ctx: Engine, show: ShowRef) -> None:
    async with cors_client(ctx, ()) as http:
        for origin in (EVIL, ORIGIN, "null"):
            answer = await http.get("/v1/cities", headers={"origin": origin})
            assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
            asked = await http.options(f"/v1/shows/{show.show_id}/holds", headers=preflight(origin))
            assert asked.status_code == 405 and asked.json()["error"] == "method_not_allowed"
            assert not any(k.startswith("access-control-") for k in asked.headers)


async def test_cors_opens_to_the_configured_origins_only(ctx: Engine, show: ShowRef) -> None:
    async with cors_client(ctx, (ORIGIN,)) as http:
        allowed = await http.get("/v1/cities", headers={"origin": ORIGIN})
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in allowed.headers["access-control-expose-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        ok = await http.options(f"/v1/shows/{show.show_id}/holds", headers=preflight(ORIGIN))
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in ok.headers["access-control-allow-methods"]
        assert "idempotency-key" in ok.headers["access-control-allow-headers"].lower()
        for origin in (EVIL, "null", ORIGIN + ".evil.example", "http://tickets.example"):
            refused = await http.get("/v1/cities", headers={"origin": origin})
            assert "access-control-allow-origin" not in refused.headers, origin
            asked = await http.options(f"/v1/shows/{show.show_id}/holds", headers=preflight(origin))
            assert asked.status_code == 400 and "access-control-allow-origin" not in asked.headers, origin
            assert_secure_headers(asked.headers, "a refused preflight")


def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("BOXOFFICE_CORS_ORIGINS", raising=False)
    assert Settings.from_env().cors_origins == ()
    monkeypatch.setenv("BOXOFFICE_CORS_ORIGINS", f" {ORIGIN}, https://b.example ,,")
    assert Settings.from_env().cors_origins == (ORIGIN, "https://b.example")


async def test_streams_refuse_bad_ids_in_the_error_format_before_streaming(client: httpx.AsyncClient) -> None:
    for path, status in [("/v1/shows/abc/seats/events", 422), ("/v1/shows/999999999/seats/events", 404),
                         ("/v1/waitlist/W1-guess/events", 404), ("/v1/waitlist/bad!id/events", 422)]:
        answer = await client.get(path)
        assert answer.status_code == status, (path, answer.status_code)
        assert answer.headers["content-type"] == "application/json" and answer.json()["error"]


async def test_unknown_methods_answer_405_naming_the_allowed_ones(client: httpx.AsyncClient) -> None:
    for method, path, allowed in [("PUT", "/v1/cities", {"GET", "HEAD"}), ("PATCH", "/v1/holds/x", {"GET", "HEAD",
                                  "DELETE"}), ("GET", "/v1/shows/1/holds", {"POST"}), ("TRACE", "/", {"GET", "HEAD"})]:
        answer = await client.request(method, path)
        assert answer.status_code == 405 and answer.json()["error"] == "method_not_allowed", (method, path)
        assert {m.strip() for m in answer.headers["allow"].split(",")} == allowed, answer.headers
