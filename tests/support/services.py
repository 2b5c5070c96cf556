"""Real services for the tests: a throwaway PostgreSQL database and a throwaway
redis-server per test session, so tests never touch anything else on the machine and
leave nothing behind. A missing service fails loudly: these tests never skip."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import redis

ADMIN_DSN = os.environ.get("BOXOFFICE_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Callable[[], str], timeout_s: float) -> None:
    """Waits until a service subprocess answers /healthz with 200; fails with its log when it
    exits first or does not answer in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited at start: {log()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not answer /healthz within {timeout_s} s: {log()[-2000:]}")
        time.sleep(0.05)  # polling a process start


async def await_healthy(process: subprocess.Popen[bytes], url: str, log: Callable[[], str],
                        timeout_s: float) -> None:
    """wait_healthy for tests already inside an event loop."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited at start: {log()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not answer /healthz within {timeout_s} s: {log()[-2000:]}")
            await asyncio.sleep(0.05)  # polling a process start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def temporary_database() -> Iterator[str]:
    """Creates an empty database of its own; yields its URL; drops it afterwards."""
    name = f"boxoffice_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {ADMIN_DSN}: the tests need it (see README, Tests)"
        ) from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class RedisServer:
    """A redis-server of the test's own on a free loopback port, keeping nothing on disk."""

    port: int
    process: subprocess.Popen[bytes]
    directory: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, port: int | None = None, *extra: str) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: the tests need it (see README, Tests)")
        port = port or free_port()
        directory = tempfile.mkdtemp(prefix="boxoffice-redis-")
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", directory, "--notify-keyspace-events", "", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        server = cls(port, process, directory)
        server.wait_ready()
        return server

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart_empty(self) -> None:
        """Kill -9 and start again on the same port with no data, as after a crash."""
        self.kill()
        restarted = RedisServer.start(self.port)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.process, self.directory = restarted.process, restarted.directory

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
