"""A show's life in Redis: loaded from the catalog and PostgreSQL's sales on first touch
(the gateway asks when a script finds the show missing), and unloaded some time after it
started (the sweeper's full pass asks). PostgreSQL keeps every sale: a later read
reloads the show like any first touch."""

from __future__ import annotations

import asyncio
from typing import Any

from boxoffice.engine.catalog import Catalog
from boxoffice.engine.redis.gateway import UNLOAD_DONE, UNLOAD_KEPT, ShowLoad, ShowScripts
from boxoffice.engine.redis.keys import Keys

# lua/unload_show-1.lua: hold and entry hashes deleted per call (a call stays short:
# Redis runs nothing else meanwhile).
UNLOAD_BATCH = 1000


class ShowLoader:
    def __init__(self, gateway: ShowScripts, catalog: Catalog, redis: Any, keys: Keys, unload_after_s: int) -> None:
        self.gateway = gateway
        self.catalog = catalog
        self.redis = redis
        self.keys = keys
        self.unload_after_s = unload_after_s
        self._loading: dict[int, asyncio.Future[None]] = {}

    async def load(self, show_id: int) -> None:
        """Loads the show into Redis; concurrent callers of one process share one load."""
        loading = self._loading.get(show_id)
        if loading is None:
            loading = self._loading[show_id] = asyncio.ensure_future(self._load(show_id))
            loading.add_done_callback(lambda _: self._loading.pop(show_id, None))
        await asyncio.shield(loading)

    async def _load(self, show_id: int) -> None:
        await self.gateway.load_show(show_id, await self.describe(show_id))
        await self.redis.sadd(self.keys.loaded_shows, str(show_id))

    async def describe(self, show_id: int) -> ShowLoad:
        """What Redis's copy of the show holds, from the catalog and PostgreSQL's sales."""
        show = await self.catalog.show(show_id, fresh=True)
        plan = await self.catalog.hall_plan(show.hall_id)
        places = plan.row_places()
        return ShowLoad(
            starts_at_ms=int(show.starts_at.timestamp() * 1000),
            status=show.status,
            seats=[(seat.id, f"{seat.category}|{seat.row}|{places[seat.id]}|{seat.rank}|{seat.kind}")
                   for seat in plan.seats],
            booked=list(await self.catalog.booked_seats(show_id)),
            no_stranded_seats=show.no_stranded_seats,
            sale_opens_at_ms=0 if show.sale_opens_at is None else int(show.sale_opens_at.timestamp() * 1000),
            queue_order=show.queue_order,
        )

    async def unload(self, show_id: int, now_ms: int | None = None) -> int:
        """Drops the show's Redis state when it started more than `unload_after_s` ago
        (lua/unload_show-1.lua), then takes it out of the loaded set and the sweep index.
        Returns how many keys went; 0 when the show was kept. now_ms: tests only."""
        grace_ms = self.unload_after_s * 1000
        deleted = 0
        while True:
            state, count = await self.gateway.unload_show(show_id, grace_ms, UNLOAD_BATCH, now_ms)
            deleted += count
            if state == UNLOAD_KEPT:
                return 0
            if state == UNLOAD_DONE:
                break
        await self._forget(show_id)
        return deleted

    async def _forget(self, show_id: int) -> None:
        """Takes an unloaded show out of the global sets. Another process may have reloaded
        it meanwhile (a seat map read): its SADD follows its load, so looking at the show's
        meta after our SREM and adding it back when it is loaded never loses a loaded show."""
        self.gateway.forget(show_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.srem(self.keys.loaded_shows, str(show_id))
        pipe.zrem(self.keys.sweep_index, str(show_id))
        await pipe.execute()
        if await self.redis.hget(self.keys.show_keys(show_id)[0], "loaded") == "1":
            await self.redis.sadd(self.keys.loaded_shows, str(show_id))
