"""Real services for the tests: a throwaway PostgreSQL database and a throwaway
redis-server per test session, so tests never touch anything else on the machine and
leave nothing behind, and the one launcher of the service itself (uvicorn in a subprocess).
A missing service fails loudly: these tests never skip."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
import psycopg
import redis

from boxoffice.engine import db
from boxoffice.engine.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
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


@contextlib.contextmanager
def migrated_database() -> Iterator[str]:
    """A temporary_database with the schema applied and no catalog (for tests and benches
    that make their own corner of it); yields its URL."""
    with temporary_database() as url:
        async def migrate() -> None:
            engine = db.create_engine(Settings(redis_url="redis://unused", database_url=url))
            await db.migrate(engine)
            await engine.dispose()

        asyncio.run(migrate())
        yield url


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
        try:
            server.wait_ready()
        except BaseException:
            server.stop()  # a server that never answered is not left running
            raise
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


# The variable each setting is read from (Settings.from_env), for the settings a test
# service is given; add a row to pass another.
SETTING_VARIABLES = {
    "redis_cluster": "BOXOFFICE_REDIS_CLUSTER",
    "key_prefix": "BOXOFFICE_KEY_PREFIX",
    "hold_ttl_s": "BOXOFFICE_HOLD_TTL_S",
    "confirm_pin_s": "BOXOFFICE_CONFIRM_PIN_S",
    "confirm_grace_s": "BOXOFFICE_CONFIRM_GRACE_S",
    "sweep_interval_s": "BOXOFFICE_SWEEP_INTERVAL_S",
    "reconcile_interval_s": "BOXOFFICE_RECONCILE_INTERVAL_S",
    "browse_cache_s": "BOXOFFICE_BROWSE_CACHE_S",
    "max_body_bytes": "BOXOFFICE_MAX_BODY_BYTES",
    "rate_limit_holds_per_min": "BOXOFFICE_RATE_HOLDS_PER_MIN",
    "rate_limit_ip_per_min": "BOXOFFICE_RATE_IP_PER_MIN",
    "cors_origins": "BOXOFFICE_CORS_ORIGINS",
    "embedded_db_path": "BOXOFFICE_EMBEDDED_DB",
}
ALWAYS_PASSED = ("key_prefix", "hold_ttl_s", "browse_cache_s", "rate_limit_holds_per_min", "rate_limit_ip_per_min")


def as_variable(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def service_environment(settings: Settings, *fields: str, **overrides: str) -> dict[str, str]:
    """The environment of a service process with these settings (12-factor): the test
    runner's without its own BOXOFFICE_* settings, server URLs or metrics directory; the
    servers' URLs (or, embedded, the SQLite file); ALWAYS_PASSED and `fields` of `settings`;
    then `overrides`. A setting not passed is the service's default, whatever `settings` says."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("BOXOFFICE_") and k not in ("PROMETHEUS_MULTIPROC_DIR", "REDIS_URL", "DATABASE_URL")}
    if settings.embedded:
        fields = (*fields, "embedded_db_path")
    else:
        assert settings.redis_url and settings.database_url
        env.update({"REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url})
    for name in (*ALWAYS_PASSED, *fields):
        env[SETTING_VARIABLES[name]] = as_variable(getattr(settings, name))
    env.update(overrides)
    return env


def uvicorn_args(app: str = "boxoffice.api.app:create_app", log_level: str | None = "warning") -> list[str]:
    """`python -m` arguments that serve `app` under uvicorn; the launcher adds host and port."""
    level = ["--log-level", log_level] if log_level else []
    return ["uvicorn", app, "--factory", *level, "--no-access-log"]


@dataclass
class ServiceProcess:
    """A service process a test started: its URL, its log, and its process, which leads a
    process group of its own when it has one (a server of several workers)."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    process_group: bool = False

    @classmethod
    def start(cls, env: Mapping[str, str], log_path: Path, *, module_args: Sequence[str] | None = None,
              port: int | None = None, log_stdout: bool = False, process_group: bool = False) -> Self:
        """`python -m <module_args> --host 127.0.0.1 --port <port>` (the app under uvicorn by default),
        its stderr (and stdout if log_stdout) in log_path. Returns at once: see wait_healthy."""
        port = port or free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *(module_args or uvicorn_args()), "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT, env=dict(env), stdout=log if log_stdout else subprocess.DEVNULL, stderr=log,
                start_new_session=process_group,
            )
        return cls(process, f"http://127.0.0.1:{port}", log_path, process_group)

    def log(self) -> str:
        """What the service wrote to its log so far (warnings, tracebacks)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_healthy(self, timeout_s: float) -> None:
        wait_healthy(self.process, self.url, self.log, timeout_s)

    async def await_healthy(self, timeout_s: float) -> None:
        await await_healthy(self.process, self.url, self.log, timeout_s)

    def send_signal(self, signum: int) -> None:
        """To every process of it: the workers of a group would outlive their leader."""
        if self.process_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no shutdown, as in a crash."""
        self.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, and SIGKILL when it has not ended within timeout_s."""
        if self.process.poll() is not None:
            return
        self.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    async def wait_killed(self, timeout_s: float = 10.0) -> None:
        """Waits for the process to die by SIGKILL (a fault point), and fails otherwise."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            assert time.monotonic() < deadline, "the service did not die at its fault point"
            await asyncio.sleep(0.02)
        assert self.process.returncode == -signal.SIGKILL, (self.process.returncode, self.log()[-3000:])


@contextlib.contextmanager
def running_service(env: Mapping[str, str], log_path: Path | None = None, *, timeout_s: float = 20.0,
                    ready: Callable[[ServiceProcess], None] | None = None,
                    module_args: Sequence[str] | None = None, log_stdout: bool = False) -> Iterator[ServiceProcess]:
    """A service started as ServiceProcess.start does, yielded once it answers /healthz (or once
    `ready` returns) and stopped on exit. Without a log_path it logs to a temporary file,
    deleted on exit; a log_path given is kept for whoever reads it after the tests."""
    temporary = log_path is None
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="boxoffice-service-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    try:
        service = ServiceProcess.start(env, log_path, module_args=module_args, log_stdout=log_stdout)
        try:
            if ready is None:
                service.wait_healthy(timeout_s)
            else:
                ready(service)
            yield service
        finally:
            service.stop()
    finally:
        if temporary:
            log_path.unlink(missing_ok=True)
