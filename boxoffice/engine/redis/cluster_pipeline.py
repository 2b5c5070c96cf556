"""Auto-pipelining on a Redis Cluster: one auto-pipeline (engine/redis/autopipeline.py) per
node, each command sent to the node that owns the slot of its first key. Every show key
carries the show's hash tag, so a show script's keys are one slot; the commands of
concurrent requests for shows on the same node leave in one write, as on a single server.

Why: redis-py's cluster client checks a connection out, writes, waits and parses per
command; it cost a worker about 2.3 times the CPU per hold of the single-server pipeline.

The slot map is read with CLUSTER SLOTS from any node known (REDIS_URL's, the startup
nodes, every node of the last map) and read again, at most once per REFRESH_EVERY_S, after:
- MOVED (the slot changed owner: a migration or a failover): the command is sent again to
  the node the reply names, and the map is read again in the background;
- ASK (the slot is being migrated and the key is on the target already): the command is sent
  to the target once, right after ASKING, on the same connection;
- TRYAGAIN (a migrating slot whose keys are split between the two nodes): sent again after
  a short pause, for up to about a second;
- a lost connection or a node that does not answer: the commands in flight fail (the API
  answers 503) and the map is read again, so once a replica has taken over after a
  failover, the next command goes to it.

What is sent again, and why that is safe: only commands whose reply says the node did NOT
run them (MOVED, ASK, TRYAGAIN). A command whose answer was lost (a connection lost, a
timeout) may have run, and is never sent again here; its caller gets the error, and
repeating it is safe only because every mutating show script is idempotent by the id it
acts on (a hold id, an entry id, a confirm attempt): a second run answers the stored
outcome and changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from boxoffice.engine.redis.autopipeline import AutoPipeline

SLOTS = 16384
# Redirections one command may follow before it fails (a map that keeps moving).
MAX_REDIRECTS = 5
# TRYAGAIN: sent again after a pause, for up to about a second.
TRYAGAIN_PAUSE_S = 0.05
MAX_TRYAGAIN = 20
# Fewest seconds between two reads of the slot map (a dead node fails fast and often).
REFRESH_EVERY_S = 0.25
Address = tuple[str, int]


class SlotMap:
    """Which node serves each slot: a list of 16,384 addresses from CLUSTER SLOTS."""

    def __init__(self) -> None:
        self.owners: list[Address | None] = [None] * SLOTS

    @classmethod
    def parse(cls, reply: list[Any], asked: Address) -> SlotMap:
        """CLUSTER SLOTS: [[first, last, [host, port, id, ...], replicas...], ...]; an empty
        host means the node that was asked."""
        slot_map = cls()
        for entry in reply:
            first, last, primary = int(entry[0]), int(entry[1]), entry[2]
            host = primary[0] if isinstance(primary[0], str) else primary[0].decode()
            address = (host or asked[0], int(primary[1]))
            slot_map.owners[first:last + 1] = [address] * (last - first + 1)
        return slot_map

    def nodes(self) -> set[Address]:
        return {owner for owner in self.owners if owner is not None}


def redirect_of(error: ResponseError, asked: Address) -> tuple[str, Address] | None:
    """("MOVED" or "ASK", target) for a redirection reply, else None; an empty host (a node
    that does not know its own address) means the host of the node asked."""
    words = str(error).split()
    if len(words) == 3 and words[0] in ("MOVED", "ASK"):
        host, _, port = words[2].rpartition(":")
        return words[0], (host or asked[0], int(port))
    return None


def first_key(args: tuple[Any, ...]) -> str:
    """FCALL function numkeys key...: where a call goes is its first key's slot."""
    if len(args) > 3 and str(args[0]).upper() in ("FCALL", "FCALL_RO") and int(args[2]) > 0:
        return str(args[3])
    raise ValueError(f"the cluster pipeline routes FCALL with keys only, not {args[0]!r}")


class ClusterAutoPipeline:
    def __init__(self, startup: list[Address], username: str | None = None, password: str | None = None,
                 connect_timeout_s: float = 2.0, reply_timeout_s: float = 5.0,
                 on_new_owners: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.startup = list(dict.fromkeys(startup))
        self.username = username
        self.password = password
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        # Told when a map read finds slots with new owners (the redis-py client re-reads its own).
        self.on_new_owners = on_new_owners
        self.slot_map: SlotMap | None = None
        self.pipelines: dict[Address, AutoPipeline] = {}
        # Where MOVED said a slot went, until the next map read agrees or says otherwise.
        self.moved: dict[int, Address] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self._last_refresh = 0.0
        self._slots_of: dict[str, int] = {}
        self.redirects = 0
        self.tryagains = 0
        self.refreshes = 0

    @classmethod
    def for_client(cls, cluster: Any) -> ClusterAutoPipeline | None:
        """Built from a redis.asyncio.cluster.RedisCluster's own settings; None for TLS."""
        kwargs = cluster.get_connection_kwargs()
        connection_class = kwargs.get("connection_class")
        if kwargs.get("ssl") or (connection_class is not None and connection_class.__name__ != "Connection"):
            return None
        startup = [(node.host, int(node.port)) for node in cluster.startup_nodes]
        # The other commands still go through the cluster client: when the pipeline finds that
        # slots moved (a failover), the client reads its map again too, before its next command
        # would meet the dead node.
        return cls(startup, kwargs.get("username"), kwargs.get("password"),
                   float(kwargs.get("socket_connect_timeout") or 2.0), float(kwargs.get("socket_timeout") or 5.0),
                   on_new_owners=cluster.nodes_manager.initialize)

    # -- commands ------------------------------------------------------------------------

    async def execute(self, *args: Any) -> Any:
        """Runs one FCALL on the node that owns the slot of its first key (every key of the
        call is in that slot: our show keys share the show's hash tag)."""
        slot = self.slot_of(first_key(args))
        address = self.moved.get(slot) or (self.slot_map.owners[slot] if self.slot_map is not None else None)
        if address is None:
            address = await self.owner(slot)
        asking = False
        redirects = tries = 0
        while True:
            pipeline = self.pipeline(address)
            try:
                return await pipeline.execute(*args, asking=asking)
            except ResponseError as error:
                redirect = redirect_of(error, address)
                if redirect is None:
                    if str(error).startswith("CLUSTERDOWN"):
                        # The cluster cannot serve the slot now (a failover under way): Redis is down
                        # for this call, as for a lost connection; not run.
                        self.refresh_soon(failed=address)
                        raise RedisConnectionError(str(error)) from error
                    if not str(error).startswith("TRYAGAIN") or tries >= MAX_TRYAGAIN:
                        raise
                    # Not run (a slot mid-migration, its keys on both nodes): the same again.
                    tries += 1
                    self.tryagains += 1
                    await asyncio.sleep(TRYAGAIN_PAUSE_S)
                    continue
                if redirects >= MAX_REDIRECTS:
                    raise RedisConnectionError(f"slot {slot} was redirected more than {MAX_REDIRECTS} times") from error
                kind, address = redirect
                redirects += 1
                self.redirects += 1
                asking = kind == "ASK"
                if kind == "MOVED":
                    self.moved[slot] = address
                    self.refresh_soon()
            except (RedisConnectionError, RedisTimeoutError):
                # May have run: never sent again. The node may be gone: read the map again.
                self.refresh_soon(failed=address)
                raise

    def slot_of(self, key: str) -> int:
        slot = self._slots_of.get(key)
        if slot is None:
            if len(self._slots_of) >= 10_000:
                self._slots_of.clear()
            slot = self._slots_of[key] = key_slot(key.encode())
        return slot

    async def owner(self, slot: int) -> Address:
        """The slot's node, reading the map first when there is none yet."""
        moved = self.moved.get(slot)
        if moved is not None:
            return moved
        if self.slot_map is None:
            await self.refresh()
        assert self.slot_map is not None
        address = self.slot_map.owners[slot]
        if address is None:
            self.refresh_soon()
            raise RedisConnectionError(f"no Redis Cluster node serves slot {slot}")
        return address

    def pipeline(self, address: Address) -> AutoPipeline:
        pipeline = self.pipelines.get(address)
        if pipeline is None:
            pipeline = self.pipelines[address] = AutoPipeline(
                address[0], address[1], 0, self.username, self.password, self.connect_timeout_s,
                self.reply_timeout_s)
        return pipeline

    # -- the slot map ----------------------------------------------------------------------

    def refresh_soon(self, failed: Address | None = None) -> None:
        """Reads the map again in the background, unless a read is running or was recent."""
        if self._refreshing is not None or time.monotonic() - self._last_refresh < REFRESH_EVERY_S:
            return
        task = asyncio.ensure_future(self.refresh(failed))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # failures: the next error asks again

    async def refresh(self, failed: Address | None = None) -> None:
        """One read of the map at a time; callers arriving meanwhile share it."""
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._read_map(failed))
            self._refreshing.add_done_callback(lambda _: setattr(self, "_refreshing", None))
        await asyncio.shield(self._refreshing)

    async def _read_map(self, failed: Address | None) -> None:
        self._last_refresh = time.monotonic()
        self.refreshes += 1
        known = list(dict.fromkeys([*(self.slot_map.nodes() if self.slot_map else ()), *self.startup]))
        if failed in known:  # asked last: it may be dead or stalled
            known.remove(failed)
            known.append(failed)
        errors = []
        for address in known:
            try:
                async with asyncio.timeout(self.connect_timeout_s):
                    reply = await self.pipeline(address).execute("CLUSTER", "SLOTS")
            except (RedisConnectionError, RedisTimeoutError, ResponseError, TimeoutError, OSError) as error:
                errors.append(f"{address[0]}:{address[1]}: {error}")
                continue
            slot_map = SlotMap.parse(reply, address)
            if not slot_map.nodes():
                errors.append(f"{address[0]}:{address[1]}: serves no slots yet")
                continue
            previous, self.slot_map = self.slot_map, slot_map
            if previous is not None and previous.owners != slot_map.owners and self.on_new_owners is not None:
                told = asyncio.ensure_future(self.on_new_owners())
                told.add_done_callback(lambda t: t.cancelled() or t.exception())
            self.moved = {}  # the fresh map wins; a stale one earns one more MOVED
            self.startup = list(dict.fromkeys([*self.startup, *slot_map.nodes()]))
            await self._close_unused(slot_map.nodes())
            return
        raise RedisConnectionError("cannot read the Redis Cluster's slot map: " + "; ".join(errors))

    async def _close_unused(self, serving: set[Address]) -> None:
        """Idle pipelines of nodes that serve no slots now (a failed primary, a replica) close."""
        for address in [a for a, p in self.pipelines.items() if a not in serving and p.idle]:
            pipeline = self.pipelines.pop(address)
            with contextlib.suppress(Exception):
                await pipeline.aclose()

    @property
    def batches(self) -> int:
        return sum(p.batches for p in self.pipelines.values())

    @property
    def commands(self) -> int:
        return sum(p.commands for p in self.pipelines.values())

    async def aclose(self) -> None:
        for pipeline in list(self.pipelines.values()):
            await pipeline.aclose()
        self.pipelines.clear()
