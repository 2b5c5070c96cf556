"""Holds: all or nothing, limits, release, status, expiry and the sweeper, contention."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from boxoffice.engine.errors import HoldNotActive, InvalidRequest, LimitExceeded, NotFound, SeatsUnavailable
from boxoffice.engine.statuses import HoldStatus, SeatStatus
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH
from tests.support.sales import eventually
from tests.support.seats import seat_counts
from tests.support.shows import ShowRef

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)


async def test_a_hold_takes_all_its_seats_and_a_clash_takes_none(ctx: Engine, show: ShowRef) -> None:
    a, b, c = show.seat_ids[:3]
    hold = await ctx.holds.hold(show.show_id, [a, b], "ana@example.org")
    assert hold.status is HoldStatus.ACTIVE and hold.seats == [a, b]
    with pytest.raises(SeatsUnavailable) as refused:
        await ctx.holds.hold(show.show_id, [b, c], "bob@example.org")
    assert refused.value.extra["unavailable"] == [b]
    statuses = await ctx.holds.seat_statuses(show.show_id)
    assert statuses == {a: SeatStatus.HELD, b: SeatStatus.HELD}, "c was not taken by the refused hold"


async def test_a_hold_records_what_is_read_of_it(ctx: Engine, show: ShowRef) -> None:
    """A hold the customer asked for writes the fields its readers use, nothing more (each
    field costs the hold: lua/includes/holds.lua, create_hold)."""
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    record = await ctx.redis.hgetall(ctx.keys.hold(show.show_id, hold.hold_id))
    assert record == {"seats": ",".join(show.seat_ids[:2]), "customer": "ana@example.org", "status": "active",
                      "expires_at": str(hold.expires_at_ms)}


async def test_two_clients_cannot_hold_the_same_seat(ctx: Engine, show: ShowRef) -> None:
    seat = show.seat_ids[5]
    results = await asyncio.gather(
        *(ctx.holds.hold(show.show_id, [seat], f"c{i}@example.org") for i in range(20)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, SeatsUnavailable) for r in results if isinstance(r, Exception))


@pytest.mark.parametrize("seats, problem", [
    ([], "at least one"), (["A1"] * 2, "duplicate"), (["ZZ999"], "not in this hall"), (["A1"] * 11, "at most 10"),
])
async def test_bad_seat_lists_are_refused_before_anything_changes(ctx: Engine, client: httpx.AsyncClient,
                                                                   show: ShowRef, seats: list[str],
                                                                   problem: str) -> None:
    answer = await client.post(f"/v1/shows/{show.show_id}/holds", json={"seats": seats, "customer": "ana@example.org"})
    assert answer.status_code == 422 and problem in str(answer.json()["details"])
    assert await ctx.holds.seat_statuses(show.show_id) == {}


async def test_the_script_refuses_seats_that_would_corrupt_its_counts(ctx: Engine, show: ShowRef) -> None:
    """Called without api/validation.py, hold_seats still refuses what would break the
    show's state: no seat, a seat not in the hall, a seat named twice."""
    assert await ctx.holds.seat_statuses(show.show_id) == {}  # loads the show
    stats = await ctx.redis.hgetall(ctx.keys.stats(show.show_id))
    assert stats
    for seats in ([], [show.seat_ids[0]] * 2, [show.seat_ids[0], "ZZ999"]):
        with pytest.raises(InvalidRequest):
            await ctx.holds.hold(show.show_id, seats, "ana@example.org")
    assert await ctx.holds.seat_statuses(show.show_id) == {}
    assert await ctx.redis.hgetall(ctx.keys.stats(show.show_id)) == stats


async def test_more_than_ten_seats_per_customer_is_refused(ctx: Engine, show: ShowRef) -> None:
    with pytest.raises(LimitExceeded):
        await ctx.holds.hold(show.show_id, show.seat_ids[:11], "ana@example.org")
    await ctx.holds.hold(show.show_id, show.seat_ids[:6], "ana@example.org")
    with pytest.raises(LimitExceeded):
        await ctx.holds.hold(show.show_id, show.seat_ids[6:11], "ana@example.org")
    await ctx.holds.hold(show.show_id, show.seat_ids[6:10], "ana@example.org")
    assert len(await ctx.holds.seat_statuses(show.show_id)) == 10


async def test_release_frees_the_seats_once_and_a_repeat_changes_nothing(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    await ctx.holds.release(hold.hold_id)
    assert await ctx.holds.seat_statuses(show.show_id) == {}
    assert (await ctx.holds.hold_status(hold.hold_id)).status is HoldStatus.RELEASED
    stats = await seat_counts(ctx.redis, ctx.keys, show.show_id)
    # Taken again by someone else: a repeated release (a lost answer, retried) must not free it.
    other = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ben@example.org")
    await ctx.holds.release(hold.hold_id)
    assert (await ctx.holds.hold_status(other.hold_id)).status is HoldStatus.ACTIVE
    assert await ctx.redis.hget(ctx.keys.stats(show.show_id), "held") == "2"
    assert stats["free"] - 2 == (await seat_counts(ctx.redis, ctx.keys, show.show_id))["free"]
    expired = await ctx.holds.hold(show.show_id, show.seat_ids[4:5], "cy@example.org")
    await ctx.gateway.call("sweep", show.show_id, now_ms=expired.expires_at_ms)
    with pytest.raises(HoldNotActive):
        await ctx.holds.release(expired.hold_id)


async def test_guessed_hold_ids_are_not_found(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:1], "ana@example.org")
    forged = hold.hold_id[:-1] + ("A" if hold.hold_id[-1] != "A" else "B")
    for guess in [forged, f"H{show.show_id}-{'a' * 22}-{'b' * 12}", "H1-x", "nonsense"]:
        with pytest.raises(NotFound):
            await ctx.holds.hold_status(guess)
        with pytest.raises(NotFound):
            await ctx.holds.release(guess)


async def test_a_hold_expires_at_its_deadline_even_without_a_sweeper(ctx: Engine, show: ShowRef) -> None:
    hold = await ctx.holds.hold(show.show_id, show.seat_ids[:2], "ana@example.org")
    after_deadline = hold.expires_at_ms + 1
    # Any script that touches the show settles due deadlines first: move its clock.
    await ctx.gateway.call("sweep", show.show_id, now_ms=after_deadline - 2)
    assert len(await ctx.holds.seat_statuses(show.show_id)) == 2
    await ctx.gateway.call("sweep", show.show_id, now_ms=after_deadline)
    assert await ctx.holds.seat_statuses(show.show_id) == {}
    assert (await ctx.holds.hold_status(hold.hold_id)).status is HoldStatus.EXPIRED


async def test_the_sweeper_frees_seats_within_a_second_of_the_deadline(settings: object, show: ShowRef) -> None:
    from boxoffice.engine.wiring import open_engine

    ctx = await open_engine(settings.with_changes(hold_ttl_s=1), background=False)  # type: ignore[attr-defined]
    try:
        # Stopped by close() as the service stops it (wiring.stop_tasks: a cancel can be lost).
        ctx.tasks.append(asyncio.create_task(ctx.sweeper.run_forever(), name="sweeper"))
        holds = [await ctx.holds.hold(show.show_id, [seat], f"c{i}@example.org")
                 for i, seat in enumerate(show.seat_ids[:20])]
        deadline_ms = max(h.expires_at_ms for h in holds)
        # Read nothing of the show: only the sweeper may free the seats. Watch the stats hash.
        stats_key = ctx.keys.stats(show.show_id)

        async def all_freed() -> bool:
            return int(await ctx.redis.hget(stats_key, "held") or 0) == 0

        await eventually(all_freed, timeout_s=10.0, every_s=0.02)
        seconds, micros = await ctx.redis.time()
        freed_at_ms = int(seconds) * 1000 + int(micros) // 1000
        assert freed_at_ms - deadline_ms < 1000
    finally:
        await ctx.close()


async def test_concurrent_sweepers_are_harmless(ctx: Engine, show: ShowRef) -> None:
    holds = [await ctx.holds.hold(show.show_id, [seat], f"c{i}@example.org")
             for i, seat in enumerate(show.seat_ids[:30])]
    later = max(h.expires_at_ms for h in holds) + 1
    results = await asyncio.gather(*(ctx.gateway.call("sweep", show.show_id, now_ms=later) for _ in range(8)))
    assert sum(int(r) for r in results) == 30, "each hold ended exactly once"
    stats = await seat_counts(ctx.redis, ctx.keys, show.show_id)
    assert stats["held"] == 0 and stats["free"] == len(show.seat_ids)


async def test_500_concurrent_clients_on_overlapping_seats(client: httpx.AsyncClient, ctx: Engine,
                                                           show: ShowRef) -> None:
    """No seat held twice; every 201 got exactly its seats; every 409 got nothing and
    named a seat that really was taken by a granted hold."""
    rng = random.Random(5)
    hot = show.seat_ids[:40]
    requests = [rng.sample(hot, rng.randint(1, 4)) for _ in range(500)]

    async def attempt(i: int, seats: list[str]) -> httpx.Response:
        return await client.post(f"/v1/shows/{show.show_id}/holds",
                                 json={"seats": seats, "customer": f"c{i}@example.org"})

    answers = await asyncio.gather(*(attempt(i, seats) for i, seats in enumerate(requests)))
    owner: dict[str, str] = {}
    for seats, answer in zip(requests, answers, strict=True):
        if answer.status_code == 201:
            body = answer.json()
            assert body["seats"] == seats
            for seat in seats:
                assert seat not in owner, f"{seat} held twice"
                owner[seat] = body["hold_id"]
        elif answer.status_code == 503:  # past BOXOFFICE_MAX_IN_FLIGHT at once: nothing done
            assert answer.json()["error"] == "overloaded", answer.text
        else:
            assert answer.status_code == 409, answer.text
    assert sum(a.status_code in (201, 409) for a in answers) >= ctx.settings.max_in_flight, "the bound's worth raced"
    for seats, answer in zip(requests, answers, strict=True):
        if answer.status_code == 409:
            unavailable = answer.json()["unavailable"]
            assert unavailable and set(unavailable) <= set(seats)
            assert all(seat in owner for seat in unavailable)
    seat_map = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
    held = {s["id"] for s in seat_map["seats"] if s["status"] == "held"}
    assert held == set(owner)
    assert seat_map["counts"]["held"] == len(owner)


async def test_a_hold_hash_lasts_while_the_hold_lives_and_a_day_after_it_ends(ctx: Engine, show: ShowRef) -> None:
    """A live hold's hash has no expiry (it ends through a script, or leaves with its show's
    unload); each way a hold ends gives its hash a day (RETENTION_S, lua/includes/context.lua)."""
    day_s = 86400
    released = await ctx.holds.hold(show.show_id, show.seat_ids[:1], "ana@example.org")
    expired = await ctx.holds.hold(show.show_id, show.seat_ids[1:2], "bob@example.org")
    confirmed = await ctx.holds.hold(show.show_id, show.seat_ids[2:3], "cy@example.org")
    holds = (released, expired, confirmed)
    keys = [ctx.keys.hold(show.show_id, hold.hold_id) for hold in holds]
    assert [await ctx.redis.ttl(key) for key in keys] == [-1, -1, -1]
    await ctx.holds.release(released.hold_id)
    await ctx.confirmations.confirm(confirmed.hold_id, "key-1", "tok_ok")
    assert (await ctx.holds.hold_status(expired.hold_id, now_ms=expired.expires_at_ms + 1)).status is \
        HoldStatus.EXPIRED
    for key in keys:
        assert day_s - 60 < await ctx.redis.ttl(key) <= day_s
