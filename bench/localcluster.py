"""Throwaway Redis for the benches, so a run's CPU and commandstats are its own:
- `local_cluster`: a Redis Cluster of `primaries` redis-server processes on free loopback
  ports (no replicas: a bench measures the service, not failover), created with
  `redis-cli --cluster create`, in a temporary directory that goes away with it;
- `local_server`: one redis-server on a free loopback port, keeping nothing on disk."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis


def _free_port() -> int:
    """A port free for a node and for its cluster bus (port + 10000)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55000:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@contextlib.contextmanager
def local_cluster(primaries: int = 3, timeout_s: float = 30.0) -> Iterator[list[int]]:
    """Yields the nodes' ports once every slot is served; REDIS_URL may name any of them."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        raise RuntimeError("redis-server and redis-cli are needed for a local cluster")
    root = Path(tempfile.mkdtemp(prefix="boxoffice-bench-cluster-"))
    ports = [_free_port() for _ in range(primaries)]
    processes = []
    try:
        for port in ports:
            directory = root / str(port)
            directory.mkdir()
            processes.append(subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(directory / "nodes.conf"), "--save", "", "--appendonly", "no",
                 "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout_s
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).ping(), deadline)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=timeout_s)
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).cluster("info").get("cluster_state") == "ok", deadline)
        yield ports
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def local_server(timeout_s: float = 10.0) -> Iterator[int]:
    """Yields the port of a redis-server of its own once it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is needed for a local Redis")
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: redis.Redis(port=port).ping(), time.monotonic() + timeout_s)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _wait(check: object, deadline: float) -> None:
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():  # type: ignore[operator]
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the local Redis did not come up in time")
        time.sleep(0.1)
