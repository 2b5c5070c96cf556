"""The fair waitlist (docs/API.md, "Waitlist"; docs/WAITLIST.md): joining with a chance,
grants inside the scripts that free seats, waiters first (docs/DESIGN.md), groups, categories,
impossible, expiry at show start and leaving. Time moves with the scripts' now-ms
override (Holds.run(..., now_ms=...)), never with sleeps."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import pytest

from boxoffice.api.shapes import entry_json
from boxoffice.engine.catalog import HallPlan, Seat
from boxoffice.engine.errors import AlreadyWaiting, EntryNotWaiting, NoChance, SeatsUnavailable, ShowClosed
from boxoffice.engine.holds import Hold
from boxoffice.engine.statuses import HoldStatus, SeatStatus
from boxoffice.engine.waitlist import grant_hold_id
from boxoffice.engine.wiring import Engine
from tests.support.backends import BOTH
from tests.support.best_model import Place, best_block, places_of
from tests.support.seats import seat_counts, seat_marks
from tests.support.shows import ShowRef, pick_show

pytestmark = pytest.mark.parametrize("backend", BOTH, indirect=True)

_customers = itertools.count()
REST_LATER_MS = 60_000


# -- helpers shared by the waitlist test files ---------------------------------------


@dataclass(frozen=True)
class SmallShow:
    ref: ShowRef
    plan: HallPlan

    @property
    def show_id(self) -> int:
        return self.ref.show_id

    def seats(self, category: str) -> list[str]:
        return [s.id for s in self.plan.seats if s.category == category]

    def row(self, seat_id: str) -> str:
        return self.plan.by_id[seat_id].row


async def redis_now_ms(ctx: Engine) -> int:
    seconds, micros = await ctx.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


@pytest.fixture
async def t0(ctx: Engine) -> int:
    """The scripts' clock for tests that move time: Redis's own now, then only forward."""
    return await redis_now_ms(ctx)


async def small_show(ctx: Engine) -> SmallShow:
    ref = await pick_show(ctx, 60, 200)
    return SmallShow(ref, await ctx.catalog.hall_plan(ref.hall_id))


def customer() -> str:
    return f"c{next(_customers)}@example.org"


async def fill(ctx: Engine, show: SmallShow, groups: Sequence[Sequence[str]] = (), now_ms: int | None = None,
               ) -> list[Hold]:
    """Holds `groups` (one hold each, in order), then every other free seat in holds of
    ten made a minute later (so they end a minute after the groups' holds): the show is
    full. Answers the holds of `groups`."""
    mine = [await ctx.holds.hold(show.show_id, list(g), customer(), now_ms=now_ms) for g in groups]
    taken = set(await seat_marks(ctx.redis, ctx.keys, show.show_id))
    rest = [s for s in show.ref.seat_ids if s not in taken]
    later = (now_ms if now_ms is not None else await redis_now_ms(ctx)) + REST_LATER_MS
    for i in range(0, len(rest), 10):
        await ctx.holds.hold(show.show_id, rest[i:i + 10], customer(), now_ms=later)
    return mine


async def book_in_redis(ctx: Engine, show_id: int, seats: Sequence[str], now_ms: int | None = None) -> None:
    """Marks seats sold in Redis only (confirm_finish's repair path): sets the scene."""
    await ctx.gateway.call("confirm_finish", show_id, "", f"bk_{'s' * 22}", *seats, now_ms=now_ms)


async def entry_field(ctx: Engine, show_id: int, entry_id: str, name: str) -> str | None:
    value = await ctx.redis.hget(ctx.keys.entry(show_id, entry_id), name)
    return None if value is None else str(value)


async def status_of(ctx: Engine, entry_id: str, now_ms: int | None = None) -> dict[str, object]:
    """The entry as the service answers it (api/shapes.py)."""
    return entry_json(await ctx.waitlist.status(entry_id, now_ms=now_ms))


# -- 1. join --------------------------------------------------------------------------


async def test_a_join_is_accepted_only_while_it_has_a_chance(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    standard = show.seats("standard")
    held = standard[:3]
    await ctx.holds.hold(show.show_id, held, customer())
    await book_in_redis(ctx, show.show_id, [s for s in show.ref.seat_ids if s not in held])
    url = f"/v1/shows/{show.show_id}/waitlist"

    too_many = await client.post(url, json={"count": 4, "customer": customer()})
    assert too_many.status_code == 409 and too_many.json()["error"] == "no_chance"
    wrong_category = await client.post(url, json={"count": 1, "customer": customer(), "category": "vip"})
    assert wrong_category.status_code == 409 and wrong_category.json()["error"] == "no_chance"
    for count, category in [(3, None), (2, "standard")]:
        body = {"count": count, "customer": customer()} | ({"category": category} if category else {})
        joined = await client.post(url, json=body)
        assert joined.status_code == 201, joined.text
        assert joined.json()["status"] == "waiting" and joined.json()["count"] == count
    assert int(await ctx.redis.hget(ctx.keys.stats(show.show_id), "waiting")) == 2


async def test_a_customer_waits_at_most_once_per_show(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    await fill(ctx, show)
    url = f"/v1/shows/{show.show_id}/waitlist"
    first = await client.post(url, json={"count": 1, "customer": "ana@example.org"})
    assert first.status_code == 201
    again = await client.post(url, json={"count": 2, "customer": "ana@example.org"})
    assert again.status_code == 409 and again.json()["error"] == "already_waiting"
    assert (await client.delete(f"/v1/waitlist/{first.json()['entry_id']}")).status_code == 204
    assert (await client.post(url, json={"count": 2, "customer": "ana@example.org"})).status_code == 201


async def test_entries_have_positions_in_arrival_order_and_unguessable_ids(ctx: Engine,
                                                                           client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    await fill(ctx, show)
    entries = [(await client.post(f"/v1/shows/{show.show_id}/waitlist",
                                  json={"count": 1, "customer": customer()})).json() for _ in range(3)]
    assert [e["position"] for e in entries] == [1, 2, 3]
    for position, entry in enumerate(entries, start=1):
        # W<show>-<22 chars: 128 random bits>-<signature>
        assert re.fullmatch(rf"W{show.show_id}-[A-Za-z0-9_-]{{22}}-[A-Za-z0-9_-]{{12}}", entry["entry_id"])
        got = (await client.get(f"/v1/waitlist/{entry['entry_id']}")).json()
        assert got["status"] == "waiting" and got["position"] == position and got["hold"] is None
    assert len({e["entry_id"] for e in entries}) == 3

    real = entries[0]["entry_id"]
    forged = [real[:-1] + ("A" if real[-1] != "A" else "B"), f"W{show.show_id}-{'a' * 22}-{'b' * 12}",
              grant_hold_id(real).replace("G", "H", 1), "W1-x"]
    for guess in forged:
        for answer in [await client.get(f"/v1/waitlist/{guess}"), await client.delete(f"/v1/waitlist/{guess}"),
                       await client.get(f"/v1/waitlist/{guess}/events")]:
            assert answer.status_code == 404, (guess, answer.text)
            assert answer.json()["error"] == "not_found"
    # the grant's hold id is known only to the entry's owner, and is no entry id
    assert (await client.get(f"/v1/waitlist/{grant_hold_id(real)}")).status_code == 404
    # nor a hold before the entry is granted
    not_yet = grant_hold_id(real)
    for answer in [await client.get(f"/v1/holds/{not_yet}"), await client.delete(f"/v1/holds/{not_yet}"),
                   await client.post(f"/v1/holds/{not_yet}/confirm", headers={"Idempotency-Key": "k1"},
                                     json={"payment": {"method": "card", "token": "tok_ok"}})]:
        assert answer.status_code == 404, answer.text
    await client.delete(f"/v1/waitlist/{entries[1]['entry_id']}")
    assert (await client.get(f"/v1/waitlist/{entries[2]['entry_id']}")).json()["position"] == 2


async def test_a_join_is_granted_at_once_when_seats_are_free_for_it(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    answer = await client.post(f"/v1/shows/{show.show_id}/waitlist", json={"count": 3, "customer": "ana@example.org"})
    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == "granted" and body["position"] is None
    hold = body["hold"]
    assert hold["hold_id"] == grant_hold_id(body["entry_id"]) and hold["status"] == "active"
    assert hold["ttl_s"] == ctx.settings.hold_ttl_s and len(hold["seats"]) == 3
    numbers = sorted(show.plan.by_id[s].number for s in hold["seats"])
    assert len({show.row(s) for s in hold["seats"]}) == 1 and numbers == list(range(numbers[0], numbers[0] + 3))
    got = (await client.get(f"/v1/waitlist/{body['entry_id']}")).json()
    assert got["status"] == "granted" and got["hold"]["hold_id"] == hold["hold_id"]
    # its record says where it came from (a hold the customer asked for has no source)
    assert await ctx.redis.hget(ctx.keys.hold(show.show_id, hold["hold_id"]), "source") == "waitlist"
    # the granted hold is an ordinary hold: its owner may release it
    assert (await client.delete(f"/v1/holds/{hold['hold_id']}")).status_code == 204


# -- 2. grants inside the freeing scripts ------------------------------------------------


async def test_a_release_grants_in_arrival_order_with_the_full_hold_time(ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    group = show.ref.seat_ids[:6]
    (hold,) = await fill(ctx, show, [group])
    entries = [await ctx.waitlist.join(show.show_id, customer(), n, None, now_ms=t0) for n in (2, 1, 3, 1)]
    released_at = t0 + 5_000
    await ctx.holds.release(hold.hold_id, now_ms=released_at)

    states = [await status_of(ctx, e.entry_id, released_at) for e in entries]
    assert [s["status"] for s in states] == ["granted", "granted", "granted", "waiting"]
    assert states[3]["position"] == 1
    granted_seats: list[str] = []
    for state, entry in zip(states[:3], entries[:3], strict=True):
        grant = state["hold"]
        assert isinstance(grant, dict)
        assert len(grant["seats"]) == entry.count and grant["ttl_s"] == ctx.settings.hold_ttl_s
        expires = (await ctx.holds.hold_status(grant["hold_id"], now_ms=released_at)).expires_at_ms
        assert expires == released_at + ctx.gateway.hold_ttl_ms, "a grant gets the full hold time"
        granted_seats += grant["seats"]
    assert sorted(granted_seats) == sorted(group)
    end_order = [int(await entry_field(ctx, show.show_id, e.entry_id, "end_seq") or 0) for e in entries[:3]]
    assert end_order == sorted(end_order), "granted in arrival order"


@pytest.mark.parametrize("reader", ["sweep", "seat_status", "entry_status", "eta_holds"])
async def test_an_expiry_grants_inside_whichever_script_settles_it(ctx: Engine, t0: int, reader: str) -> None:
    show = await small_show(ctx)
    (hold,) = await fill(ctx, show, [show.ref.seat_ids[:2]])
    entry = await ctx.waitlist.join(show.show_id, customer(), 2, None, now_ms=t0)
    deadline = hold.expires_at_ms
    args = {"entry_status": [entry.entry_id], "eta_holds": [100]}.get(reader, [])
    await ctx.gateway.call(reader, show.show_id, *args, now_ms=deadline - 1)
    assert await entry_field(ctx, show.show_id, entry.entry_id, "status") == "waiting"
    await ctx.gateway.call(reader, show.show_id, *args, now_ms=deadline)
    assert await entry_field(ctx, show.show_id, entry.entry_id, "status") == "granted"
    grant = await ctx.holds.hold_status(grant_hold_id(entry.entry_id), now_ms=deadline)
    assert sorted(grant.seats) == sorted(show.ref.seat_ids[:2])
    assert grant.expires_at_ms == deadline + ctx.gateway.hold_ttl_ms
    assert (await ctx.holds.hold_status(hold.hold_id, now_ms=deadline)).status is HoldStatus.EXPIRED


async def test_a_confirm_that_failed_past_its_hold_grants_the_seats(ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    late, early = await fill(ctx, show, [show.ref.seat_ids[:2], show.ref.seat_ids[2:4]])
    entry = await ctx.waitlist.join(show.show_id, customer(), 2, None, now_ms=t0)
    pin_ms = 60_000
    # A payment that fails before the deadline: the hold is active again, nothing granted.
    fence = int((await ctx.gateway.call("confirm_begin", show.show_id, early.hold_id, pin_ms, "at-early",
                                         now_ms=t0))[1])
    assert int(await ctx.gateway.call("confirm_abort", show.show_id, early.hold_id, fence, now_ms=t0 + 1)) == 1
    assert await entry_field(ctx, show.show_id, entry.entry_id, "status") == "waiting"
    # A payment still running when the deadline passes (pinned), failing after it.
    pinned_at = late.expires_at_ms - 1_000
    fence = int((await ctx.gateway.call("confirm_begin", show.show_id, late.hold_id, pin_ms, "at-late",
                                         now_ms=pinned_at))[1])
    aborted_at = late.expires_at_ms + 2_000
    outcome = await ctx.gateway.call("confirm_abort", show.show_id, late.hold_id, fence, now_ms=aborted_at)
    assert int(outcome) == 2, "the hold ended in the abort script"
    assert await entry_field(ctx, show.show_id, entry.entry_id, "status") == "granted"
    grant = await ctx.holds.hold_status(grant_hold_id(entry.entry_id), now_ms=aborted_at)
    # Settled before granting: the early hold's deadline had passed too, and it ended first.
    assert early.expires_at_ms <= aborted_at
    assert sorted(grant.seats) == sorted(show.ref.seat_ids[2:4])
    assert grant.expires_at_ms == aborted_at + ctx.gateway.hold_ttl_ms
    statuses = await ctx.holds.seat_statuses(show.show_id, now_ms=aborted_at)
    assert all(seat not in statuses for seat in show.ref.seat_ids[:2]), "the late hold's seats are free"


async def test_granted_seats_sit_together_in_one_row_where_the_hall_allows(ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    rows: dict[str, list[str]] = {}
    for seat in show.plan.seats:
        rows.setdefault(seat.row, []).append(seat.id)
    first_row, second_row = [r for r in rows.values() if len(r) >= 8][:2]
    scattered = [first_row[0], first_row[2], first_row[4], first_row[6]]  # no two adjacent
    block = second_row[3:6]
    # Both holds end in the same sweep: the waiter for 3 gets the block, not scattered seats
    # (some of which rank better).
    await fill(ctx, show, [scattered, block], now_ms=t0)
    together = await ctx.waitlist.join(show.show_id, customer(), 3, None, now_ms=t0)
    await ctx.gateway.call("sweep", show.show_id, now_ms=t0 + ctx.gateway.hold_ttl_ms)
    grant = (await status_of(ctx, together.entry_id, t0 + ctx.gateway.hold_ttl_ms))["hold"]
    assert isinstance(grant, dict) and sorted(grant["seats"]) == sorted(block)


async def test_seats_across_an_aisle_are_not_together(ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    places = show.plan.row_places()
    rows: dict[str, list[Seat]] = {}
    for seat in show.plan.seats:
        rows.setdefault(seat.row, []).append(seat)
    # A pair with consecutive numbers but an aisle between them, in a well-ranked row ...
    across = min(
        ((a, b) for row in rows.values() for a, b in itertools.pairwise(row)
         if b.number == a.number + 1 and places[b.id] > places[a.id] + 1),
        key=lambda pair: pair[0].rank + pair[1].rank,
    )
    # ... and a truly adjacent pair that ranks worse: the front row's first two seats.
    front = rows[show.plan.seats[0].row]
    beside = (front[0], front[1])
    assert places[beside[1].id] == places[beside[0].id] + 1
    assert across[0].rank + across[1].rank < beside[0].rank + beside[1].rank, "the test needs this"
    await fill(ctx, show, [[across[0].id, across[1].id], [beside[0].id, beside[1].id]], now_ms=t0)
    entry = await ctx.waitlist.join(show.show_id, customer(), 2, None, now_ms=t0)
    await ctx.gateway.call("sweep", show.show_id, now_ms=t0 + ctx.gateway.hold_ttl_ms)
    grant = (await status_of(ctx, entry.entry_id, t0 + ctx.gateway.hold_ttl_ms))["hold"]
    assert isinstance(grant, dict) and sorted(grant["seats"]) == sorted([beside[0].id, beside[1].id])


def a_release_where_stale_free_seats_mislead(show: SmallShow) -> tuple[list[str], list[str], list[str]]:
    """Five seats side by side whose release grants two pairs in one call, where the second
    pair's choice depends on the first pair's seats being taken: counted free, they hide a
    stranded seat (the search's stranding penalty, best.lua). Answers the five seats, the
    first grant and the second, as the model of best available chooses them."""
    seats = places_of(show.plan.seats, show.plan.row_places())
    by_row: dict[str, list[Place]] = {}
    for seat in seats:
        by_row.setdefault(seat.row, []).append(seat)
    for row in by_row.values():
        row.sort(key=lambda s: s.place)
        for i in range(len(row) - 4):
            five = row[i:i + 5]
            if five[-1].place - five[0].place != 4 or len({s.category for s in five}) != 1:
                continue
            freed = {s.id for s in five}
            first = best_block(seats, freed, freed, 2)
            assert first is not None
            left = freed - set(first)
            second = best_block(seats, left, left, 2)
            stale = best_block(seats, left, freed, 2)
            if second is not None and second != stale:
                return [s.id for s in five], first, second
    raise AssertionError("the demo hall has no such five seats: the test needs another hall")


async def test_grants_in_one_call_see_the_seats_granted_before_them(ctx: Engine, t0: int) -> None:
    # No one streams the show here: the call notes no seat changes for a change message,
    # so the second grant can learn of the first only from the seats themselves.
    show = await small_show(ctx)
    five, first, second = a_release_where_stale_free_seats_mislead(show)
    (hold,) = await fill(ctx, show, [five], now_ms=t0)
    entries = [await ctx.waitlist.join(show.show_id, customer(), 2, None, now_ms=t0) for _ in range(2)]
    await ctx.holds.release(hold.hold_id, now_ms=t0 + 1)
    grants = [(await status_of(ctx, e.entry_id, t0 + 1))["hold"] for e in entries]
    assert all(isinstance(g, dict) for g in grants)
    assert [sorted(g["seats"]) for g in grants if isinstance(g, dict)] == [sorted(first), sorted(second)]


async def test_without_adjacent_seats_a_group_gets_the_best_ranked_ones(ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    row = [s.id for s in show.plan.seats if s.row == show.plan.seats[0].row]
    scattered = row[0:8:2]  # four seats, no two adjacent
    await fill(ctx, show, [scattered], now_ms=t0)
    entry = await ctx.waitlist.join(show.show_id, customer(), 3, None, now_ms=t0)
    await ctx.gateway.call("sweep", show.show_id, now_ms=t0 + ctx.gateway.hold_ttl_ms)
    grant = (await status_of(ctx, entry.entry_id, t0 + ctx.gateway.hold_ttl_ms))["hold"]
    best = sorted(scattered, key=lambda s: show.plan.by_id[s].rank)[:3]
    assert isinstance(grant, dict) and sorted(grant["seats"]) == sorted(best)


async def test_a_newcomer_cannot_take_a_freed_seat_a_waiter_could_use(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    freed = show.ref.seat_ids[:2]
    (hold,) = await fill(ctx, show, [freed])
    entry = await ctx.waitlist.join(show.show_id, "waiter@example.org", 3, None)
    await ctx.holds.release(hold.hold_id)
    # Two free seats, the waiter needs three: it keeps them; nobody else may hold them.
    assert (await ctx.waitlist.status(entry.entry_id)).status == "waiting"
    refused = await client.post(f"/v1/shows/{show.show_id}/holds",
                                json={"seats": freed, "customer": "newcomer@example.org"})
    assert refused.status_code == 409 and refused.json()["error"] == "seats_unavailable"
    assert sorted(refused.json()["unavailable"]) == sorted(freed)
    assert refused.json()["waitlist"]["length"] == 1
    seat_map = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
    shown = {s["id"]: s["status"] for s in seat_map["seats"]}
    assert all(shown[s] == "held" for s in freed) and seat_map["counts"]["available"] == 0
    # Once nobody waits, the seats are anybody's.
    await ctx.waitlist.leave(entry.entry_id)
    assert (await ctx.holds.seat_statuses(show.show_id)).get(freed[0]) is None
    await ctx.holds.hold(show.show_id, freed, "newcomer@example.org")


async def test_a_group_is_served_all_at_once_or_not_at_all(ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    one, two, three = (show.ref.seat_ids[i:i + 1] for i in range(3))
    holds = await fill(ctx, show, [one, two, three])
    group = await ctx.waitlist.join(show.show_id, customer(), 3, None, now_ms=t0)
    single = await ctx.waitlist.join(show.show_id, customer(), 1, None, now_ms=t0)
    for i, hold in enumerate(holds[:2]):
        await ctx.holds.release(hold.hold_id, now_ms=t0 + i)
        assert (await status_of(ctx, group.entry_id))["status"] == "waiting"
        assert (await status_of(ctx, single.entry_id))["status"] == "waiting", "the later single waits"
    await ctx.holds.release(holds[2].hold_id, now_ms=t0 + 2)
    grant = (await status_of(ctx, group.entry_id))["hold"]
    assert isinstance(grant, dict) and sorted(grant["seats"]) == sorted(one + two + three)
    assert (await status_of(ctx, single.entry_id))["position"] == 1


async def test_a_later_request_of_another_category_is_served_with_seats_the_earlier_cannot_use(
        ctx: Engine, t0: int) -> None:
    show = await small_show(ctx)
    standard, vip = show.seats("standard")[:1], show.seats("vip")[:2]
    h_standard, h_vip1, h_vip2 = await fill(ctx, show, [standard, vip[:1], vip[1:]], now_ms=t0)
    wants_vip = await ctx.waitlist.join(show.show_id, customer(), 2, "vip", now_ms=t0)
    wants_standard = await ctx.waitlist.join(show.show_id, customer(), 1, "standard", now_ms=t0)
    wants_any = await ctx.waitlist.join(show.show_id, customer(), 1, None, now_ms=t0)

    await ctx.holds.release(h_standard.hold_id, now_ms=t0)
    assert (await status_of(ctx, wants_vip.entry_id))["status"] == "waiting"
    assert (await status_of(ctx, wants_standard.entry_id))["hold"]["seats"] == standard  # type: ignore[index]
    # One vip seat: the vip waiter (earlier) keeps it; the later "any" waiter may not take it.
    await ctx.holds.release(h_vip1.hold_id, now_ms=t0)
    assert (await status_of(ctx, wants_any.entry_id))["status"] == "waiting"
    assert (await ctx.holds.seat_statuses(show.show_id, now_ms=t0))[vip[0]] is SeatStatus.HELD
    await ctx.holds.release(h_vip2.hold_id, now_ms=t0)
    assert sorted((await status_of(ctx, wants_vip.entry_id))["hold"]["seats"]) == sorted(vip)  # type: ignore[index]
    assert (await status_of(ctx, wants_any.entry_id))["status"] == "waiting"


# -- 3. chance lost, show start, leaving -------------------------------------------------


async def test_a_booking_that_takes_the_last_chance_makes_the_waiter_impossible(ctx: Engine) -> None:
    show = await small_show(ctx)
    vip = show.seats("vip")
    last_two = vip[:2]
    await book_in_redis(ctx, show.show_id, vip[2:])
    (hold,) = await fill(ctx, show, [last_two])
    wants_vip = await ctx.waitlist.join(show.show_id, customer(), 2, "vip")
    wants_any = await ctx.waitlist.join(show.show_id, customer(), 1, None)
    booking = await ctx.confirmations.confirm(hold.hold_id, "key-1", "tok_ok")
    assert sorted(booking.seats) == sorted(last_two)
    vip_state = await ctx.waitlist.status(wants_vip.entry_id)
    assert vip_state.status == "impossible" and vip_state.position is None
    assert (await ctx.waitlist.status(wants_any.entry_id)).status == "waiting"
    assert (await ctx.waitlist.status(wants_any.entry_id)).position == 1
    with pytest.raises(EntryNotWaiting):
        await ctx.waitlist.leave(wants_vip.entry_id)


async def test_waiting_entries_expire_when_the_show_starts(ctx: Engine) -> None:
    show = await small_show(ctx)
    await fill(ctx, show)
    entries = [await ctx.waitlist.join(show.show_id, customer(), n, None) for n in (1, 2)]
    starts_at = int(await ctx.redis.hget(ctx.keys.show_keys(show.show_id)[0], "starts_at"))
    assert {(await status_of(ctx, e.entry_id))["status"] for e in entries} == {"waiting"}
    # Every hold ends long before the show starts; the first script at the start (the
    # scripts' next wake includes it, so a sweeper comes by) ends the queue, granting nothing.
    await ctx.gateway.call("sweep", show.show_id, now_ms=starts_at)
    for entry in entries:
        assert (await status_of(ctx, entry.entry_id, starts_at))["status"] == "expired"
        with pytest.raises(EntryNotWaiting):
            await ctx.waitlist.leave(entry.entry_id, now_ms=starts_at)
    assert int(await ctx.redis.zcard(ctx.keys.show_keys(show.show_id)[5])) == 0
    with pytest.raises(ShowClosed):
        await ctx.waitlist.join(show.show_id, customer(), 1, None, now_ms=starts_at + 1)


async def test_leaving_is_immediate_and_hands_claimed_seats_on(ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await small_show(ctx)
    (hold,) = await fill(ctx, show, [show.ref.seat_ids[:2]])
    first = await ctx.waitlist.join(show.show_id, customer(), 3, None)
    second = await ctx.waitlist.join(show.show_id, customer(), 2, None)
    await ctx.holds.release(hold.hold_id)  # two seats: the first keeps them, needing three
    assert (await ctx.waitlist.status(second.entry_id)).status == "waiting"
    assert (await client.delete(f"/v1/waitlist/{first.entry_id}")).status_code == 204
    assert (await client.get(f"/v1/waitlist/{first.entry_id}")).json()["status"] == "cancelled"
    again = await client.delete(f"/v1/waitlist/{first.entry_id}")
    assert again.status_code == 204, "leaving again answers the first leave's outcome"
    granted = (await client.get(f"/v1/waitlist/{second.entry_id}")).json()
    assert granted["status"] == "granted" and sorted(granted["hold"]["seats"]) == sorted(show.ref.seat_ids[:2])


async def test_the_engine_raises_the_contract_errors_of_join(ctx: Engine) -> None:
    show = await small_show(ctx)
    await fill(ctx, show)
    await ctx.waitlist.join(show.show_id, "ana@example.org", 1, None)
    with pytest.raises(AlreadyWaiting):
        await ctx.waitlist.join(show.show_id, "ana@example.org", 1, None)
    with pytest.raises(SeatsUnavailable):  # a full show
        await ctx.holds.hold(show.show_id, show.ref.seat_ids[:1], customer())
    await book_in_redis(ctx, show.show_id, show.ref.seat_ids[:-1])
    with pytest.raises(NoChance):
        await ctx.waitlist.join(show.show_id, customer(), 2, None)


async def test_a_hold_whose_seats_a_repair_sold_still_ends_and_the_queue_goes_on(ctx: Engine, t0: int) -> None:
    """A hold left with no seat of its own (the reconciler sold them) frees nothing at its
    deadline; that must not break the script that settles it (Lua's -0 once did)."""
    show = await small_show(ctx)
    sold, other = await fill(ctx, show, [show.ref.seat_ids[:2], show.ref.seat_ids[2:3]], now_ms=t0)
    entry = await ctx.waitlist.join(show.show_id, customer(), 1, None, now_ms=t0)
    await book_in_redis(ctx, show.show_id, sold.seats, now_ms=t0)
    await ctx.gateway.call("sweep", show.show_id, now_ms=sold.expires_at_ms)
    assert (await status_of(ctx, entry.entry_id, sold.expires_at_ms))["hold"]["seats"] == other.seats  # type: ignore[index]
    stats = await seat_counts(ctx.redis, ctx.keys, show.show_id)
    assert (stats["free"], stats["booked"]) == (0, 2)
    assert stats["held"] == len(show.ref.seat_ids) - 2
