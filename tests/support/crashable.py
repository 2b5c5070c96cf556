"""A real service process that a test may see die: the app under uvicorn in a subprocess on
the test session's own Redis and PostgreSQL and the test's key prefix, with any
BOXOFFICE_* setting, BOXOFFICE_FAULT_POINT included (the process SIGKILLs itself there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from boxoffice.engine.settings import Settings
from tests.support.services import ServiceProcess, service_environment

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
        service = ServiceProcess.start(self.environment(overrides), log_path)
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
