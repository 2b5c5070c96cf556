"""Observability: /healthz names the dependency that is down, /metrics counts and times
what happened (holds, confirms, expiries, waitlist joins and grants, pool use), and the
per-show stats hash in Redis stays exact through any mix of operations."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from boxoffice.engine.errors import BoxOfficeError
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.sales import redis_now_ms
from tests.support.seats import seat_counts, seat_marks
from tests.support.services import RedisServer, free_port
from tests.support.shows import ShowRef, pick_show

METRIC_LINE = re.compile(r'^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent)."""
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match and match["name"] == name:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
            if found == labels:
                return float(match["value"])
    return 0.0


async def scrape(client: httpx.AsyncClient) -> str:
    answer = await client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return answer.text


def app_client(context: Engine) -> httpx.AsyncClient:
    from boxoffice.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(context.settings, engine=context))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_healthz_answers_ok_then_names_the_dependency_that_is_down(settings: Settings) -> None:
    redis = RedisServer.start()
    contexts = []
    try:
        for_redis = await open_engine(settings.with_changes(redis_url=redis.url), background=False)
        contexts.append(for_redis)
        async with app_client(for_redis) as client:
            healthy = await client.get("/healthz")
            assert healthy.status_code == 200
            assert healthy.json() == {"status": "ok", "checks": {"redis": "ok", "database": "ok"}}
            redis.kill()
            down = await client.get("/healthz")
            assert down.status_code == 503 and down.headers["retry-after"]
            assert down.json()["down"] == ["redis"] and down.json()["checks"]["database"] == "ok"
        # A database nobody listens on (the id-signing secret given, so the context opens).
        no_database = settings.with_changes(database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none",
                                            secret="s" * 64)
        for_database = await open_engine(no_database, background=False)
        contexts.append(for_database)
        async with app_client(for_database) as client:
            down = await client.get("/healthz")
            assert down.status_code == 503 and down.json()["down"] == ["database"]
            assert "database" in down.json()["message"]
    finally:
        for context in contexts:
            await context.close()
        redis.stop()


async def test_metrics_count_and_time_holds_confirms_expiries_joins_and_grants(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    show = await pick_show(ctx, max_seats=100)
    seats = show.seat_ids
    before = await scrape(client)

    async def hold(seat_list: list[str], customer: str) -> httpx.Response:
        return await client.post(f"/v1/shows/{show.show_id}/holds", json={"seats": seat_list, "customer": customer})

    first = (await hold(seats[:2], "ana@example.org")).json()
    assert (await hold(seats[1:3], "bob@example.org")).status_code == 409
    paid = await client.post(f"/v1/holds/{first['hold_id']}/confirm", headers={"Idempotency-Key": "m1"},
                             json={"payment": {"method": "card", "token": "tok_ok"}})
    assert paid.status_code == 201
    # Everything else held by others, then one waiter, served by a release.
    rest = [(await hold(seats[i:i + 10], f"h{i}@example.org")).json() for i in range(2, len(seats), 10)]
    joined = await client.post(f"/v1/shows/{show.show_id}/waitlist", json={"count": 1, "customer": "w@example.org"})
    assert joined.status_code == 201 and joined.json()["status"] == "waiting"
    assert (await client.delete(f"/v1/holds/{rest[0]['hold_id']}")).status_code == 204
    # Every hold still active expires, found 300 ms after the last deadline (the scripts take
    # the clock as an argument): each one 0.3 s late, plus the time between the holds.
    last_deadline = (await ctx.redis.zrange(ctx.keys.show_keys(show.show_id)[3], -1, -1, withscores=True))[0][1]
    await ctx.gateway.call("sweep", show.show_id, now_ms=int(last_deadline) + 300)
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("boxoffice_operations_total", operation="hold", outcome="ok") == 1 + len(rest)
    assert delta("boxoffice_operations_total", operation="hold", outcome="seats_unavailable") == 1
    assert delta("boxoffice_operations_total", operation="confirm", outcome="ok") == 1
    assert delta("boxoffice_operations_total", operation="waitlist_join", outcome="ok") == 1
    assert delta("boxoffice_operations_total", operation="release", outcome="ok") == 1
    assert delta("boxoffice_operation_seconds_count", operation="hold") == 2 + len(rest)
    assert delta("boxoffice_operation_seconds_count", operation="confirm") == 1
    assert delta("boxoffice_waitlist_grants_total") == 1
    assert delta("boxoffice_waitlist_wait_seconds_count") == 1
    assert delta("boxoffice_waitlist_wait_seconds_bucket", le="5.0") == 1, "the waiter waited under 5 s"
    # Ended: the others' holds but the released one, and the waiter's grant.
    expired = (len(rest) - 1) + 1
    assert delta("boxoffice_hold_expiries_total") == expired
    assert delta("boxoffice_hold_expiry_lateness_seconds_count") == expired
    assert delta("boxoffice_hold_expiry_lateness_seconds_bucket", le="0.25") == 0, "none under 0.3 s late"
    assert delta("boxoffice_hold_expiry_lateness_seconds_bucket", le="2.0") == expired
    assert metric(after, "boxoffice_redis_connections_max") == ctx.settings.redis_pool_size
    assert metric(after, "boxoffice_db_connections_open") >= 1
    assert "boxoffice_redis_connections_in_use" in after and "boxoffice_db_connections_in_use" in after


# -- the stats hash ---------------------------------------------------------------------


async def derived_counts(context: Engine, show: ShowRef) -> dict[str, int]:
    """free / held / booked / waiting as the seat state itself says (raw reads: they settle nothing)."""
    keys = context.keys.show_keys(show.show_id)
    taken = await seat_marks(context.redis, context.keys, show.show_id)
    held = sum(value.startswith("h:") for value in taken.values())
    booked = sum(value.startswith("b:") for value in taken.values())
    return {"free": len(show.seat_ids) - held - booked, "held": held, "booked": booked,
            "waiting": int(await context.redis.zcard(keys[5]))}


async def stats_hash(context: Engine, show: ShowRef) -> dict[str, int]:
    counts = await seat_counts(context.redis, context.keys, show.show_id)
    return {name: counts.get(name, 0) for name in ("free", "held", "booked", "waiting")}


@pytest.fixture
async def short_holds(settings: Settings) -> AsyncIterator[Engine]:
    """A context whose holds last 5 s, so that moved clocks expire them within a test."""
    context = await open_engine(settings.with_changes(hold_ttl_s=5, confirm_pin_s=10), background=False)
    yield context
    keys = [k async for k in context.redis.scan_iter(match=f"{context.keys.prefix}:*", count=1000)]
    if keys:
        await context.redis.delete(*keys)
    await context.close()


async def test_the_stats_hash_stays_exact_through_a_random_mix(short_holds: Engine) -> None:
    context = short_holds
    show = await pick_show(context, max_seats=100)
    rng = random.Random(2026)
    now = await redis_now_ms(context)
    holds: list[str] = []
    entries: list[str] = []
    customers = [f"c{i}@example.org" for i in range(12)]
    checked = against_map = 0
    for step in range(260):
        now += rng.choice((0, 0, 0, 200, 1500))  # the clock moves on; holds last 5 s
        action = rng.choices(["hold", "release", "confirm", "join", "leave", "read"], [8, 3, 2, 2, 1, 2])[0]
        try:
            if action == "hold":
                free = [s for s in show.seat_ids if s not in await seat_marks(
                    context.redis, context.keys, show.show_id)]
                wanted = rng.sample(free or show.seat_ids, min(len(free) or 1, rng.randint(1, 4)))
                holds.append((await context.holds.hold(show.show_id, wanted, rng.choice(customers),
                                                           now_ms=now)).hold_id)
            elif action == "release" and holds:
                await context.holds.release(rng.choice(holds), now_ms=now)
            elif action == "confirm" and holds:
                # Confirms run on Redis's own clock: it lags the moved one, which only
                # makes the mix more varied (pins that lapse, sales lost and refunded).
                await context.confirmations.confirm(rng.choice(holds), f"k{step}",
                                                    rng.choice(["tok_ok", "tok_decline"]))
            elif action == "join":
                entry = await context.waitlist.join(show.show_id, rng.choice(customers), rng.randint(1, 3), None,
                                                    now_ms=now)
                entries.append(entry.entry_id)
            elif action == "leave" and entries:
                await context.waitlist.leave(rng.choice(entries), now_ms=now)
            else:
                statuses = await context.holds.seat_statuses(show.show_id, now_ms=now)
                stats = await stats_hash(context, show)
                if stats["waiting"] == 0:  # (with waiters, free seats they could use show as held)
                    seen = Counter(statuses.values())
                    assert (seen["held"], seen["booked"]) == (stats["held"], stats["booked"]), f"step {step}"
                    against_map += 1
        except BoxOfficeError:
            pass  # refused operations must leave the counts exact too
        stats = await stats_hash(context, show)
        assert stats == await derived_counts(context, show), f"step {step} ({action})"
        checked += 1
    assert checked == 260 and against_map > 0
    # Every kind of ending happened along the way.
    final = await context.redis.hgetall(context.keys.stats(show.show_id))
    assert int(final.get("booked", 0)) > 0 and int(final.get("holds_unpaid", 0)) > 0


# -- the checks that must stay zero, and what the alerts of ops/ read --------------------


async def violations(client: httpx.AsyncClient) -> dict[str, float]:
    from boxoffice.engine.metrics import INTEGRITY_CHECKS

    text = await scrape(client)
    found = {check: metric(text, "boxoffice_integrity_violations_total", check=check) for check in INTEGRITY_CHECKS}
    assert all(f'boxoffice_integrity_violations_total{{check="{check}"}}' in text for check in found), \
        "every check is exported, found or not"
    return found


def rise(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {check: after[check] - before[check] for check in after if after[check] != before[check]}


async def test_a_sale_refused_by_postgresql_counts_an_integrity_violation(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    from tests.sales.test_confirm import confirm, hold

    show = await pick_show(ctx)
    seat = show.seat_ids[0]
    sold = await confirm(client, await hold(client, show.show_id, [seat]), "order-1")
    assert sold.status_code == 201, sold.text
    before = await violations(client)
    # Redis forgets the sale (as an old snapshot would): it shows the sold seat free.
    base = ctx.keys.show_base(show.show_id)
    await ctx.redis.hdel(ctx.keys.show_keys(show.show_id)[2], seat)
    await ctx.redis.setrange(base + "statusmap", int(await ctx.redis.hget(base + "seatindex", seat)), "0")
    again = await confirm(client, await hold(client, show.show_id, [seat], "ben@example.org"), "order-2")
    assert again.status_code != 201, "PostgreSQL's UNIQUE (show_id, seat_id) refuses the second sale"
    assert rise(before, await violations(client)) == {"sale_refused": 1}


async def test_a_booking_redis_missed_counts_when_the_reconciler_marks_it(
        ctx: Engine, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from tests.sales.test_confirm import confirm, hold

    show = await pick_show(ctx)
    original = ctx.gateway.confirm_finish
    calls = 0

    async def lost_once(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RedisConnectionError("Redis failed after the commit")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ctx.gateway, "confirm_finish", lost_once)
    before = await violations(client)
    answer = await confirm(client, await hold(client, show.show_id, show.seat_ids[:2]), "order-1")
    assert answer.status_code == 201, "the sale is durable: the answer is the booking"
    report = await ctx.reconciler.reconcile_once(after_start=True)
    assert report.redis_repaired == 1
    assert rise(before, await violations(client)) == {"booking_unmarked": 1}


async def test_a_charge_found_on_a_failed_payment_counts_and_is_refunded(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    from tests.sales.test_confirm import confirm, hold
    from tests.support.sales import audit, eventually

    show = await pick_show(ctx)
    before = await violations(client)
    timed_out = await confirm(client, await hold(client, show.show_id, show.seat_ids[:2]), "order-1", "tok_timeout")
    assert timed_out.status_code == 503, timed_out.text
    await ctx.reconciler.reconcile_once()  # the first look finds nothing: watched on
    await ctx.payments.land_in_flight()  # type: ignore[attr-defined]  # the lost request lands now

    async def refunded() -> bool:
        await ctx.reconciler.reconcile_once()
        return (await audit(ctx)).refunds == 1

    await eventually(refunded, timeout_s=10)
    assert rise(before, await violations(client)) == {"charge_unbooked": 1}


async def test_payments_pending_past_the_grace_are_counted_before_each_pass(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    from tests.sales.test_reconciler import move_back, open_payment

    show = await pick_show(ctx)
    payment = await open_payment(ctx, show)  # a confirm cut off after recording its intent
    await ctx.reconciler.reconcile_once()
    assert metric(await scrape(client), "boxoffice_payments_pending_past_grace") == 0, "within the grace"
    await move_back(ctx, "payments", payment.id, 60, "created_at", "updated_at")
    await ctx.reconciler.reconcile_once()  # counted, then failed (nothing was charged)
    assert metric(await scrape(client), "boxoffice_payments_pending_past_grace") == 1
    await ctx.reconciler.reconcile_once()
    assert metric(await scrape(client), "boxoffice_payments_pending_past_grace") == 0


async def test_seat_states_per_show_and_in_total_are_read_from_redis_at_scrape_time(
        ctx: Engine, client: httpx.AsyncClient) -> None:
    from tests.sales.test_confirm import confirm, hold

    show = await pick_show(ctx)
    paid = await confirm(client, await hold(client, show.show_id, show.seat_ids[:2]), "k-1")
    assert paid.status_code == 201
    rest = show.seat_ids[2:]
    for i in range(0, len(rest), 10):  # sold out: a waiter has to wait
        await hold(client, show.show_id, rest[i : i + 10], f"c{i}@example.org")
    joined = await client.post(f"/v1/shows/{show.show_id}/waitlist", json={"count": 1, "customer": "w@example.org"})
    assert joined.status_code == 201, joined.text
    text = await scrape(client)
    shown = str(show.show_id)
    assert [metric(text, "boxoffice_show_seats", show_id=shown, state=state) for state in ("free", "held", "booked")
            ] == [0, len(rest), 2]
    assert metric(text, "boxoffice_show_waitlist_entries", show_id=shown) == 1
    assert metric(text, "boxoffice_seats", state="held") == len(rest)
    assert metric(text, "boxoffice_waitlist_entries") == 1
    # A show an older release loaded has no `seats` in its stats: the meta's seat_count tells.
    await ctx.redis.hdel(ctx.keys.stats(show.show_id), "seats")
    assert [metric(await scrape(client), "boxoffice_show_seats", show_id=shown, state=state)
            for state in ("free", "held", "booked")] == [0, len(rest), 2]


async def test_the_dependency_gauges_follow_the_probes(settings: Settings) -> None:
    from boxoffice.engine import metrics

    redis = RedisServer.start()
    context = await open_engine(settings.with_changes(redis_url=redis.url), background=False)
    try:
        async with app_client(context) as client:
            metrics.record_dependencies(await context.health())
            text = await scrape(client)
            assert metric(text, "boxoffice_dependency_up", dependency="redis") == 1
            assert metric(text, "boxoffice_dependency_up", dependency="postgresql") == 1
            redis.kill()
            metrics.record_dependencies(await context.health())
            text = await scrape(client)
            assert metric(text, "boxoffice_dependency_up", dependency="redis") == 0
            assert metric(text, "boxoffice_dependency_up", dependency="postgresql") == 1
    finally:
        await context.close()
        redis.stop()
