"""Expiry without readers: keyspace notifications (enabled politely, refused gracefully),
their effect on the delay, expiry of 1,200 holds under load, and sweepers that die
(a cancelled task mid-pass, a SIGKILLed service process) while others finish the job.

Delays are measured on Redis's clock, by reading the raw hold hashes: a raw read settles
nothing, so only a sweeper can have freed what it sees free."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from boxoffice.engine.errors import HoldNotActive, SeatsUnavailable
from boxoffice.engine.holds import Hold
from boxoffice.engine.redis.expiry_wakeups import (
    CONFIG_NAME,
    ExpiryWakeups,
    enable_expired_events,
    merged_flags,
    unavailable_reason,
)
from boxoffice.engine.redis.keys import Keys
from boxoffice.engine.settings import Settings
from boxoffice.engine.statuses import HoldStatus
from boxoffice.engine.sweeper import CLAIM_LEASE_MS, IDLE_WAIT_S, Sweeper
from boxoffice.engine.wiring import Engine, open_engine, stop_tasks
from tests.support.backends import BOTH
from tests.support.live import environment
from tests.support.seats import seat_counts
from tests.support.services import RedisServer, ServiceProcess
from tests.support.shows import pick_show, pick_shows


async def redis_now_ms(ctx: Engine) -> int:
    seconds, micros = await ctx.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def watch_expiry(ctx: Engine, holds: list[Hold], timeout_s: float, total: int | None = None) -> list[int]:
    """Polls the raw hold hashes until `total` holds (default: all) had ended, their seats freed;
    returns each hold's delay (ms from its deadline to the first poll that saw it freed,
    Redis clock), in the order of `holds`. Run it as a task while holds are still being
    taken (they are appended to `holds`): a late first look would inflate the delays."""
    total = len(holds) if total is None else total
    delays: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(delays) < total:
        assert time.monotonic() < deadline, f"{total - len(delays)} holds never ended"
        pending: dict[int, list[Hold]] = {}
        for hold in list(holds):
            if hold.hold_id not in delays:
                pending.setdefault(hold.show_id, []).append(hold)
        # One MULTI: the clock and every status at one instant (a long pipeline of its own
        # would let the sweepers run between its reads).
        pipe = ctx.redis.pipeline(transaction=True)
        pipe.time()
        for hs in pending.values():
            for hold in hs:
                # Ending a hold frees its seats in the same script: a live hold still holds them.
                pipe.hget(ctx.keys.hold(hold.show_id, hold.hold_id), "status")
        (seconds, micros), *statuses = await pipe.execute()
        now = int(seconds) * 1000 + int(micros) // 1000
        owners = iter(statuses)
        for hs in pending.values():
            for hold in hs:
                if next(owners) not in ("active", "confirming"):
                    assert now >= hold.expires_at_ms, f"hold {hold.hold_id} ended {hold.expires_at_ms - now} ms early"
                    delays[hold.hold_id] = now - hold.expires_at_ms
        await asyncio.sleep(0.01)
    return [delays[h.hold_id] for h in holds]


def summary(delays: list[int]) -> str:
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"n={len(ordered)} median={statistics.median(ordered):.0f} ms p99={p99} ms max={ordered[-1]} ms"


@contextlib.asynccontextmanager
async def engine_process(settings: Settings, *, sweeper: bool = True) -> AsyncIterator[Engine]:
    """What one service process runs for expiry: an Engine with its sweeper and its
    notification listener (no HTTP, no reconciler)."""
    ctx = await open_engine(settings, background=False)
    try:
        if sweeper:
            ctx.tasks.append(asyncio.create_task(ctx.sweeper.run_forever(), name="sweeper"))
        ctx.tasks.append(ctx.wakeups.start())
        yield ctx
    finally:
        await ctx.close()


async def show_stats(ctx: Engine, show_id: int) -> dict[str, int]:
    return await seat_counts(ctx.redis, ctx.keys, show_id)


# -- keyspace notifications ------------------------------------------------------------


def test_flags_are_merged_never_removed() -> None:
    assert merged_flags("") == "Ex"
    assert merged_flags("K$") == "K$Ex"
    assert merged_flags("AK") == "AKE"  # A already covers expired events
    assert merged_flags("xE") is None and merged_flags("KEA") is None


async def test_enabling_keeps_the_flags_already_set(ctx: Engine) -> None:
    before = (await ctx.redis.config_get(CONFIG_NAME))[CONFIG_NAME]
    try:
        await ctx.redis.config_set(CONFIG_NAME, "K$")
        assert await enable_expired_events(ctx.redis) is None
        flags = (await ctx.redis.config_get(CONFIG_NAME))[CONFIG_NAME]
        assert set(flags) == set("K$Ex"), flags
    finally:
        await ctx.redis.config_set(CONFIG_NAME, before)


async def test_a_server_refusing_config_gets_one_warning_and_the_timer_still_frees(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    refusing = RedisServer.start(None, "--rename-command", "CONFIG", "")
    try:
        with caplog.at_level(logging.WARNING, logger="boxoffice.engine.redis.expiry_wakeups"):
            async with engine_process(settings.with_changes(redis_url=refusing.url, hold_ttl_s=1)) as ctx:
                notifier_task = ctx.tasks[-1]
                await asyncio.wait_for(notifier_task, 5)  # it gives up at once and says so
                assert not ctx.wakeups.enabled
                show = await pick_show(ctx)
                hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
                delays = await watch_expiry(ctx, [hold], 5)
                assert delays[0] < 1000
        warnings = [r for r in caplog.records
                    if r.name == "boxoffice.engine.redis.expiry_wakeups" and r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "relies on the sweeper timer" in warnings[0].getMessage()
        assert "CONFIG refused" in warnings[0].getMessage()
    finally:
        refusing.stop()


@pytest.mark.parametrize("mode", ["embedded", "cluster", "turned off"])
async def test_without_notifications_the_listener_warns_once_and_stops(
        settings: Settings, caplog: pytest.LogCaptureFixture, mode: str) -> None:
    changed = {"embedded": dict(redis_url=None, database_url=None), "cluster": dict(redis_cluster=True),
               "turned off": dict(keyspace_notifications=False)}[mode]
    changed_settings = settings.with_changes(**changed)
    notifier = ExpiryWakeups(None, None, Keys("unused"), on_wake=lambda: None,
                             unavailable=unavailable_reason(changed_settings),
                             sweep_interval_s=changed_settings.sweep_interval_s)
    with caplog.at_level(logging.WARNING, logger="boxoffice.engine.redis.expiry_wakeups"):
        await asyncio.wait_for(notifier.run_forever(), 1)
    records = [r for r in caplog.records if r.name == "boxoffice.engine.redis.expiry_wakeups"]
    assert [r.levelno for r in records] == [logging.WARNING]
    assert "relies on the sweeper timer" in records[0].getMessage()
    assert not notifier.enabled


@pytest.mark.parametrize("notifications", [True, False], ids=["notifications", "timer-only"])
async def test_expiry_delay_with_a_slow_timer(settings: Settings, notifications: bool) -> None:
    """With a 2 s sweeper timer, a wake key's expired event frees seats within a second of
    their deadline; the timer alone takes up to its interval (printed, for the record).
    All holds are taken before the first deadline, so no hold script settles any. On a
    redis-server of its own: keys with TTLs left by other tests would slow the events."""
    interval_s = 2.0
    own = RedisServer.start()
    try:
        await measure_delays(settings.with_changes(redis_url=own.url, hold_ttl_s=2, sweep_interval_s=interval_s,
                                                   keyspace_notifications=notifications))
    finally:
        own.stop()


async def measure_delays(settings: Settings) -> None:
    interval_s, notifications = settings.sweep_interval_s, settings.keyspace_notifications
    async with engine_process(settings) as proc:
        if notifications:
            await asyncio.wait_for(proc.wakeups.subscribed.wait(), 5)
        shows = await pick_shows(proc, 2)
        holds: list[Hold] = []
        watch = asyncio.create_task(watch_expiry(proc, holds, 10, total=20))
        for i in range(20):  # deadlines spread over ~1 s, two shows
            show = shows[i % 2]
            holds.append(await proc.holds.hold(show.show_id, [show.seat_ids[i]], f"c{i}@example.org"))
            await asyncio.sleep(0.05)
        delays = await watch
        print(f"\nexpiry delay, sweep interval {interval_s} s, {'notifications' if notifications else 'timer only'}:"
              f" {summary(delays)}")
        if notifications:
            assert max(delays) < 1000, summary(delays)
            assert proc.wakeups.wakeups > 0
        else:
            assert max(delays) < interval_s * 1000 + 1000, summary(delays)


# -- expiry under load -------------------------------------------------------------------


async def test_1200_holds_expire_within_a_second_under_load(ctx: Engine) -> None:
    """Two service processes' worth of sweepers (hold times 1 s and 2 s); eight clients keep
    holding, reading and releasing on another show throughout."""
    base = ctx.settings.with_changes(browse_cache_s=60.0)
    async with engine_process(base.with_changes(hold_ttl_s=1)) as one, \
            engine_process(base.with_changes(hold_ttl_s=2)) as two:
        shows = await pick_shows(one, 5, min_seats=300)
        expiring, busy = shows[:4], shows[4]
        stop = asyncio.Event()
        load_ops = 0

        async def client(n: int) -> None:
            nonlocal load_ops
            rng = random.Random(n)
            while not stop.is_set():
                proc = one if n % 2 else two
                with contextlib.suppress(SeatsUnavailable, HoldNotActive):
                    hold = await proc.holds.hold(busy.show_id, rng.sample(busy.seat_ids, 2), f"busy{n}@example.org")
                    await proc.holds.seat_statuses(busy.show_id)
                    await proc.holds.hold_status(hold.hold_id)
                    await proc.holds.release(hold.hold_id)
                    load_ops += 1

        holds: list[Hold] = []
        gate = asyncio.Semaphore(32)

        async def take(i: int) -> None:
            show = expiring[i % 4]  # each show: 300 holds of one seat
            async with gate:
                holds.append(await (one if i % 2 else two).holds.hold(show.show_id, [show.seat_ids[i // 4]],
                                                                           f"x{i}@example.org"))

        load = [asyncio.create_task(client(n)) for n in range(8)]
        watch = asyncio.create_task(watch_expiry(one, holds, 20, total=1200))
        try:
            started = time.monotonic()
            await asyncio.gather(*(take(i) for i in range(1200)))
            taken_ms = await redis_now_ms(one)
            print(f"\n1200 holds taken in {time.monotonic() - started:.2f} s")
            delays = await watch
        finally:
            stop.set()
            watch.cancel()
            await asyncio.gather(*load)
        print(f"expiry under load: {summary(delays)}; {load_ops} load operations meanwhile")
        assert max(delays) < 1000, summary(delays)
        assert load_ops > 100, "the load clients did run"
        # Later holds of a show settled the earliest ones; no script touched those shows
        # after the last hold, so the holds due after it were the sweepers' alone.
        assert one.sweeper.holds_ended + two.sweeper.holds_ended >= sum(h.expires_at_ms > taken_ms for h in holds)
        for show in expiring:
            stats = await show_stats(one, show.show_id)
            assert (stats["held"], stats["free"], stats["booked"]) == (0, len(show.seat_ids), 0), stats
            assert stats["holds_unpaid"] == 300, "each hold ended exactly once"
            keys = one.keys.show_keys(show.show_id)
            assert await one.redis.zcard(keys[3]) == 0 and await one.redis.hlen(keys[4]) == 0
        sample = random.Random(1).sample(list(holds), 20)
        assert {(await one.holds.hold_status(h.hold_id)).status for h in sample} == {HoldStatus.EXPIRED}


# -- sweepers that die -------------------------------------------------------------------


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_a_sweeper_cancelled_mid_pass_loses_nothing(ctx: Engine) -> None:
    """The doomed sweeper claims the due shows, then hangs on its first sweep and is
    cancelled; the claim lease brings the shows back to two new, concurrent sweepers."""
    async with engine_process(ctx.settings.with_changes(hold_ttl_s=1), sweeper=False) as doomed:
        shows = await pick_shows(doomed, 3)
        holds = [await doomed.holds.hold(show.show_id, [show.seat_ids[i]], f"c{i}@example.org")
                 for show in shows for i in range(10)]
        claimed = asyncio.Event()

        async def hang(show_id: int) -> tuple[int, int]:
            claimed.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        doomed.gateway.sweep = hang  # type: ignore[method-assign]  # fault injection: dies mid-pass
        dying = asyncio.create_task(doomed.sweeper.run_forever())
        await asyncio.wait_for(claimed.wait(), 5)
        claimed_at = await redis_now_ms(doomed)
        leased = await doomed.redis.zrangebyscore(doomed.keys.sweep_index, claimed_at + 1, "+inf")
        assert leased, "the dying sweeper holds a claim on the shows it took"
        dying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dying

        heirs = [Sweeper(ctx.redis, ctx.keys, ctx.gateway, ctx.wakeups, ctx.shows.unload, ctx.settings.unload_after_s,
                         ctx.settings.sweep_interval_s) for _ in range(2)]
        tasks = [asyncio.create_task(s.run_forever()) for s in heirs]
        try:
            delays = await watch_expiry(ctx, holds, CLAIM_LEASE_MS / 1000 + 5)
        finally:
            await stop_tasks(tasks)  # as the service stops them: a cancel can be lost (wiring.py)
        assert max(delays) < CLAIM_LEASE_MS + 1000, summary(delays)
        assert sum(s.holds_ended for s in heirs) == len(holds), "each hold ended once, by the heirs"
        for ref in shows:
            stats = await show_stats(ctx, ref.show_id)
            assert (stats["held"], stats["free"], stats["holds_unpaid"]) == (0, len(ref.seat_ids), 10), stats
            async def unindexed(show: int = ref.show_id) -> bool:
                return await ctx.redis.zscore(ctx.keys.sweep_index, str(show)) is None

            await wait_for(unindexed, 2, "idle shows to leave the sweep index")


async def test_holds_of_a_sigkilled_service_end_by_another_process(ctx: Engine) -> None:
    settings = ctx.settings.with_changes(hold_ttl_s=2)
    shows = await pick_shows(ctx, 2)
    with tempfile.TemporaryDirectory() as tmp:
        # The app under uvicorn in a subprocess: a real service process with its own sweeper.
        service = ServiceProcess.start(environment(settings), Path(tmp) / "service.log")
        try:
            await service.await_healthy(timeout_s=20)
            async with httpx.AsyncClient(base_url=service.url, timeout=5) as http:
                answers = [await http.post(f"/v1/shows/{show.show_id}/holds",
                                           json={"seats": show.seat_ids[i * 2:i * 2 + 2],
                                                 "customer": f"c{i}@example.org"})
                           for show in shows for i in range(8)]
            assert [a.status_code for a in answers] == [201] * 16, answers[0].text
        finally:
            service.kill()  # SIGKILL: no shutdown, its sweeper dies with it
    holds = [await ctx.holds.hold_status(a.json()["hold_id"]) for a in answers]
    assert all(h.status is HoldStatus.ACTIVE for h in holds), "the holds were still pending at the kill"
    async with engine_process(settings) as survivor:
        delays = await watch_expiry(survivor, holds, 10)
    print(f"\nholds of a SIGKILLed service, ended by another process: {summary(delays)}")
    assert max(delays) < 1000, summary(delays)
    for show in shows:
        stats = await show_stats(ctx, show.show_id)
        assert (stats["held"], stats["free"], stats["holds_unpaid"]) == (0, len(show.seat_ids), 8), stats


# -- an idle sweeper -----------------------------------------------------------------------


async def sweeper_claims(redis: Any) -> int:
    """Claims made on this redis-server since its stats were reset: the sweeper's claim is
    the only EVALSHA an engine sends while nothing is bought."""
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_an_idle_sweeper_looks_about_once_a_second_and_still_ends_holds_on_time(settings: Settings) -> None:
    """Nothing due and no release queue: the sweeper waits up to IDLE_WAIT_S between looks, not
    the 0.1 s interval (every process's look costs Redis CPU: bench/RESULTS.md). A hold made
    meanwhile in this process ends on time all the same, with no reader and no wake-key
    event (notifications off): indexing it told the sweeper."""
    own = RedisServer.start()
    try:
        tuned = settings.with_changes(redis_url=own.url, hold_ttl_s=1, sweep_interval_s=0.1,
                                      keyspace_notifications=False)
        async with engine_process(tuned) as proc:
            show = await pick_show(proc)  # (loads the show: no deadline yet, nothing indexed)
            await proc.redis.config_resetstat()
            await asyncio.sleep(2.5)
            looks = await sweeper_claims(proc.redis)
            assert 1 <= looks <= 2.5 / IDLE_WAIT_S + 2, f"{looks} looks in 2.5 s idle"
            hold = await proc.holds.hold(show.show_id, show.seat_ids[:2], "late@example.org")
            (delay,) = await watch_expiry(proc, [hold], 5)
            assert delay < 500, f"ended {delay} ms after its deadline"
            assert proc.sweeper.holds_ended == 1
    finally:
        own.stop()
