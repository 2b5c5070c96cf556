"""What the browser tests run: the service as a user starts it (`boxoffice serve`), either on
the test session's real Redis and PostgreSQL under a key prefix of its own or embedded
(fakeredis + a SQLite file of its own), and Debian's headless Chromium to browse it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Response

from boxoffice.engine.settings import Settings
from tests.support.live import serve
from tests.support.services import ROOT

# Logs of the services and screenshots of the page, for whoever looks into a failed test.
OUTPUT = ROOT / "test-output"
SERVICE_KINDS = ("real", "embedded")
# Holds must outlast a test; the page's countdown starts from this.
HOLD_TTL_S = 300
# A service whose holds last seconds, to watch one expire (the setting any test shortens).
SHORT_HOLD_TTL_S = 4
STARTUP_TIMEOUT_S = 60
SERVE = ["boxoffice.engine.cli", "serve"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The core of the policy the service sends with the page (docs/API.md): the page must run
# under it, so every test checks the page came with it.
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'"


@contextlib.contextmanager
def page_service(kind: str, hold_ttl_s: int, name: str, *, redis_url: str, database_url: str,
                 work_dir: Path) -> Iterator[str]:
    """`boxoffice serve` on a free port, `kind` "real" or "embedded"; yields its URL once it
    answers. Leaves nothing behind: its keys are dropped, its SQLite file is in work_dir."""
    if kind == "real":
        settings = Settings(redis_url=redis_url, database_url=database_url, hold_ttl_s=hold_ttl_s,
                            key_prefix=f"browser{uuid.uuid4().hex[:8]}")
    else:
        settings = Settings(redis_url=None, database_url=None, hold_ttl_s=hold_ttl_s,
                            embedded_db_path=str(work_dir / f"{name}.sqlite3"))
    OUTPUT.mkdir(exist_ok=True)
    with serve(settings, STARTUP_TIMEOUT_S, SERVE, OUTPUT / f"{name}-{kind}.log") as server:
        yield server.url


def csp_gaps(response: Response) -> list[str]:
    """The directives of STRICT_CSP that the page's answer lacks."""
    sent = {d.strip() for d in (response.header_value("content-security-policy") or "").split(";")}
    return [d.strip() for d in STRICT_CSP.split(";") if d.strip() not in sent]
