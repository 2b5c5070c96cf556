"""The Redis a worker sweep (bench/scaling.py) runs against, started for the run so that its
CPU and commandstats are the run's alone: one redis-server, or a local Redis Cluster of
`primaries` primaries (bench/localcluster.py). It says how the service and the engine reach
it, which node serves a show, and how many script calls each node has served."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from redis.crc import key_slot

from bench import cpubudget, procstat
from bench.localcluster import local_cluster, local_server
from boxoffice.engine.settings import Settings


@dataclass(frozen=True)
class SweepRedis:
    ports: list[int]  # every node: the primaries of a cluster, or the one server
    cluster: bool
    slots: list[tuple[int, int, int]]  # (first slot, last slot, port) of a cluster; empty for one server

    @property
    def url(self) -> str:
        """One node's URL: a cluster client finds the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def label(self) -> str:
        return f"a local Redis Cluster of {len(self.ports)} primaries" if self.cluster else "one redis-server"

    def service_env(self) -> dict[str, str]:
        """The service's variables that point it here (cluster mode on a cluster)."""
        return {"REDIS_URL": self.url, **({"BOXOFFICE_REDIS_CLUSTER": "1"} if self.cluster else {})}

    def settings(self, database_url: str, key_prefix: str) -> Settings:
        """The engine's settings here: the service's defaults (abuse limits on)."""
        return Settings(redis_url=self.url, database_url=database_url, key_prefix=key_prefix,
                        redis_cluster=self.cluster)

    def node_of_show(self, show_id: int) -> int:
        """The port of the node that serves a show: every key of a show has its hash tag."""
        if not self.cluster:
            return self.ports[0]
        slot = key_slot(str(show_id).encode())
        return next(port for first, last, port in self.slots if first <= slot <= last)

    def fcalls(self) -> dict[int, int]:
        """port -> FCALLs the node has served so far (INFO commandstats): every show script."""
        counts = {}
        for port in self.ports:
            client = redis.Redis(port=port)
            try:
                counts[port] = int(client.info("commandstats").get("cmdstat_fcall", {}).get("calls", 0))
            finally:
                client.close()
        return counts


    def addresses_counted(self, key_prefix: str) -> int:
        """The client addresses the abuse limits counted under `key_prefix` within the last
        minute, over all shows (a counter per show and address, named as Keys.rate names
        them): how many clients the service told apart."""
        addresses = set()
        for port in self.ports:
            client = redis.Redis(port=port)
            try:
                for key in client.scan_iter(match=f"{key_prefix}:show:*:rate:a:*", count=1000):
                    addresses.add(key.split(b":rate:a:", 1)[1])
            finally:
                client.close()
        return len(addresses)


def cluster_slots(port: int) -> list[tuple[int, int, int]]:
    """(first slot, last slot, port of its primary) of every range of a cluster's slots."""
    client = redis.Redis(port=port)
    try:
        entries = client.execute_command("CLUSTER", "SLOTS")
        return [(int(entry[0]), int(entry[1]), int(entry[2][1])) for entry in entries]
    finally:
        client.close()


@contextlib.contextmanager
def _nodes(primaries: int) -> Iterator[list[int]]:
    if primaries:
        with local_cluster(primaries) as ports:
            yield ports
    else:
        with local_server() as port:
            yield [port]


@contextlib.contextmanager
def started(primaries: int, core_share: float) -> Iterator[SweepRedis]:
    """A cluster of `primaries` primaries (0: one redis-server), every node held to
    `core_share` of a core (0: not held)."""
    with _nodes(primaries) as ports:
        target = SweepRedis(ports, bool(primaries), cluster_slots(ports[0]) if primaries else [])
        if not core_share:
            yield target
            return
        pids = list(procstat.redis_server_pids(ports).values())
        for pid in pids:
            # The quota caps a node; a higher priority makes it get its quota on a busy
            # machine too (other processes would otherwise take part of it).
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, pid, -10)
        with cpubudget.core_share(pids, core_share):
            yield target
