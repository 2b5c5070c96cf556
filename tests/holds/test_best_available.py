"""Best available: a hold by count (lua/hold_best-1.lua, lua/includes/best.lua).

1. On small random halls (aisles, categories, kinds, taken seats) the script's choice is
   the brute-force model's (tests/support/best_model.py): the best block, or nothing held.
2. 500 concurrent requests on one show: no seat twice, every block side by side, and
   the show fills completely when the requests add up to it.
3. The HTTP contract: one of seats or count, 201, 409 with `unavailable: []`, 429."""

from __future__ import annotations

import asyncio
import itertools
import random
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from boxoffice.engine import seed
from boxoffice.engine.catalog import HallPlan, rank_seats
from boxoffice.engine.errors import SeatsUnavailable, WouldStrandSeat
from boxoffice.engine.redis.gateway import BestRequest, ShowLoad
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.backends import BOTH, drop_prefix
from tests.support.best_model import Place, best_block, best_scattered, places_of
from tests.support.seats import seat_counts, seat_marks
from tests.support.shows import ShowRef

FAR_FUTURE_MS = 4_102_444_800_000  # 2100
_shows = itertools.count(900_000_001)


# -- 1. the script against the model ------------------------------------------------------

@st.composite
def halls(draw: st.DrawFn) -> tuple[list[Any], set[str], set[str], set[str]]:
    """(seat rows as the catalog reads them, seats booked, seats held, seats whose hold
    ends just before the request: free for it, freed by the very call) of a small hall."""
    rows = []
    for r, label in enumerate("ABCD"[:draw(st.integers(1, 4))]):
        x = 0
        for number in range(1, draw(st.integers(1, 9)) + 1):
            x += draw(st.sampled_from([2, 2, 2, 4]))  # now and then an aisle: a gap of two pitches
            category = draw(st.sampled_from(["standard", "premium"]))
            kind = draw(st.sampled_from(["standard"] * 6 + ["wheelchair", "companion"]))
            rows.append((f"{label}{number}", label, number, category, kind, x, r * 3))
    ids = [r[0] for r in rows]
    taken = draw(st.lists(st.sampled_from(ids), unique=True, max_size=len(ids)))
    split, ending = sorted([draw(st.integers(0, len(taken))), draw(st.integers(0, len(taken)))])
    return rows, set(taken[:split]), set(taken[split:ending]), set(taken[ending:])


requests = st.builds(BestRequest, count=st.integers(1, 4),
                     category=st.sampled_from([None, "standard", "premium"]),
                     kind=st.sampled_from([None, None, None, "wheelchair", "companion"]),
                     together=st.sampled_from([True, True, False]))


def expected_choice(seats: list[Place], free: set[str], want: BestRequest) -> list[str] | None:
    kind = want.kind or "standard"
    eligible = {s.id for s in seats if s.id in free and s.kind == kind
                and want.category in (None, s.category)}
    if want.together:
        return best_block(seats, eligible, free, want.count)
    return best_scattered(seats, eligible, want.count)


async def load_hall(ctx: Engine, rows: list[Any], booked: set[str], held: set[str],
                    ending: set[str]) -> tuple[int, list[Place]]:
    seats = rank_seats(rows)
    plan = HallPlan(0, tuple(seats), {s.id: s for s in seats})
    places = plan.row_places()
    show_id = next(_shows)
    layout = [(s.id, f"{s.category}|{s.row}|{places[s.id]}|{s.rank}|{s.kind}") for s in seats]
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", layout,
                                                  [(s, "bk_" + "x" * 22) for s in sorted(booked)]))
    if held:
        await ctx.gateway.hold_seats(show_id, f"H{uuid.uuid4().hex}", "taker@example.org", 1000, sorted(held))
    if ending:
        # Held long enough ago that the hold's deadline has passed when the request comes.
        past = int((await ctx.redis.time())[0]) * 1000 - ctx.gateway.hold_ttl_ms - 2000
        await ctx.gateway.hold_seats(show_id, f"H{uuid.uuid4().hex}", "early@example.org", 1000, sorted(ending),
                                     now_ms=past)
    return show_id, places_of(seats, places)


def test_the_choice_is_the_models_best(settings: Settings) -> None:
    loop = asyncio.new_event_loop()
    ctx = loop.run_until_complete(open_engine(settings, background=False))

    @given(hall=halls(), want=requests)
    @hypothesis_settings(max_examples=150, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])
    def check(hall: tuple[list[Any], set[str], set[str], set[str]], want: BestRequest) -> None:
        rows, booked, held, ending = hall
        show_id, seats = loop.run_until_complete(load_hall(ctx, rows, booked, held, ending))
        free = {s.id for s in seats} - booked - held
        expected = expected_choice(seats, free, want)
        taken_before = {seat: value for seat, value in loop.run_until_complete(
            seat_marks(ctx.redis, ctx.keys, show_id)).items() if seat not in ending}
        call = ctx.gateway.hold_best(show_id, f"H{uuid.uuid4().hex}", "ana@example.org", 10, want)
        if expected is None:
            with pytest.raises(SeatsUnavailable):
                loop.run_until_complete(call)
            after = loop.run_until_complete(seat_marks(ctx.redis, ctx.keys, show_id))
            assert after == taken_before, "nothing is held when no choice fits"
            return
        chosen = list(loop.run_until_complete(call).seats)
        assert chosen == expected, (want, chosen, expected)
        assert set(chosen) <= free

    try:
        check()
    finally:
        loop.run_until_complete(ctx.redis.flushdb() if settings.embedded else drop_prefix(ctx))
        loop.run_until_complete(ctx.close())
        loop.close()


def test_the_model_prefers_a_block_that_strands_nobody() -> None:
    row = [Place(f"A{n}", "A", n, rank, "standard")
           for n, rank in zip(range(1, 7), [5, 1, 0, 2, 3, 4], strict=True)]
    free = {s.id for s in row}
    # A2-A3 ranks best (1) but leaves A1 alone against the wall; A3-A4 (2) strands nobody.
    assert best_block(row, free, free, 2) == ["A3", "A4"]


# -- 2. many at once ----------------------------------------------------------------------

async def seeded_hall(ctx: Engine, seats: int) -> tuple[int, HallPlan]:
    """A show of a hall as the demo seed draws them (aisles, categories, kinds), in Redis only."""
    rows = [r[1:] for r in seed.hall_seats(1, seats, random.Random(seats))]
    ranked = rank_seats(rows)
    plan = HallPlan(0, tuple(ranked), {s.id: s for s in ranked})
    places = plan.row_places()
    show_id = next(_shows)
    layout = [(s.id, f"{s.category}|{s.row}|{places[s.id]}|{s.rank}|{s.kind}") for s in ranked]
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", layout, []))
    return show_id, plan


async def hold_all(ctx: Engine, show_id: int, wants: list[BestRequest], tag: str) -> list[Any]:
    return await asyncio.gather(*(ctx.gateway.hold_best(show_id, f"H{tag}{i}-{uuid.uuid4().hex}",
                                                         f"{tag}{i}@example.org", 10, want)
                                  for i, want in enumerate(wants)), return_exceptions=True)


async def test_500_concurrent_requests_never_share_a_seat_and_fill_the_show(ctx: Engine) -> None:
    show_id, plan = await seeded_hall(ctx, 2000)
    places = plan.row_places()
    wants = [BestRequest(1 + i % 4) for i in range(500)]
    answers = await hold_all(ctx, show_id, wants, "c")
    assert not [a for a in answers if isinstance(a, BaseException)], "1,250 seats fit in 2,000"
    seats = [s for held in answers for s in held.seats]
    assert len(seats) == len(set(seats)), "no seat twice"
    for held, want in zip(answers, wants, strict=True):
        block = [plan.by_id[s] for s in held.seats]
        assert len(block) == want.count and len({s.row for s in block}) == 1
        assert len({s.category for s in block}) == 1 and {s.kind for s in block} == {"standard"}
        spots = sorted(places[s.id] for s in block)
        assert spots == list(range(spots[0], spots[0] + want.count)), "side by side"
    taken = await seat_marks(ctx.redis, ctx.keys, show_id)
    assert set(taken) == set(seats) and all(v.startswith("h:") for v in taken.values())
    # The rest, anywhere (together: false), in requests adding up to every free seat of each kind.
    left = Counter(s.kind for s in plan.seats if s.id not in taken)
    rest = [BestRequest(min(4, n - k), kind=None if kind == "standard" else kind, together=False)
            for kind, n in left.items() for k in range(0, n, 4)]
    more = await hold_all(ctx, show_id, rest, "r")
    assert not [a for a in more if isinstance(a, BaseException)], more
    everything = seats + [s for held in more for s in held.seats]
    assert sorted(everything) == sorted(s.id for s in plan.seats), "every seat exactly once"
    stats = await seat_counts(ctx.redis, ctx.keys, show_id)
    assert stats["free"] == 0 and stats["held"] == len(plan.seats)
    with pytest.raises(SeatsUnavailable):
        await ctx.gateway.hold_best(show_id, "H-full", "late@example.org", 10, BestRequest(1, together=False))


# -- 3. the HTTP contract -----------------------------------------------------------------

both = pytest.mark.parametrize("backend", BOTH, indirect=True)


@both
async def test_a_hold_by_count_answers_the_chosen_seats(client: httpx.AsyncClient, ctx: Engine,
                                                        show: ShowRef) -> None:
    plan = await ctx.catalog.hall_plan(show.hall_id)
    answer = await client.post(f"/v1/shows/{show.show_id}/holds", json={"count": 4, "customer": "ana@example.org"})
    assert answer.status_code == 201, answer.text
    hold = answer.json()
    assert len(hold["seats"]) == 4 and hold["status"] == "active" and hold["ttl_s"] > 0
    assert len({plan.by_id[s].row for s in hold["seats"]}) == 1
    again = await client.get(f"/v1/holds/{hold['hold_id']}")
    assert again.json()["seats"] == hold["seats"]
    seat_map = (await client.get(f"/v1/shows/{show.show_id}/seats")).json()
    assert {s["id"] for s in seat_map["seats"] if s["status"] == "held"} == set(hold["seats"])


@both
async def test_a_repeated_request_with_its_key_answers_the_first_hold(client: httpx.AsyncClient,
                                                                      show: ShowRef) -> None:
    headers = {"Idempotency-Key": "best-" + uuid.uuid4().hex}
    body = {"count": 3, "customer": "ana@example.org", "together": False}
    first = await client.post(f"/v1/shows/{show.show_id}/holds", json=body, headers=headers)
    second = await client.post(f"/v1/shows/{show.show_id}/holds", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json()["hold_id"] == first.json()["hold_id"] and second.json()["seats"] == first.json()["seats"]


@both
@pytest.mark.parametrize("body, field", [
    ({"seats": ["A1"], "count": 1}, "seats"),
    ({}, "seats"),
    ({"count": 0}, "count"), ({"count": 11}, "count"), ({"count": "2"}, "count"), ({"count": True}, "count"),
    ({"count": 2, "together": "yes"}, "together"), ({"count": 2, "kind": "sofa"}, "kind"),
    ({"count": 2, "category": "Not A Category"}, "category"),
    ({"seats": ["A1"], "category": "standard"}, "category"),
])
async def test_one_of_seats_or_count(client: httpx.AsyncClient, show: ShowRef, body: dict[str, Any],
                                     field: str) -> None:
    answer = await client.post(f"/v1/shows/{show.show_id}/holds", json={**body, "customer": "ana@example.org"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert field in {d["field"] for d in answer.json()["details"]}


@both
async def test_an_unknown_category_is_refused(client: httpx.AsyncClient, show: ShowRef) -> None:
    answer = await client.post(f"/v1/shows/{show.show_id}/holds",
                               json={"count": 2, "customer": "ana@example.org", "category": "balcony"})
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_request"


@both
async def test_no_fitting_choice_answers_409_and_holds_nothing(client: httpx.AsyncClient, ctx: Engine,
                                                               show: ShowRef) -> None:
    plan = await ctx.catalog.hall_plan(show.hall_id)
    # Every other seat taken: no two free seats side by side anywhere.
    taken = [s.id for s in plan.seats if s.number % 2 == 0]
    for i in range(0, len(taken), 10):
        await ctx.holds.hold(show.show_id, taken[i:i + 10], f"t{i}@example.org")
    before = await seat_marks(ctx.redis, ctx.keys, show.show_id)
    answer = await client.post(f"/v1/shows/{show.show_id}/holds", json={"count": 2, "customer": "ana@example.org"})
    assert answer.status_code == 409, answer.text
    body = answer.json()
    assert body["error"] == "seats_unavailable" and body["unavailable"] == []
    assert body["waitlist"] == {"possible": True, "length": 0}
    assert await seat_marks(ctx.redis, ctx.keys, show.show_id) == before
    apart = await client.post(f"/v1/shows/{show.show_id}/holds",
                              json={"count": 2, "customer": "ana@example.org", "together": False})
    assert apart.status_code == 201 and len(apart.json()["seats"]) == 2


@both
async def test_the_customer_limit_counts_holds_by_count(client: httpx.AsyncClient, show: ShowRef) -> None:
    url = f"/v1/shows/{show.show_id}/holds"
    first = await client.post(url, json={"count": 8, "customer": "ana@example.org", "together": False})
    assert first.status_code == 201
    answer = await client.post(url, json={"count": 3, "customer": "ana@example.org"})
    assert answer.status_code == 429 and answer.json()["error"] == "limit_exceeded"
    assert (await client.post(url, json={"count": 2, "customer": "ana@example.org"})).status_code == 201


@both
async def test_a_closed_show_holds_nothing_by_count(client: httpx.AsyncClient, ctx: Engine, show: ShowRef) -> None:
    await ctx.holds.close_show(show.show_id)
    try:
        answer = await client.post(f"/v1/shows/{show.show_id}/holds", json={"count": 2, "customer": "a@b.org"})
        assert answer.status_code == 409 and answer.json()["error"] == "show_closed"
    finally:
        await ctx.catalog.set_show_status(show.show_id, "open")


@both
async def test_seats_a_waiter_could_use_are_not_offered(ctx: Engine, show: ShowRef) -> None:
    plan = await ctx.catalog.hall_plan(show.hall_id)
    categories = sorted({s.category for s in plan.seats})
    # Fill the hall, then free one block: a waiter for any seat gets it, a newcomer nothing.
    ids = [s.id for s in plan.seats]
    holds = [await ctx.holds.hold(show.show_id, ids[i:i + 10], f"f{i}@example.org")
             for i in range(0, len(ids), 10)]
    await ctx.waitlist.join(show.show_id, "wait@example.org", 2, categories[0])
    with pytest.raises(SeatsUnavailable):
        await ctx.holds.hold_best(show.show_id, BestRequest(1, categories[0]), "new@example.org")
    await ctx.holds.release(holds[0].hold_id)
    with pytest.raises(SeatsUnavailable):
        await ctx.holds.hold_best(show.show_id, BestRequest(1, categories[0]), "new@example.org")


async def test_a_show_loaded_before_kinds_and_numbering_is_searched_on_the_seats_hash(ctx: Engine) -> None:
    """A show an older library loaded: layout values without a kind, no seat numbering,
    no status map, no stamp. The first search numbers it (statusmap.lua); every seat is standard."""
    show_id = next(_shows)
    layout = [(f"A{n}", f"standard|A|{n}|{rank}") for n, rank in zip(range(1, 6), [4, 2, 0, 1, 3], strict=True)]
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", layout, [("A3", "bk_" + "x" * 22)]))
    keys = ctx.keys.show_keys(show_id)
    base = ctx.keys.show_base(show_id)
    await ctx.redis.delete(base + "seatindex", base + "statusmap")
    await ctx.redis.hdel(keys[0], "layout_stamp")
    held = await ctx.gateway.hold_best(show_id, "H-old", "ana@example.org", 10, BestRequest(2))
    assert list(held.seats) == ["A4", "A5"], "A1-A2 ranks worse (6 against 4)"
    # Numbered now (a seat map read does it): the parsed layout follows the new numbering.
    await ctx.gateway.index_seats(show_id, [s for s, _ in layout], None)
    held = await ctx.gateway.hold_best(show_id, "H-old2", "bob@example.org", 10, BestRequest(2))
    assert list(held.seats) == ["A1", "A2"]


# -- explicit holds in a show that keeps no stranded seats --------------------------------

async def test_an_explicit_hold_that_strands_a_seat_is_refused_where_the_show_says_so(
        client: httpx.AsyncClient, ctx: Engine) -> None:
    show_id = next(_shows)
    # One row: A1..A5, an aisle, A6..A7.
    layout = [(f"A{n}", f"standard|A|{place}|{n}|standard")
              for n, place in zip(range(1, 8), [1, 2, 3, 4, 5, 7, 8], strict=True)]
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", layout, [], no_stranded_seats=True))

    async def hold(*seats: str) -> Any:
        return await ctx.gateway.hold_seats(show_id, f"H{uuid.uuid4().hex}", "ana@example.org", 10, list(seats))

    for seats, alone in [(["A2"], "A1"), (["A1", "A3"], "A2"), (["A6"], "A7"), (["A4"], "A5")]:
        with pytest.raises(WouldStrandSeat) as refused:
            await hold(*seats)
        assert refused.value.extra["seat"] == alone and isinstance(refused.value, WouldStrandSeat)
    assert await seat_marks(ctx.redis, ctx.keys, show_id) == {}, "nothing was held"
    await hold("A1", "A2")
    await hold("A6", "A7")
    with pytest.raises(WouldStrandSeat):
        await hold("A4")  # leaves A3 alone beside A2, and A5 against the aisle
    await hold("A3", "A4", "A5")


async def test_shows_keep_explicit_holds_as_they_were_by_default(ctx: Engine) -> None:
    show_id = next(_shows)
    layout = [(f"A{n}", f"standard|A|{n}|{n}|standard") for n in range(1, 4)]
    await ctx.gateway.load_show(show_id, ShowLoad(FAR_FUTURE_MS, "open", layout, []))
    await ctx.gateway.hold_seats(show_id, "H-mid", "ana@example.org", 10, ["A2"])


@both
async def test_the_setting_comes_from_the_catalog(client: httpx.AsyncClient, ctx: Engine, show: ShowRef) -> None:
    from sqlalchemy import text

    plan = await ctx.catalog.hall_plan(show.hall_id)
    first_row = [s for s in plan.seats if s.row == plan.seats[0].row]
    async with ctx.sql.begin() as conn:
        await conn.execute(text("UPDATE shows SET no_stranded_seats = 1 WHERE id = :id"), {"id": show.show_id})
    try:
        answer = await client.post(f"/v1/shows/{show.show_id}/holds",
                                   json={"seats": [first_row[1].id], "customer": "ana@example.org"})
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "would_strand_seat" and answer.json()["seat"] == first_row[0].id
    finally:
        async with ctx.sql.begin() as conn:
            await conn.execute(text("UPDATE shows SET no_stranded_seats = 0 WHERE id = :id"), {"id": show.show_id})
