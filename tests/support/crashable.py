"""A real service process that a test may see die: the app under uvicorn in a subprocess on
the test session's own Redis and PostgreSQL and the test's key prefix, with any
BOXOFFICE_* setting, and FAULT_POINT: the step of a confirm (after_pin, after_intent,
after_charge, after_commit) or a cancel (after_cancel_intent, after_refund) where the
process SIGKILLs itself. The engine calls a checkpoint after each such step, which does
nothing in production; the app made here (create_app) hands it one that kills."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from starlette.applications import Starlette

from boxoffice.api import app as api_app
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import open_engine
from tests.support.services import ServiceProcess, service_environment, uvicorn_args

FAULT_POINT = "FAULT_POINT"

# A cut-off confirm is reconciled within a test's patience; no rate limit or browse cache
# stands between a test and what it checks.
CRASH_TEST_SETTINGS = {
    "BOXOFFICE_CONFIRM_GRACE_S": "1", "BOXOFFICE_RECONCILE_INTERVAL_S": "0.2", "BOXOFFICE_RATE_HOLDS_PER_MIN": "0",
    "BOXOFFICE_RATE_IP_PER_MIN": "0", "BOXOFFICE_BROWSE_CACHE_S": "0",
}


@dataclass
class Services:
    """Starts service processes for one test and stops whatever is still alive at its end."""

    settings: Settings
    log_dir: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def environment(self, overrides: dict[str, str]) -> dict[str, str]:
        return service_environment(self.settings, **{**CRASH_TEST_SETTINGS, **overrides})

    def spawn(self, overrides: dict[str, str]) -> ServiceProcess:
        log_path = self.log_dir / f"service-{len(self.started)}.log"
        service = ServiceProcess.start(self.environment(overrides), log_path,
                                       module_args=uvicorn_args("tests.support.crashable:create_app"))
        self.started.append(service)
        return service

    async def start(self, timeout_s: float = 20.0, **overrides: str) -> ServiceProcess:
        """A new service process, once it answers /healthz."""
        service = self.spawn(overrides)
        await service.await_healthy(timeout_s)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()


def kill_at(point: str | None, step: str) -> None:
    """The engine's checkpoint in a crashable service: SIGKILL (no clean-up) at `point`."""
    if step == point:
        os.kill(os.getpid(), signal.SIGKILL)


def create_app() -> Starlette:
    """The service's app (uvicorn factory), its engine dying at $FAULT_POINT when set."""
    checkpoint = partial(kill_at, os.environ.get(FAULT_POINT) or None)
    return api_app.create_app(Settings.from_env(), opener=partial(open_engine, checkpoint=checkpoint))
