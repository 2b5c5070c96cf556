"""Redis Cluster support (BOXOFFICE_REDIS_CLUSTER=1): the command client and pub/sub.

- The show scripts are auto-pipelined per node (engine/redis/cluster_pipeline.py); every
  other command goes through redis-py's cluster client, with one change: when every connection
  to a node is lent out, a command waits for one (like the blocking pool of the
  single-server client) instead of failing at once with MaxConnectionsError. A spike on
  one show sends every request to the same node; queueing briefly is the right answer,
  a 503 is not.
- Pub/sub: the scripts use classic PUBLISH, which a cluster broadcasts to every node, so
  one subscription on any node hears every show. Each new subscription takes the next
  node the cluster client knows, so a subscriber whose node died moves to a live one."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.connection import parse_url
from redis.exceptions import MaxConnectionsError

# How long a command may wait for a free connection before it fails (then: 503).
LEND_TIMEOUT_S = 5.0
# True inside a command or pipeline that holds its place already.
_LENT: contextvars.ContextVar[bool] = contextvars.ContextVar("boxoffice_redis_lent", default=False)


class QueueingPipeline(ClusterPipeline):
    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self.cluster_client.lend():
            return await super().execute(*args, **kwargs)


class QueueingRedisCluster(RedisCluster):
    """A cluster client whose commands queue for a connection. At most `max_connections`
    commands (or pipelines) are in flight per process, and each uses at most one
    connection per node, so no node's pool can run dry."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = asyncio.Semaphore(int(kwargs.get("max_connections") or 2**31))

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[None]:
        if _LENT.get():
            # Already counted: a pipeline re-sending a redirected command (MOVED after a
            # failover) must not wait for itself.
            yield
            return
        try:
            async with asyncio.timeout(LEND_TIMEOUT_S):
                await self._in_flight.acquire()
        except TimeoutError:
            raise MaxConnectionsError(f"no free Redis connection within {LEND_TIMEOUT_S} s") from None
        token = _LENT.set(True)
        try:
            yield
        finally:
            _LENT.reset(token)
            self._in_flight.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.lend():
            return await super().execute_command(*args, **kwargs)

    async def _determine_slot(self, command: str, *args: Any) -> int:
        # FCALL lays out its keys as EVALSHA does (name, key count, keys...); redis-py
        # would ask a node for them (COMMAND GETKEYS) on every call, a round trip more.
        if command.upper() == "FCALL" and len(args) > 2 and int(args[1]) > 0:
            command = "EVALSHA"
        return await super()._determine_slot(command, *args)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused there, with its message
        return QueueingPipeline(self, transaction)


class ClusterPubSub:
    """Stands in for a Redis client where only `pubsub()` is used (engine/redis/pubsub.py)."""

    def __init__(self, cluster: RedisCluster, url: str, connect_timeout_s: float,
                 retry: Callable[[], Any]) -> None:
        self.cluster = cluster
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        # No retries inside the client: a subscriber whose node died moves on to the next.
        self.retry = retry
        self._turn = 0
        self._client: Redis | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.node: tuple[str, int] | None = None  # where the current subscription lives
        # Every node met, starting with REDIS_URL's.
        options = parse_url(url)
        self._seen: set[tuple[str, int]] = {(options.get("host", "localhost"), int(options.get("port", 6379)))}

    def _candidates(self) -> list[tuple[str, int]]:
        """The nodes the cluster client knows now; when it knows none (before its first
        command, or while it rebuilds its map during a failover), every node seen so far."""
        current = sorted((node.host, int(node.port)) for node in self.cluster.get_nodes())
        self._seen.update(current)
        if current:
            return current
        return sorted(self._seen)

    def _next_client(self) -> Redis:
        candidates = self._candidates()
        self.node = candidates[self._turn % len(candidates)]
        self._turn += 1
        return Redis(host=self.node[0], port=self.node[1], decode_responses=True,
                     socket_connect_timeout=self.connect_timeout_s, retry=self.retry())

    def pubsub(self, **kwargs: Any) -> Any:
        previous, self._client = self._client, self._next_client()
        if previous is not None:
            # Closed in the background: the caller gave up on it already.
            task = asyncio.get_running_loop().create_task(previous.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return self._client.pubsub(**kwargs)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def make_cluster_clients(
    url: str, pool_size: int, retry: Any, pubsub_retry: Callable[[], Any], connect_timeout_s: float,
    socket_timeout_s: float,
) -> tuple[QueueingRedisCluster, ClusterPubSub]:
    """REDIS_URL names any one node; the client discovers the others and follows MOVED
    redirections and failovers by itself."""
    cluster = QueueingRedisCluster.from_url(url, decode_responses=True, max_connections=pool_size, retry=retry,
                                            socket_connect_timeout=connect_timeout_s,
                                            socket_timeout=socket_timeout_s)
    return cluster, ClusterPubSub(cluster, url, connect_timeout_s, pubsub_retry)
