"""The cluster auto-pipeline (boxoffice/engine/redis/cluster_pipeline.py) on a real Redis
Cluster of the tests' own (three primaries, three replicas): replies matched to their callers
across nodes, an error on one node failing only that node's commands, a slot migrated away
(ASK while it moves, MOVED once it moved) followed, and a killed primary followed once its
replica took over.

Most tests call a small function library of their own (echo, set, get, by key) so each
reply names what it answers; one drives the engine's own hold script through it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from boxoffice.engine.redis.cluster_pipeline import ClusterAutoPipeline
from boxoffice.engine.redis.gateway import Held
from boxoffice.engine.wiring import open_engine
from tests.support.backends import drop_prefix, settings_on_empty_sales
from tests.support.cluster import ClusterNode, LocalCluster, shows_on_every_shard
from tests.support.sales import eventually
from tests.support.seats import seat_marks

pytestmark = pytest.mark.cluster

LIBRARY = """#!lua name=pipelinetest
redis.register_function{function_name='pt_echo', flags={'no-writes'}, callback=function(keys, args)
  if args[1] == 'fail' then return redis.error_reply('ERR asked to fail') end
  return {keys[1], args[1]}
end}
redis.register_function('pt_set', function(keys, args)
  redis.call('SET', keys[1], args[1])
  return args[1]
end)
redis.register_function{function_name='pt_get', flags={'no-writes'}, callback=function(keys, args)
  return redis.call('GET', keys[1]) or ''
end}
redis.register_function{function_name='pt_get2', flags={'no-writes'}, callback=function(keys, args)
  return {redis.call('GET', keys[1]) or '', redis.call('GET', keys[2]) or ''}
end}
"""


def load_library(cluster: LocalCluster) -> None:
    for node in cluster.primaries():
        with node.client() as direct:
            direct.function_load(LIBRARY, replace=True)
            # On the replica too before a test kills its primary (WAIT counts this connection's writes).
            assert int(direct.execute_command("WAIT", 1, 5000)) == 1


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster.start()
    load_library(local)
    yield local
    local.stop()


@pytest.fixture
async def pipeline(cluster: LocalCluster) -> AsyncIterator[ClusterAutoPipeline]:
    # Starts from one node only, as REDIS_URL names one: the rest come from the slot map.
    pipe = ClusterAutoPipeline([("127.0.0.1", cluster.primaries()[0].port)], reply_timeout_s=2.0)
    yield pipe
    await pipe.aclose()


def keys_by_node(cluster: LocalCluster, tag: str, per_node: int) -> dict[int, list[str]]:
    """Keys (each with a hash tag of its own) whose slots are served by each primary, by port."""
    found: dict[int, list[str]] = {node.port: [] for node in cluster.primaries()}
    i = 0
    while any(len(keys) < per_node for keys in found.values()):
        key = f"{{{tag}{i}}}:k"
        port = cluster.node_for_slot(key_slot(key.encode())).port
        if len(found[port]) < per_node:
            found[port].append(key)
        i += 1
    return found


def node_id(node: ClusterNode) -> str:
    with node.client() as direct:
        return str(direct.execute_command("CLUSTER", "MYID"))


async def test_replies_reach_their_callers_across_nodes_in_shared_writes(
        cluster: LocalCluster, pipeline: ClusterAutoPipeline) -> None:
    by_node = keys_by_node(cluster, "match", per_node=40)
    calls = [(key, f"{key}#{n}") for keys in by_node.values() for key in keys for n in range(5)]
    answers = await asyncio.gather(*(pipeline.execute("FCALL", "pt_echo", 1, key, arg) for key, arg in calls))
    assert answers == [[key, arg] for key, arg in calls]
    # One pipeline per primary, and the 600 calls left in far fewer writes than calls.
    assert set(pipeline.pipelines) == {("127.0.0.1", port) for port in by_node}
    assert pipeline.commands == len(calls) + 1  # and one CLUSTER SLOTS
    assert pipeline.batches < len(calls) / 10


async def test_the_engines_holds_go_through_one_pipeline_per_node(cluster: LocalCluster, database_url: str) -> None:
    settings = settings_on_empty_sales(cluster.url, database_url, "cp", redis_cluster=True)
    context = await open_engine(settings, background=False)
    try:
        assert isinstance(context.scripts.pipeline, ClusterAutoPipeline)
        shows = await shows_on_every_shard(context, cluster)
        for show in shows:  # loaded first: the holds below are one call each
            await context.holds.seat_statuses(show.show_id)
        calls = [(show, f"h{show.show_id}x{i}", seat)
                 for show in shows for i, seat in enumerate(show.seat_ids[:30])]
        held = await asyncio.gather(*(
            context.gateway.hold_seats(show.show_id, hold_id, f"{hold_id}@example.org", 10, [seat])
            for show, hold_id, seat in calls))
        assert [(h.hold_id, h.replayed) for h in held] == [(hold_id, False) for _, hold_id, _ in calls]
        for show, hold_id, seat in calls:
            assert (await seat_marks(context.redis, context.keys, show.show_id)).get(seat) == f"h:{hold_id}"
        # The same calls again answer the holds they made (idempotent by hold id): nothing new.
        again = await asyncio.gather(*(
            context.gateway.hold_seats(show.show_id, hold_id, f"{hold_id}@example.org", 10, [seat])
            for show, hold_id, seat in calls))
        assert all(isinstance(h, Held) and h.replayed for h in again)
        assert [h.hold_id for h in again] == [hold_id for _, hold_id, _ in calls]
        assert len(context.scripts.pipeline.pipelines) == 3
    finally:
        await drop_prefix(context)
        await context.close()


async def test_an_error_on_one_node_fails_only_that_nodes_commands(
        cluster: LocalCluster, pipeline: ClusterAutoPipeline) -> None:
    by_node = keys_by_node(cluster, "err", per_node=20)
    bad_port = sorted(by_node)[0]
    bad = next(n for n in cluster.nodes if n.port == bad_port)
    # Script errors of some calls on every node: each fails alone, its neighbours answer.
    calls = [(key, "fail" if i % 3 == 0 else key) for keys in by_node.values() for i, key in enumerate(keys)]
    answers = await asyncio.gather(*(pipeline.execute("FCALL", "pt_echo", 1, k, a) for k, a in calls),
                                   return_exceptions=True)
    for (key, arg), answer in zip(calls, answers, strict=True):
        if arg == "fail":
            assert isinstance(answer, ResponseError) and "asked to fail" in str(answer)
        else:
            assert answer == [key, arg]
    # A whole node refusing writes (out of memory): its writes fail, its reads and every other
    # node's writes, sent in the same ticks, answer what they asked.
    with bad.client() as direct:
        direct.config_set("maxmemory", "1")
    try:
        calls = [(key, name) for keys in by_node.values() for key in keys for name in ("pt_set", "pt_echo")]
        answers = await asyncio.gather(*(pipeline.execute("FCALL", name, 1, key, key) for key, name in calls),
                                       return_exceptions=True)
        for (key, name), answer in zip(calls, answers, strict=True):
            on_bad = key in by_node[bad_port]
            if name == "pt_set" and on_bad:
                assert isinstance(answer, ResponseError) and "OOM" in str(answer), answer
            else:
                assert answer == (key if name == "pt_set" else [key, key]), (key, name, answer)
    finally:
        with bad.client() as direct:
            direct.config_set("maxmemory", "0")
    # The node's connection was never in doubt: it answers again at once.
    assert await pipeline.execute("FCALL", "pt_set", 1, by_node[bad_port][0], "back") == "back"


async def test_a_stalled_node_times_out_only_its_own_calls(cluster: LocalCluster) -> None:
    by_node = keys_by_node(cluster, "stall", per_node=10)
    stalled_port = sorted(by_node)[1]
    pipe = ClusterAutoPipeline([("127.0.0.1", stalled_port)], reply_timeout_s=0.3)
    # No retries: redis-py would send a timed-out PING again and again.
    sleeper = aioredis.Redis(port=stalled_port, socket_timeout=10, retry=Retry(NoBackoff(), 0))
    probe = aioredis.Redis(port=stalled_port, socket_timeout=0.05, retry=Retry(NoBackoff(), 0))
    try:
        first = by_node[stalled_port][0]
        assert await pipe.execute("FCALL", "pt_echo", 1, first, "up") == [first, "up"]
        sleeping = asyncio.ensure_future(sleeper.execute_command("DEBUG", "SLEEP", 1.5))

        async def stalled() -> bool:
            try:
                await probe.ping()
            except RedisTimeoutError:
                return True
            return False

        await eventually(stalled, timeout_s=5, every_s=0.01)
        calls = [key for keys in by_node.values() for key in keys]
        answers = await asyncio.gather(*(pipe.execute("FCALL", "pt_echo", 1, key, key) for key in calls),
                                       return_exceptions=True)
        for key, answer in zip(calls, answers, strict=True):
            if key in by_node[stalled_port]:
                assert isinstance(answer, RedisTimeoutError), answer  # may have run: not sent again
            else:
                assert answer == [key, key]
        await sleeping
        # The node is back: its next calls connect again and answer.
        answers = await asyncio.gather(*(pipe.execute("FCALL", "pt_echo", 1, key, "again")
                                         for key in by_node[stalled_port]))
        assert answers == [[key, "again"] for key in by_node[stalled_port]]
    finally:
        await pipe.aclose()
        await sleeper.aclose()
        await probe.aclose()


async def test_a_migrating_slot_is_followed_by_ask_then_moved(
        cluster: LocalCluster, pipeline: ClusterAutoPipeline) -> None:
    primaries = cluster.primaries()
    source, target = primaries[0], primaries[1]
    key = keys_by_node(cluster, "mig", per_node=1)[source.port][0]
    slot = key_slot(key.encode())
    assert await pipeline.execute("FCALL", "pt_set", 1, key, "before") == "before"
    source_id, target_id = node_id(source), node_id(target)
    with source.client() as src, target.client() as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", key)
    # Mid-migration: the source answers ASK for the moved key; the target answers after ASKING.
    redirects = pipeline.redirects
    assert await pipeline.execute("FCALL", "pt_get", 1, key) == "before"
    assert pipeline.redirects == redirects + 1
    assert pipeline.slot_map is not None and pipeline.slot_map.owners[slot] == ("127.0.0.1", source.port), \
        "ASK changes no owner"
    for node in primaries:
        with node.client() as direct:
            direct.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    # Moved: the source answers MOVED, the call follows it, and later calls go straight there.
    assert await pipeline.execute("FCALL", "pt_set", 1, key, "after") == "after"
    assert pipeline.redirects == redirects + 2
    assert await pipeline.execute("FCALL", "pt_get", 1, key) == "after"
    assert pipeline.redirects == redirects + 2
    with target.client() as direct:
        assert direct.get(key) == "after"

    async def map_agrees() -> bool:
        await pipeline.refresh()
        return pipeline.slot_map is not None and pipeline.slot_map.owners[slot] == ("127.0.0.1", target.port)

    await eventually(map_agrees, timeout_s=10, every_s=0.3)


async def test_a_killed_primary_is_followed_after_failover() -> None:
    cluster = LocalCluster.start()
    pipe = None
    try:
        load_library(cluster)
        pipe = ClusterAutoPipeline([("127.0.0.1", cluster.primaries()[0].port)], connect_timeout_s=0.5,
                                   reply_timeout_s=2.0)
        by_node = keys_by_node(cluster, "fo", per_node=5)
        victim = cluster.primaries()[-1]
        lost_key = by_node[victim.port][0]
        for keys in by_node.values():
            for key in keys:
                assert await pipe.execute("FCALL", "pt_set", 1, key, f"v-{key}") == f"v-{key}"
        with victim.client() as direct:
            # A write of this connection after the pipeline's, in the same replication stream:
            # once the replica has it, it has the values too.
            direct.set(lost_key.replace(":k", ":synced"), "1")
            assert int(direct.execute_command("WAIT", 1, 5000)) == 1
        cluster.kill(victim)
        # Commands for the dead node fail (never sent again: they may have run); the others answer.
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):
            await pipe.execute("FCALL", "pt_get", 1, lost_key)
        for port, keys in by_node.items():
            if port != victim.port:
                assert await pipe.execute("FCALL", "pt_get", 1, keys[0]) == f"v-{keys[0]}"
        cluster.wait_failover(key_slot(lost_key.encode()), victim)

        async def answered_by_the_new_primary() -> bool:
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                return bool(await pipe.execute("FCALL", "pt_get", 1, lost_key) == f"v-{lost_key}")
            return False

        await eventually(answered_by_the_new_primary, timeout_s=20, every_s=0.2)
        new_primary = cluster.node_for_slot(key_slot(lost_key.encode()))
        assert pipe.slot_map is not None
        assert pipe.slot_map.owners[key_slot(lost_key.encode())] == ("127.0.0.1", new_primary.port)
        assert ("127.0.0.1", victim.port) not in pipe.pipelines, "the dead node's pipeline was closed"
        answers = await asyncio.gather(*(pipe.execute("FCALL", "pt_get", 1, key)
                                         for keys in by_node.values() for key in keys))
        assert answers == [f"v-{key}" for keys in by_node.values() for key in keys]
    finally:
        if pipe is not None:
            await pipe.aclose()
        cluster.stop()


async def test_a_call_whose_keys_are_split_by_a_migration_is_sent_again_until_they_are_together(
        cluster: LocalCluster, pipeline: ClusterAutoPipeline) -> None:
    primaries = cluster.primaries()
    source, target = primaries[0], primaries[2]
    first = keys_by_node(cluster, "split", per_node=1)[source.port][0]
    second = first.replace(":k", ":other")  # the same hash tag: the same slot
    slot = key_slot(first.encode())
    for key in (first, second):
        assert await pipeline.execute("FCALL", "pt_set", 1, key, f"v-{key}") == f"v-{key}"
    source_id, target_id = node_id(source), node_id(target)
    with source.client() as src, target.client() as dst:
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", first)
    # One key moved, one not: the source answers TRYAGAIN (the call did not run), so it waits...
    call = asyncio.ensure_future(pipeline.execute("FCALL", "pt_get2", 2, first, second))
    await eventually(lambda: asyncio.sleep(0, pipeline.tryagains > 0), timeout_s=5, every_s=0.01)
    assert not call.done()
    # ...until the migration ends: then MOVED, and the call answers from the target.
    with source.client() as src:
        src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", second)
    for node in primaries:
        with node.client() as direct:
            direct.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    assert await asyncio.wait_for(call, 5) == [f"v-{first}", f"v-{second}"]
