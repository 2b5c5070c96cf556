"""Service worker processes for the scale-out and fault tests: the real app under uvicorn
(`boxoffice serve`, one or several workers) in subprocesses that share Redis and
PostgreSQL, each on a port of its own as separate machines would be. Tests SIGKILL them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from engine.settings import Settings
from tests.support.services import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent.parent


def environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The process environment that gives a worker these settings (12-factor)."""
    assert settings.redis_url and settings.database_url, "workers run on the real servers"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BOXOFFICE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({
        "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
        "BOXOFFICE_REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
        "BOXOFFICE_KEY_PREFIX": settings.key_prefix, "BOXOFFICE_HOLD_TTL_S": str(settings.hold_ttl_s),
        "BOXOFFICE_CONFIRM_PIN_S": str(settings.confirm_pin_s),
        "BOXOFFICE_CONFIRM_GRACE_S": str(settings.confirm_grace_s),
        "BOXOFFICE_SWEEP_INTERVAL_S": str(settings.sweep_interval_s),
        "BOXOFFICE_RECONCILE_INTERVAL_S": str(settings.reconcile_interval_s),
        "BOXOFFICE_BROWSE_CACHE_S": str(settings.browse_cache_s),
        "BOXOFFICE_RATE_HOLDS_PER_MIN": str(settings.rate_limit_holds_per_min),
        "BOXOFFICE_RATE_IP_PER_MIN": str(settings.rate_limit_ip_per_min),
        "BOXOFFICE_LOG_LEVEL": "warning",
    })
    env.update(overrides)
    return env


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL, every process of it (a multi-worker server is a process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()


def start(settings: Settings, log_dir: Path, workers: int = 1, **overrides: str) -> Worker:
    """`boxoffice serve` on a free port; returns at once (see wait_ready)."""
    port = free_port()
    log_path = log_dir / f"worker-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            cwd=ROOT, env=environment(settings, **overrides), stdout=log, stderr=log, start_new_session=True,
        )
    return Worker(process, f"http://127.0.0.1:{port}", log_path)


def wait_ready(*workers: Worker, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        wait_healthy(worker.process, worker.url, worker.log, max(0.0, deadline - time.monotonic()))
