"""The fast paths stay exact: the seat map spliced from the status string (boxoffice/api/seatmap.py,
boxoffice/lua/includes/statusmap.lua) against the holds and bookings behind it, the scripts' function library
(boxoffice/engine/redis/scripts.py) loaded again by whoever finds it gone, and auto-pipelining
(boxoffice/engine/redis/autopipeline.py) answering every caller its own reply, through an error reply and a
dropped connection."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from boxoffice.engine.redis.autopipeline import CLIENT_NAME, AutoPipeline
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH
from tests.support.seats import seat_marks
from tests.support.services import RedisServer
from tests.support.shows import ShowRef, pick_show


async def seats_hash_statuses(ctx: Engine, show: ShowRef) -> dict[str, str]:
    """What the holds and the bookings say, independently of the status string."""
    raw = await seat_marks(ctx.redis, ctx.keys, show.show_id, check_map=False)
    return {seat: "booked" if value.startswith("b:") else "held" for seat, value in raw.items()}


async def assert_seat_map_matches_hash(ctx: Engine, client: httpx.AsyncClient, show: ShowRef,
                                       string_kept: bool = True) -> None:
    stored = await ctx.redis.get(ctx.keys.show_base(show.show_id) + "statusmap")
    if stored is not None and string_kept:
        # Kept up to date by the writes themselves, not only repaired by the read.
        expected_now = await seats_hash_statuses(ctx, show)
        assert {seat: char for seat, char in zip(show.seat_ids, stored, strict=True) if char != "0"} == \
            {seat: status[0] for seat, status in expected_now.items()}
    answer = await client.get(f"/v1/shows/{show.show_id}/seats")
    assert answer.status_code == 200
    body = answer.json()
    expected = await seats_hash_statuses(ctx, show)
    shown = {s["id"]: s["status"] for s in body["seats"]}
    assert [s["id"] for s in body["seats"]] == show.seat_ids
    assert {k: v for k, v in shown.items() if v != "available"} == expected
    assert body["counts"] == {"available": len(show.seat_ids) - len(expected),
                              "held": sum(v == "held" for v in expected.values()),
                              "booked": sum(v == "booked" for v in expected.values())}
    plan = await ctx.catalog.hall_plan(show.hall_id)
    first = body["seats"][0]
    seat = plan.by_id[first["id"]]
    assert first == {"id": seat.id, "row": seat.row, "number": seat.number, "category": seat.category,
                     "kind": seat.kind, "x": seat.x, "y": seat.y, "status": first["status"]}
    assert body["show_id"] == str(show.show_id)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_the_spliced_seat_map_follows_holds_releases_expiry_and_sales(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    await assert_seat_map_matches_hash(ctx, client, show)  # numbers the seats on first read
    a = await ctx.holds.hold(show.show_id, show.seat_ids[:3], "ana@example.org")
    b = await ctx.holds.hold(show.show_id, show.seat_ids[10:12], "bob@example.org")
    await assert_seat_map_matches_hash(ctx, client, show)
    await ctx.holds.release(b.hold_id)
    await assert_seat_map_matches_hash(ctx, client, show)
    booking = await ctx.confirmations.confirm(a.hold_id, "key-1", "tok_ok")
    assert booking.seats == sorted(show.seat_ids[:3])
    await assert_seat_map_matches_hash(ctx, client, show)
    c = await ctx.holds.hold(show.show_id, show.seat_ids[20:22], "cy@example.org")
    later = c.expires_at_ms + 1
    await ctx.holds.seat_statuses(show.show_id, now_ms=later)  # settles the expiry
    await assert_seat_map_matches_hash(ctx, client, show)
    assert (await seats_hash_statuses(ctx, show)) == {s: "booked" for s in show.seat_ids[:3]}


async def test_one_settle_that_frees_more_seats_than_a_batch_keeps_the_status_string_exact(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    """statusmap.lua reads the positions of the seats a call changed a hundred at a time:
    250 seats expiring in one settle cross two batch edges."""
    show = await pick_show(ctx, min_seats=250)
    await assert_seat_map_matches_hash(ctx, client, show)
    seats = show.seat_ids[:250]
    holds = [await ctx.holds.hold(show.show_id, seats[i:i + 10], f"c{i}@example.org")
             for i in range(0, len(seats), 10)]
    await assert_seat_map_matches_hash(ctx, client, show)
    later = max(h.expires_at_ms for h in holds) + 1
    # One call expires all 25 holds: a hold's status, which settles but reads no seat map (a
    # seat map read would repair a string that missed a mark).
    assert (await ctx.holds.hold_status(holds[0].hold_id, now_ms=later)).status == "expired"
    assert await seats_hash_statuses(ctx, show) == {}
    assert await ctx.redis.get(ctx.keys.show_base(show.show_id) + "statusmap") == "0" * len(show.seat_ids)
    await assert_seat_map_matches_hash(ctx, client, show)


async def test_a_status_string_that_drifted_is_rebuilt_from_the_holds_and_bookings(
        ctx: Engine, client: httpx.AsyncClient, show: ShowRef) -> None:
    await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    await assert_seat_map_matches_hash(ctx, client, show)
    # A write that forgot to mark its seat: the counts no longer match the stats hash.
    await ctx.redis.setrange(ctx.keys.show_base(show.show_id) + "statusmap", 5, "b")
    await assert_seat_map_matches_hash(ctx, client, show, string_kept=False)
    await assert_seat_map_matches_hash(ctx, client, show)


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_scripts_run_again_at_once_after_the_server_lost_their_library(ctx: Engine, show: ShowRef) -> None:
    first = await ctx.holds.hold(show.show_id, show.seat_ids[:1], "ana@example.org")
    await ctx.redis.function_flush()  # as after a restart without data
    # Concurrent callers that find the library gone share one load, and each gets its answer.
    holds = await asyncio.gather(*(ctx.holds.hold(show.show_id, [seat], f"c{i}@example.org")
                                   for i, seat in enumerate(show.seat_ids[1:9])))
    assert len({h.hold_id for h in holds}) == 8
    assert (await ctx.holds.hold_status(first.hold_id)).seats == show.seat_ids[:1]
    libraries = [dict(zip(lib[::2], lib[1::2], strict=True))["library_name"]
                 for lib in await ctx.redis.function_list()]
    assert libraries == [ctx.scripts.library.name]


async def test_auto_pipelining_answers_every_caller_its_own_reply(redis_server: RedisServer) -> None:
    pipeline = AutoPipeline("127.0.0.1", redis_server.port)
    try:
        replies = await asyncio.gather(*(pipeline.execute("EVAL", "return ARGV[1] .. KEYS[1]", 1, f"k{i}", f"v{i}")
                                         for i in range(500)))
        assert replies == [f"v{i}k{i}" for i in range(500)]
        assert pipeline.batches < pipeline.commands / 10, "concurrent calls were not coalesced"
        with pytest.raises(Exception, match="NOSCRIPT"):
            await pipeline.execute("EVALSHA", "0" * 40, 0)
        assert await pipeline.execute("ECHO", "still in step") == "still in step"
    finally:
        await pipeline.aclose()


async def test_auto_pipelining_fails_in_flight_calls_on_a_dropped_connection_and_reconnects(
        redis_server: RedisServer) -> None:
    pipeline = AutoPipeline("127.0.0.1", redis_server.port)
    admin = aioredis.Redis(port=redis_server.port, decode_responses=True)
    try:
        assert await pipeline.execute("PING") == "PONG"
        # A call still waiting for its reply when the connection drops (BLPOP: it waits on purpose).
        waiting = asyncio.ensure_future(pipeline.execute("BLPOP", "hot-paths-never-pushed", 10))
        await asyncio.sleep(0.1)
        clients = [c for c in await admin.client_list() if c.get("name") == CLIENT_NAME]
        assert clients, "the pipeline's connection is named"
        await admin.execute_command("CLIENT", "KILL", "ID", clients[0]["id"])
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await pipeline.execute("PING") == "PONG", "the next call connects again"
    finally:
        await pipeline.aclose()
        await admin.aclose()


async def test_our_bare_connections_log_in_select_their_database_and_name_themselves(ctx: Engine) -> None:
    """The auto-pipeline and the live-change subscription open their own connections
    (engine/redis/autopipeline.handshake): on a server that wants a password, as the default
    user and as a named ACL user, in a database other than 0."""
    from boxoffice.engine.redis.pubsub import CLIENT_NAME as EVENTS_CLIENT_NAME

    door_code, usher_code = "door-code", "usher-code"  # the server's and an ACL user's passwords
    server = RedisServer.start()
    admin = aioredis.Redis(port=server.port, decode_responses=True)
    try:
        await admin.config_set("requirepass", door_code)  # this connection stays logged in
        await admin.acl_setuser("usher", enabled=True, passwords=[f"+{usher_code}"], keys=["*"], channels=["*"],
                                commands=["+@all"])
        for username, password in ((None, door_code), ("usher", usher_code)):
            pipeline = AutoPipeline("127.0.0.1", server.port, db=3, username=username, password=password)
            try:
                assert await pipeline.execute("SET", "handshake-test", username or "default") is not None
                mine = [c for c in await admin.client_list() if c.get("name") == CLIENT_NAME]
                assert [(c["user"], c["db"]) for c in mine] == [(username or "default", "3")], mine
            finally:
                await pipeline.aclose()
        assert await admin.get("handshake-test") is None, "written to database 0, not 3"
        in_db3 = aioredis.Redis(port=server.port, db=3, username="usher", password=usher_code,
                                decode_responses=True)
        assert await in_db3.get("handshake-test") == "usher"
        await in_db3.aclose()

        url = f"redis://usher:{usher_code}@127.0.0.1:{server.port}/3"
        hub = await open_engine(ctx.settings.with_changes(redis_url=url), background=False)
        try:
            hub.events.start()
            await asyncio.wait_for(hub.events.connected.wait(), 10)
            theirs = [c for c in await admin.client_list() if c.get("name") == EVENTS_CLIENT_NAME]
            assert [c["user"] for c in theirs] == ["usher"], theirs
        finally:
            await hub.close()
    finally:
        await admin.aclose()
        server.kill()
