"""The live streams end with their client: a stream is cancelled when its client goes, and
that cancellation must end it even when a change arrives in the same loop iteration (a busy
show). Python 3.11's asyncio.wait_for returned the change instead of raising there, so a
stream could outlive its client for as long as its show kept changing (seen in the spike:
hundreds of such streams, each applying every change, half a core of work)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from boxoffice.api import streams
from boxoffice.engine.redis.pubsub import ShowChange


async def cancelled_as_it_wakes(waiting: Any, wake: Any) -> asyncio.Task[Any]:
    """Starts `waiting`, lets it block, then wakes it and cancels it in the same iteration."""
    task = asyncio.ensure_future(waiting)
    for _ in range(3):
        await asyncio.sleep(0)  # the task now waits
    wake()
    task.cancel()
    return task


async def test_a_seat_stream_waiting_for_a_change_ends_when_cancelled_as_a_change_comes() -> None:
    queue: asyncio.Queue[ShowChange | None] = asyncio.Queue()
    change = ShowChange(show_id=1, queue_changed=False, seats={"A1": "held"})
    task = await cancelled_as_it_wakes(streams._next_change(queue), lambda: queue.put_nowait(change))
    with pytest.raises(asyncio.CancelledError):
        await task


class FakeWatch:
    """The watch `follow` waits on (engine/redis/pubsub.py EntryWatch), driven by the test."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.ended = asyncio.Event()

    async def next_change(self) -> None:
        await self.event.wait()

    def reading(self) -> None:
        self.event.clear()


class FakeEvents:
    def __init__(self, watch: FakeWatch) -> None:
        self.watch = watch

    def watch_entry(self, show_id: int, record_id: str) -> Any:
        watch = self.watch

        class Context:
            async def __aenter__(self) -> FakeWatch:
                return watch

            async def __aexit__(self, *exc: Any) -> None:
                return None

        return Context()


async def test_a_record_stream_waiting_for_a_change_ends_when_cancelled_as_a_change_comes() -> None:
    watch = FakeWatch()
    ctx: Any = type("Ctx", (), {"events": FakeEvents(watch)})()
    reads = 0

    async def read() -> dict[str, int]:
        nonlocal reads
        reads += 1
        return {"n": reads}

    events = streams.follow(ctx, 1, "E1", read, lambda record: record, lambda record: False,
                            read_every=lambda record: 0.0)
    assert await events.__anext__()  # the record's first state
    task = await cancelled_as_it_wakes(events.__anext__(), watch.event.set)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reads == 1  # it did not go on to read the record again


async def test_a_seat_streams_counts_follow_its_changes_as_a_fresh_read_would_count() -> None:
    """SeatView keeps its counts as seats move (a change costs its seats, not the hall):
    after any run of changes, including the queue's waited categories coming and going, they
    are what a fresh read of the same seats counts."""
    import random

    from boxoffice.engine.catalog import HallPlan, Seat

    seats = tuple(Seat(f"{row}{n}", row, n, "vip" if row == "A" else "std", "standard", n, i, 0)
                  for i, row in enumerate("ABC") for n in range(1, 11))
    plan = HallPlan(900_001, seats, {seat.id: seat for seat in seats})
    rng = random.Random(7)
    own = {seat.id: "available" for seat in seats}
    waited: frozenset[str] = frozenset()

    class Holds:
        async def seat_state(self, show_id: int, plan: Any = None) -> tuple[str, list[str]]:
            from boxoffice.engine.seat_view import CHAR_OF
            return "".join(CHAR_OF[own[seat.id]] for seat in seats), sorted(waited)

    ctx: Any = type("Ctx", (), {"holds": Holds()})()
    live = streams.SeatView(plan)
    await live.load(ctx, 1)
    for _ in range(300):
        if rng.random() < 0.1:
            waited = rng.choice([frozenset(), frozenset({"vip"}), frozenset({"*"})])
            moved = {}
        else:
            moved = {seat.id: rng.choice(["available", "held", "booked"]) for seat in rng.sample(seats, 3)}
            own.update(moved)
        live.apply(ShowChange(show_id=1, queue_changed=False, seats=moved, waited=waited))
        fresh = streams.SeatView(plan)
        await fresh.load(ctx, 1)
        assert live.counts() == fresh.counts()
        assert live.shown == fresh.shown
