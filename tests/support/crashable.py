"""A real service process that a test may see die: the app under uvicorn in a subprocess on
the test session's own Redis and PostgreSQL and the test's key prefix, with any
BOXOFFICE_* setting, BOXOFFICE_FAULT_POINT included (the process SIGKILLs itself there)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.settings import Settings
from tests.support.services import await_healthy, free_port

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class ServiceProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def wait_killed(self, timeout_s: float = 10.0) -> None:
        """Waits for the process to die by SIGKILL (its fault point), and fails otherwise."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            assert time.monotonic() < deadline, "the service did not die at its fault point"
            await asyncio.sleep(0.02)
        assert self.process.returncode == -signal.SIGKILL, (self.process.returncode, self.log())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Services:
    """Starts service processes for one test and stops whatever is still alive at its end."""

    settings: Settings
    log_dir: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def environment(self, overrides: dict[str, str]) -> dict[str, str]:
        s = self.settings
        assert s.redis_url and s.database_url
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOXOFFICE_")}
        env.update({
            "REDIS_URL": s.redis_url, "DATABASE_URL": s.database_url, "BOXOFFICE_KEY_PREFIX": s.key_prefix,
            "BOXOFFICE_HOLD_TTL_S": str(s.hold_ttl_s), "BOXOFFICE_CONFIRM_GRACE_S": "1",
            "BOXOFFICE_RECONCILE_INTERVAL_S": "0.2", "BOXOFFICE_RATE_HOLDS_PER_MIN": "0",
            "BOXOFFICE_RATE_IP_PER_MIN": "0", "BOXOFFICE_BROWSE_CACHE_S": "0",
        })
        env.update(overrides)
        return env

    def spawn(self, overrides: dict[str, str]) -> ServiceProcess:
        port = free_port()
        log_path = self.log_dir / f"service-{len(self.started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning", "--no-access-log"],
                cwd=ROOT, env=self.environment(overrides), stdout=subprocess.DEVNULL, stderr=log,
            )
        service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path)
        self.started.append(service)
        return service

    async def start(self, timeout_s: float = 20.0, **overrides: str) -> ServiceProcess:
        """A new service process, once it answers /healthz."""
        service = self.spawn(overrides)
        await await_healthy(service.process, service.url, service.log, timeout_s)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.stop()
