"""Expiry that does not depend on anyone reading: every service process runs a sweeper.

The sweep index (one sorted set, keys.sweep_index) holds each show with pending
deadlines, scored by when it next needs a look. A sweeper claims the due shows
atomically (their score moves a lease ahead, so concurrent sweepers split the work and a
dead sweeper's claims come back after the lease), runs lua/sweep-8 on each (idempotent:
several sweepers are harmless), and puts the show back under its next deadline, or drops
it when the show went idle and nobody touched it meanwhile. Keyspace notifications of
a per-show wake key, when the server allows them, wake the sweeper early
(engine/redis/expiry_wakeups.py); a slow pass
over every loaded show is the last safety net, and drops the shows that started more than
a grace ago from Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from boxoffice.engine.redis.expiry_wakeups import ExpiryWakeups
from boxoffice.engine.redis.gateway import ShowScripts
from boxoffice.engine.redis.keys import Keys

log = logging.getLogger(__name__)

CLAIM_LEASE_MS = 2_000
# Longest an idle sweeper waits before it looks again: nothing due, no release queue
# running. It learns of a deadline made in its own process at once (index) and of one made
# elsewhere at its next look; every sweeper asking ten times a second cost Redis about
# 2 ms of CPU a second per process, idle (bench/RESULTS.md).
IDLE_WAIT_S = 1.0
CLAIM_BATCH = 200
FULL_PASS_EVERY_S = 30.0
STARTS_BATCH = 500

# KEYS[1] sweep index; ARGV[1] lease ms; ARGV[2] batch size.
# Claims the shows due by Redis's clock, read here (a TIME of its own was a round trip more).
# Returns the claimed show ids, the claim score each now has, Redis's now (ms) and the
# index's earliest score after the claim (-1: the index is empty).
CLAIM_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now), 'LIMIT', 0, tonumber(ARGV[2]))
local claim = now + tonumber(ARGV[1])
local claim_text = string.format('%d', claim)
for _, show in ipairs(due) do redis.call('ZADD', KEYS[1], claim_text, show) end
local first = redis.call('ZRANGE', KEYS[1], '0', '0', 'WITHSCORES')
return {due, claim, now, first[2] and tonumber(first[2]) or -1}
"""

# KEYS[1] sweep index; ARGV[1] show; ARGV[2] our claim score; ARGV[3] next wake (0: idle).
# Drops an idle show only when nobody re-indexed it since our claim.
RELEASE_SCRIPT = """
local current = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not current or tonumber(current) ~= tonumber(ARGV[2]) then
  if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[1]) end
  return 0
end
if tonumber(ARGV[3]) > 0 then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
else redis.call('ZREM', KEYS[1], ARGV[1]) end
return 1
"""


class Sweeper:
    """`unload` drops a show that played long ago (engine/show_loader.py): (show, now_ms) ->
    keys deleted, 0 when kept."""

    def __init__(self, redis: Any, keys: Keys, gateway: ShowScripts, wakeups: ExpiryWakeups,
                 unload: Callable[[int, int | None], Awaitable[int]], unload_after_s: int,
                 interval_s: float, on_tick: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.redis = redis
        # Called after every sweep: the release queues admit on the same tick
        # (engine/release_queue.py); it answers whether one runs (then the next tick comes
        # after the interval, whatever the deadlines).
        self.on_tick = on_tick
        self.keys = keys
        self.gateway = gateway
        self.wakeups = wakeups
        self.unload = unload
        self.unload_after_s = unload_after_s
        self.interval_s = interval_s
        self._claim: Any = None
        self._release: Any = None
        self._wake = asyncio.Event()
        # When the next known deadline falls (monotonic s; inf: none known), and Redis's clock
        # less the monotonic one (ms) as the last claim read them (None: no claim yet).
        self._next_due = math.inf
        self._clock_offset_ms: float | None = None
        self.holds_ended = 0
        self.shows_unloaded = 0

    def _scripts(self) -> tuple[Any, Any]:
        if self._claim is None:
            self._claim = self.redis.register_script(CLAIM_SCRIPT)
            self._release = self.redis.register_script(RELEASE_SCRIPT)
        return self._claim, self._release

    async def index(self, show_id: int, wake_ms: int) -> None:
        """A script call made the show's next wake earlier (its first deadline, an earlier
        one, a first waiter before the start): lowers the show's score in the sweep index to
        it (or adds the show), never raising it, and arms its wake key when notifications
        are on. One round trip either way."""
        if not self.wakeups.enabled:
            await self.redis.zadd(self.keys.sweep_index, {str(show_id): wake_ms}, lt=True)
        else:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zadd(self.keys.sweep_index, {str(show_id): wake_ms}, lt=True)
            self.wakeups.arm(pipe, show_id, wake_ms)
            await pipe.execute()
        self._expect(wake_ms)

    def _expect(self, wake_ms: int) -> None:
        """A show is due at `wake_ms` (Redis's clock): an idle sweeper waiting past it looks
        again now, and then waits until it."""
        if self._clock_offset_ms is None:
            self._wake.set()
            return
        due = self._monotonic_of(wake_ms)
        if due < self._next_due:
            self._next_due = due
            self._wake.set()

    def _monotonic_of(self, redis_ms: int) -> float:
        """A time on Redis's clock (ms) on this process's monotonic clock (s), as the last
        claim read the two."""
        assert self._clock_offset_ms is not None, "no claim has read Redis's clock yet"
        return (redis_ms - self._clock_offset_ms) / 1000

    async def _arm(self, show_id: int, wake_ms: int) -> None:
        if wake_ms > 0 and self.wakeups.enabled:
            pipe = self.redis.pipeline(transaction=False)
            self.wakeups.arm(pipe, show_id, wake_ms)
            await pipe.execute()

    async def sweep_once(self) -> int:
        """One pass over the due shows; returns how many holds it ended."""
        claim, release = self._scripts()
        asked_at = time.monotonic()
        shows, claim_score, now_ms, first_ms = await claim(keys=[self.keys.sweep_index],
                                                           args=[CLAIM_LEASE_MS, CLAIM_BATCH])
        self._clock_offset_ms = int(now_ms) - asked_at * 1000
        self._next_due = math.inf if int(first_ms) < 0 else self._monotonic_of(int(first_ms))
        ended = 0
        for raw in shows:
            show_id = int(raw)
            count, wake = await self.gateway.sweep(show_id)
            ended += count
            self.holds_ended += count
            await release(keys=[self.keys.sweep_index], args=[show_id, claim_score, wake])
            await self._arm(show_id, wake)
            if wake:
                self._next_due = min(self._next_due, self._monotonic_of(int(wake)))
        if len(shows) >= CLAIM_BATCH:
            self._next_due = asked_at  # more may be due: look again after the interval
        return ended

    async def full_pass(self, now_ms: int | None = None) -> int:
        """Safety net: visit every loaded show, indexed or not. A show that started more than
        `unload_after_s` ago is unloaded instead (engine/holds.py unload), so the loaded
        set holds only the shows still on sale or just played. now_ms (tests only) moves the
        clock of that decision; the sweep keeps Redis's."""
        shows = [int(raw) for raw in await self.redis.smembers(self.keys.loaded_shows)]
        started = await self._starts_at(shows)
        cutoff = (now_ms if now_ms is not None else await self._redis_time_ms()) \
            - self.unload_after_s * 1000
        ended = 0
        for show_id in shows:
            if 0 < started.get(show_id, 0) <= cutoff:
                if await self.unload(show_id, now_ms):
                    self.shows_unloaded += 1
                    continue
            count, wake = await self.gateway.sweep(show_id)
            ended += count
            self.holds_ended += count
            if wake:
                await self.redis.zadd(self.keys.sweep_index, {str(show_id): wake}, lt=True)
                await self._arm(show_id, wake)
                self._expect(wake)
        return ended

    async def _starts_at(self, shows: list[int]) -> dict[int, int]:
        """Each show's start (ms) from its meta hash, pipelined in batches."""
        out: dict[int, int] = {}
        for i in range(0, len(shows), STARTS_BATCH):
            batch = shows[i : i + STARTS_BATCH]
            pipe = self.redis.pipeline(transaction=False)
            for show_id in batch:
                pipe.hget(self.keys.show_keys(show_id)[0], "starts_at")
            for show_id, value in zip(batch, await pipe.execute(), strict=True):
                out[show_id] = int(value or 0)
        return out

    async def _redis_time_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def wake(self) -> None:
        self._wake.set()

    def wait_s(self, busy: bool) -> float:
        """How long to wait before the next pass: the interval while a release queue runs
        (`busy`: it admits on every tick), else until the next known deadline, at least the
        interval and at most IDLE_WAIT_S (or the interval, if longer)."""
        if busy:
            return self.interval_s
        longest = max(self.interval_s, IDLE_WAIT_S)
        return min(longest, max(self.interval_s, self._next_due - time.monotonic()))

    async def run_forever(self) -> None:
        last_full = time.monotonic()
        while True:
            # Cleared before the pass: a wake-up arriving during it starts another pass.
            self._wake.clear()
            busy = True
            try:
                await self.sweep_once()
                busy = bool(await self.on_tick()) if self.on_tick is not None else False
                if time.monotonic() - last_full > FULL_PASS_EVERY_S:
                    await self.full_pass()
                    last_full = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: keep trying, quietly
                log.warning("sweep failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # arrives as the wake-up does, and the sweeper would outlive its service.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.wait_s(busy)):
                    await self._wake.wait()
