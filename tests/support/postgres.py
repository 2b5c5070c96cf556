"""A PostgreSQL server of one test's own (initdb in a temporary directory, a free loopback
port, trust authentication), for fault tests that crash and restart it: the machine's
shared PostgreSQL is never touched. PostgreSQL refuses to run as root, so as root the
server runs as the `postgres` system user (runuser)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.services import free_port

SERVER_USER = "postgres"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None and shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        candidate = Path(bindir) / name
        found = str(candidate) if candidate.exists() else None
    if found is None:
        raise RuntimeError(f"{name} (PostgreSQL server binaries) is needed for the fault tests (see README, Tests)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVER_USER, "--", *command]


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (PostgreSQL's backends start sessions of their own,
    so a process-group kill would miss them)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no shared memory; its reaper may be slow)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@dataclass
class ThrowawayPostgres:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    crashes: int = field(default=0)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> ThrowawayPostgres:
        root = Path(tempfile.mkdtemp(prefix="boxoffice-pg-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        server = cls(root, free_port())
        try:
            subprocess.run(
                _as_server_user([_binary("initdb"), "-D", str(server.data), "-A", "trust", "-U", SERVER_USER,
                                 "-E", "UTF8", "--no-sync"]),
                check=True, capture_output=True, timeout=60,
            )
            server.run()
        except BaseException:
            server.stop()
            raise
        return server

    def run(self, timeout_s: float = 30.0) -> None:
        """Starts the server (after a crash: crash recovery first) and waits until it answers."""
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            _as_server_user([_binary("postgres"), "-D", str(self.data), "-p", str(self.port),
                             "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
                             "-c", "fsync=off", "-c", "max_connections=100"]),
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=1):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the throwaway PostgreSQL did not start: {tail}") from None
                time.sleep(0.05)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def crash(self) -> None:
        """kill -9 the postmaster and every backend at once, as a power cut would."""
        postmaster = self._postmaster_pid()
        victims = ([postmaster, *_children(postmaster)] if postmaster else [])
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            self.process.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in victims):
            assert time.monotonic() < deadline, "PostgreSQL processes outlived SIGKILL"
            time.sleep(0.02)
        self.crashes += 1

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._postmaster_pid() is not None and self.process is not None and self.process.poll() is None:
            self.crash()
        shutil.rmtree(self.root, ignore_errors=True)
