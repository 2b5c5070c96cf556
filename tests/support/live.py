"""The service as a real HTTP server: `boxoffice`'s app under uvicorn in a subprocess,
on the test session's own Redis and PostgreSQL, with a key prefix of its own. For tests
that need the real HTTP stack (chunked bodies, schemathesis over the wire)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from engine.settings import Settings
from tests.support.services import free_port, wait_healthy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    log_path: str

    def log(self) -> str:
        """What the server wrote to stderr so far (warnings, tracebacks)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()


def environment(settings: Settings) -> dict[str, str]:
    assert settings.redis_url and settings.database_url, "a live server runs on the real servers"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
    env.update({
        "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
        "BOXOFFICE_KEY_PREFIX": settings.key_prefix, "BOXOFFICE_HOLD_TTL_S": str(settings.hold_ttl_s),
        "BOXOFFICE_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "BOXOFFICE_RATE_HOLDS_PER_MIN": str(settings.rate_limit_holds_per_min),
        "BOXOFFICE_RATE_IP_PER_MIN": str(settings.rate_limit_ip_per_min),
        "BOXOFFICE_CORS_ORIGINS": ",".join(settings.cors_origins),
        "BOXOFFICE_BROWSE_CACHE_S": str(settings.browse_cache_s),
    })
    return env


@contextlib.contextmanager
def serve(settings: Settings, timeout_s: float = 20.0) -> Iterator[LiveServer]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="boxoffice-live-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=environment(settings), stdout=subprocess.DEVNULL, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def log_text() -> str:
            with open(log.name, encoding="utf-8", errors="replace") as text:
                return text.read()

        wait_healthy(process, url, log_text, timeout_s)
        yield LiveServer(url, settings, log.name)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        os.unlink(log.name)
        drop_keys(settings)


def drop_keys(settings: Settings) -> None:
    """Leaves the session's Redis as the server found it: its prefix was its own."""
    import redis

    assert settings.redis_url is not None
    with redis.Redis.from_url(settings.redis_url) as client:
        keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
