"""A real Redis Cluster of the tests' own: six redis-server processes on loopback ports
(three primaries, three replicas), created with `redis-cli --cluster create`, in temporary
directories that go away with it. Tests kill its nodes to prove failover."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from redis.crc import key_slot
from sqlalchemy import text

from boxoffice.engine.db import db_time
from boxoffice.engine.wiring import Engine
from tests.support.shows import ShowRef

PRIMARIES = 3
REPLICAS_PER_PRIMARY = 1
# Short enough that a failover takes a few seconds, long enough not to flap on a busy CI box.
NODE_TIMEOUT_MS = 2000


@dataclass
class ClusterNode:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> None:
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(self.directory / "nodes.conf"),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--notify-keyspace-events", "",
             # A lost shard must not stop the others from answering.
             "--cluster-require-full-coverage", "no",
             # The fault tests stall a node with DEBUG SLEEP (loopback clients only).
             "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2, decode_responses=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)


@dataclass
class LocalCluster:
    nodes: list[ClusterNode]
    root: Path
    killed: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """One node's URL: the cluster client discovers the others from it."""
        live = [n for n in self.nodes if n.alive()]
        return f"redis://127.0.0.1:{live[0].port}/0"

    @classmethod
    def start(cls, timeout_s: float = 30.0) -> LocalCluster:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed for the cluster tests (see README, Tests)")
        root = Path(tempfile.mkdtemp(prefix="boxoffice-cluster-"))
        nodes = []
        for port in _free_cluster_ports(PRIMARIES * (1 + REPLICAS_PER_PRIMARY)):
            directory = root / str(port)
            directory.mkdir()
            nodes.append(ClusterNode(port, directory))
        cluster = cls(nodes, root)
        try:
            for node in nodes:
                node.start(binary)
            for node in nodes:
                _wait_for_ping(node, timeout_s)
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
                 "--cluster-replicas", str(REPLICAS_PER_PRIMARY), "--cluster-yes"],
                check=True, capture_output=True, timeout=timeout_s,
            )
            cluster.wait_healthy(timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        """Until every live node says cluster_state:ok, three primaries serve all slots and
        every replica is in sync with its primary."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._healthy():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Redis Cluster did not become healthy in {timeout_s}s")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        try:
            for node in self.nodes:
                if not node.alive():
                    continue
                with node.client() as client:
                    info = client.cluster("info")
                    if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != 16384:
                        return False
            # A replica that never synced would refuse to take over (its data is "too old").
            for node in self.nodes:
                if node.alive():
                    with node.client() as client:
                        info = client.info("replication")
                        if info["role"] == "slave" and info.get("master_link_status") != "up":
                            return False
            return len(self.primaries()) == PRIMARIES
        except redis.RedisError:
            return False

    def primaries(self) -> list[ClusterNode]:
        """The live nodes that currently serve slots as primaries."""
        for node in self.nodes:
            if not node.alive():
                continue
            with node.client() as client:
                slots = client.execute_command("CLUSTER", "SLOTS")
            ports = {int(entry[2][1]) for entry in slots}
            return [n for n in self.nodes if n.port in ports and n.alive()]
        return []

    def node_for_slot(self, slot: int) -> ClusterNode:
        for node in self.nodes:
            if not node.alive():
                continue
            with node.client() as client:
                for entry in client.execute_command("CLUSTER", "SLOTS"):
                    if int(entry[0]) <= slot <= int(entry[1]):
                        port = int(entry[2][1])
                        return next(n for n in self.nodes if n.port == port)
        raise RuntimeError(f"no live node serves slot {slot}")

    def kill(self, node: ClusterNode) -> None:
        node.kill()
        self.killed.append(node)

    def wait_failover(self, slot: int, dead: ClusterNode, timeout_s: float = 30.0) -> ClusterNode:
        """Until a live replica has taken over `slot` from the dead primary."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                node = self.node_for_slot(slot)
                if node is not dead and node.alive():
                    with node.client() as client:
                        if client.cluster("info").get("cluster_state") == "ok":
                            return node
            except (redis.RedisError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over slot {slot} in {timeout_s}s")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)


async def shows_on_every_shard(context: Engine, cluster: LocalCluster, per_shard: int = 1,
                               max_seats: int = 5000) -> list[ShowRef]:
    """Future shows whose hash tags land on each of the primaries, `per_shard` of each."""
    async with context.sql.connect() as conn:
        rows = list(await conn.execute(text(
            "SELECT s.id, s.hall_id FROM shows s JOIN halls h ON h.id = s.hall_id"
            " WHERE s.starts_at > :soon AND h.seat_count <= :hi ORDER BY s.id"),
            {"soon": db_time(conn, datetime.now(UTC) + timedelta(hours=2)), "hi": max_seats}))
    by_port: dict[int, list[ShowRef]] = {}
    for show_id, hall_id in rows:
        port = cluster.node_for_slot(key_slot(str(show_id).encode())).port
        if len(by_port.setdefault(port, [])) < per_shard:
            plan = await context.catalog.hall_plan(int(hall_id))
            by_port[port].append(ShowRef(int(show_id), int(hall_id), [s.id for s in plan.seats]))
    assert len(by_port) == 3 and all(len(v) == per_shard for v in by_port.values()), by_port
    return [show for shows in by_port.values() for show in shows]



def _wait_for_ping(node: ClusterNode, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with node.client() as client:
                if client.ping():
                    return
        except redis.RedisError:
            pass
        if not node.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"cluster node on port {node.port} did not start")
        time.sleep(0.05)


def _free_cluster_ports(count: int) -> list[int]:
    """Ports free for a node and for its cluster bus (port + 10000, so below 55536)."""
    ports: list[int] = []
    offset = (time.monotonic_ns() // 1000) % 35000
    while len(ports) < count:
        offset = (offset + 7) % 35000
        candidate = 20000 + offset
        if all(_port_free(p) for p in (candidate, candidate + 10000)) and candidate not in ports:
            ports.append(candidate)
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
