"""The waiter's eta (docs/WAITLIST.md, "eta_s"): the estimator on its own, and the status
endpoint answering a number when holds ahead may free seats and null when it cannot tell."""

from __future__ import annotations

import httpx
import pytest

from boxoffice.engine.waitlist import EXACT_UP_TO, PRIOR_UNPAID_SHARE, HoldsAhead, estimate_eta_s, unpaid_share
from boxoffice.engine.wiring import Engine
from tests.waitlist.test_waitlist import customer, fill, small_show, t0  # noqa: F401 - t0 is a fixture

NOW = 1_000_000


def at(seconds: float) -> int:
    return NOW + int(seconds * 1000)


def test_no_wait_when_the_seats_are_free_already() -> None:
    assert estimate_eta_s(3, 3, [], 0.5, NOW) == 0
    assert estimate_eta_s(3, 5, [(at(10), 2)], 0.5, NOW) == 0


def test_a_hold_that_surely_ends_unpaid_frees_its_seats_at_its_deadline() -> None:
    assert estimate_eta_s(2, 0, [(at(30), 2), (at(90), 2)], 1.0, NOW) == 30
    assert estimate_eta_s(3, 0, [(at(30), 2), (at(90), 2)], 1.0, NOW) == 90
    assert estimate_eta_s(3, 1, [(at(30), 2), (at(90), 2)], 1.0, NOW) == 30, "free seats count"
    assert estimate_eta_s(1, 0, [(at(29.2), 1)], 1.0, NOW) == 30, "rounded up: never too hopeful"
    assert estimate_eta_s(1, 0, [(NOW - 500, 1)], 1.0, NOW) == 0, "a deadline just passed: due now"


def test_the_eta_is_the_median_deadline_of_enough_seats_coming_back() -> None:
    singles = [(at(10 * (i + 1)), 1) for i in range(10)]
    # one seat, each hold ends unpaid with 0.3: P(at least one back) after k holds is 1 - 0.7^k,
    # 0.3, 0.51 -> the second deadline
    assert estimate_eta_s(1, 0, singles, 0.3, NOW) == 20
    # three seats: P(Binomial(k, 0.3) >= 3) passes one half at k = 9 (0.537; k = 8: 0.448)
    assert estimate_eta_s(3, 0, singles, 0.3, NOW) == 90
    # a hold of four seats gives all four or none: wanting 2 with share 0.6 -> its deadline
    assert estimate_eta_s(2, 0, [(at(40), 4)], 0.6, NOW) == 40
    assert estimate_eta_s(2, 0, [(at(40), 4)], 0.4, NOW) is None, "more likely never than by then"


def test_the_eta_is_unknown_when_it_cannot_be_told() -> None:
    assert estimate_eta_s(1, 0, [], 0.5, NOW) is None, "no hold may free a seat"
    assert estimate_eta_s(1, 0, [(at(10), 5)], 0.0, NOW) is None, "every hold gets paid"
    assert estimate_eta_s(4, 0, [(at(10), 1), (at(20), 1)], 1.0, NOW) is None, "not enough seats held"
    assert estimate_eta_s(1, 0, [(at(100), 1)], 1.0, NOW, starts_at_ms=at(60)) is None, "after the show starts"
    assert estimate_eta_s(1, 0, [(at(50), 1)], 1.0, NOW, starts_at_ms=at(60)) == 50


def test_long_queues_use_the_normal_approximation() -> None:
    holds = [(at(i + 1), 2) for i in range(1000)]
    # 500 seats needed, 2 seats * 0.5 expected per hold: the 500th deadline
    assert estimate_eta_s(500, 0, holds, 0.5, NOW) == 500
    # where the exact computation still applies, the approximation (mean) is close to it
    exact = estimate_eta_s(EXACT_UP_TO, 0, holds, 0.5, NOW)
    assert exact is not None and abs(exact - EXACT_UP_TO) <= 2


def test_the_unpaid_share_starts_from_the_prior_and_follows_the_measurements() -> None:
    assert unpaid_share(0, 0) == pytest.approx(PRIOR_UNPAID_SHARE)
    assert unpaid_share(1000, 0) < 0.01
    assert unpaid_share(0, 1000) > 0.99
    assert unpaid_share(10, 10) == pytest.approx((10 + PRIOR_UNPAID_SHARE * 10) / 30)


def test_the_holds_ahead_are_counted_for_the_entry_s_category() -> None:
    holds = HoldsAhead.parse([NOW, str(at(10)), "standard=2,vip=1", str(at(20)), "vip=3", str(at(-1)), "standard=1"])
    assert holds.deadlines(None, NOW) == [(at(10), 3), (at(20), 3)], "any category: every seat; past ones dropped"
    assert holds.deadlines("standard", NOW) == [(at(10), 2)]
    assert holds.deadlines("vip", NOW) == [(at(10), 1), (at(20), 3)]
    assert holds.deadlines("premium", NOW) == []


async def test_one_read_of_the_holds_serves_every_waiter_of_a_show_and_etas_grow_with_position(
        ctx: Engine) -> None:
    show = await small_show(ctx)
    await fill(ctx, show, [[seat] for seat in show.ref.seat_ids[:30]])
    entries = [await ctx.waitlist.join(show.show_id, customer(), 1, None) for _ in range(12)]
    calls: list[str] = []
    real_run = ctx.scripts.run

    async def counting_run(name: str, keys: list[str], args: list[object]) -> object:
        calls.append(name)
        return await real_run(name, keys, args)

    ctx.scripts.run = counting_run  # type: ignore[method-assign]
    etas = [(await ctx.waitlist.status(e.entry_id)).eta_s for e in entries]
    assert calls.count("entry_status") == 12 and calls.count("eta_holds") == 1
    assert all(isinstance(eta, int) for eta in etas[:3]), etas
    known = [eta for eta in etas if eta is not None]
    assert known == sorted(known), "a later waiter is never told an earlier time"


async def test_the_status_gives_an_eta_from_the_holds_ahead_and_null_when_unknown(
        ctx: Engine, client: httpx.AsyncClient, t0: int) -> None:  # noqa: F811
    show = await small_show(ctx)
    first, second = show.ref.seat_ids[:2], show.ref.seat_ids[2:4]
    early, late = await fill(ctx, show, [first, second], now_ms=t0)
    # The rest of the hall is held for longer: pin it (a confirm in progress), never expected back.
    others = [h for h in await ctx.redis.zrange(ctx.keys.show_keys(show.show_id)[3], 0, -1)
              if h not in (early.hold_id, late.hold_id)]
    for hold_id in others:
        await ctx.gateway.call("confirm_begin", show.show_id, hold_id, 3_600_000, f"at-{hold_id}", now_ms=t0)
    entry = await ctx.waitlist.join(show.show_id, customer(), 2, None, now_ms=t0)
    status = await ctx.waitlist.status(entry.entry_id, now_ms=t0 + 1_000)
    # prior share 0.3 with two holds of two seats: P(at least one back) = 0.51 at the second deadline
    assert status.eta_s == (late.expires_at_ms - (t0 + 1_000) + 999) // 1000
    assert status.position == 1
    # Behind it, a second waiter needs four seats back: more likely never than by then.
    behind = await ctx.waitlist.join(show.show_id, customer(), 2, None, now_ms=t0)
    assert (await ctx.waitlist.status(behind.entry_id, now_ms=t0 + 1_000)).eta_s is None
    # The holds ahead being paid for too: nothing is expected back, the eta is unknown.
    for hold in (early, late):
        await ctx.gateway.call("confirm_begin", show.show_id, hold.hold_id, 3_600_000, "at-2", now_ms=t0 + 2_000)
    assert (await ctx.waitlist.status(entry.entry_id, now_ms=t0 + 2_000)).eta_s is None
    # Over HTTP (Redis's clock, behind the moved one by a little): null answered as null.
    got = (await client.get(f"/v1/waitlist/{entry.entry_id}")).json()
    assert got["eta_s"] is None and got["status"] == "waiting"
