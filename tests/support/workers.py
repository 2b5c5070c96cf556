"""Service worker processes for the scale-out and fault tests: the real app under uvicorn
(`boxoffice serve`, one or several workers) in subprocesses that share Redis and
PostgreSQL, each on a port of its own as separate machines would be. Tests SIGKILL them."""

from __future__ import annotations

import time
from pathlib import Path

from boxoffice.engine.settings import Settings
from tests.support.services import ServiceProcess, free_port, service_environment


def environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The process environment that gives a worker these settings (12-factor)."""
    return service_environment(settings, "redis_cluster", "confirm_pin_s", "confirm_grace_s", "sweep_interval_s",
                               "reconcile_interval_s", **{"BOXOFFICE_LOG_LEVEL": "warning", **overrides})


class Worker(ServiceProcess):
    """`boxoffice serve` in a process group of its own: kill() and stop() reach every worker."""

    def stop(self, timeout_s: float = 15.0) -> None:
        super().stop(timeout_s)  # several workers take longer to shut down


def start(settings: Settings, log_dir: Path, workers: int = 1, **overrides: str) -> Worker:
    """`boxoffice serve` on a free port; returns at once (see wait_ready)."""
    port = free_port()
    return Worker.start(environment(settings, **overrides), log_dir / f"worker-{port}.log", port=port,
                        module_args=["boxoffice.engine.cli", "serve", "--workers", str(workers)], log_stdout=True,
                        process_group=True)


def wait_ready(*workers: Worker, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        worker.wait_healthy(max(0.0, deadline - time.monotonic()))
