"""The service as a real HTTP server: `boxoffice`'s app under uvicorn in a subprocess,
on the test session's own Redis and PostgreSQL, with a key prefix of its own. For tests
that need the real HTTP stack (chunked bodies, schemathesis over the wire)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from boxoffice.engine.settings import Settings
from tests.support.services import ServiceProcess, running_service, service_environment


@dataclass(frozen=True)
class LiveServer:
    url: str
    settings: Settings
    service: ServiceProcess

    def log(self) -> str:
        """What the server wrote to stderr so far (warnings, tracebacks)."""
        return self.service.log()


def environment(settings: Settings) -> dict[str, str]:
    return service_environment(settings, "max_body_bytes", "cors_origins")


@contextlib.contextmanager
def serve(settings: Settings, timeout_s: float = 20.0, module_args: Sequence[str] | None = None,
          log_path: Path | None = None) -> Iterator[LiveServer]:
    """The app under uvicorn, or under `python -m <module_args>` (another server or options),
    yielded once it answers /healthz (its Context is open: embedded, its SQLite file migrated
    and seeded). Its log is kept at log_path when given."""
    try:
        with running_service(environment(settings), log_path, timeout_s=timeout_s,
                             module_args=module_args) as service:
            yield LiveServer(service.url, settings, service)
    finally:
        drop_keys(settings)


def drop_keys(settings: Settings) -> None:
    """Leaves the session's Redis as the server found it: its prefix was its own (embedded,
    the server's Redis ended with it)."""
    import redis

    if settings.redis_url is None:
        return
    with redis.Redis.from_url(settings.redis_url) as client:
        keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i:i + 500])
