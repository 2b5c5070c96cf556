"""Starts apps under uvicorn for the benches, every one the same way (same flags, same event
loop and HTTP parser), and stops them again."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def uvicorn_app(app: str, env: dict[str, str], workers: int = 1, ready_path: str = "/healthz",
                log_path: Path | None = None) -> Iterator[int]:
    """Runs `uvicorn <app> --factory` on a free loopback port; yields the port once it answers."""
    port = free_port()
    log = log_path.open("ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--no-access-log", "--log-level", "warning",
         # What uvicorn[standard] picks by itself, named so a missing one fails loudly.
         "--loop", "uvloop", "--http", "httptools",
         # As behind a load balancer on this host: the client's address is taken from its
         # X-Forwarded-For (bench/loadgen.py presents one per simulated customer), so the
         # per-address limit sees many clients, not the one load generator.
         "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"],
        cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status_code == 200:
                    break
            if process.poll() is not None:
                raise RuntimeError(f"{app} exited at start (code {process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not answer on {ready_path} within 60 s")
            time.sleep(0.2)
        if workers > 1:
            time.sleep(2.0)  # every worker up, not just the first
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        if log_path:
            log.close()  # type: ignore[union-attr]
