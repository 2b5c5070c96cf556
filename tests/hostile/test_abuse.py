"""Abuse limits (docs/API.md): fixed windows per customer and per client address, each per
show, on holds and waitlist joins, counted inside the hold and join scripts (no round trip
of their own), 429 limit_exceeded with Retry-After. They hold
across app instances sharing Redis; one customer cycling holds and releases never keeps
more than 10 seats of a show; a bot hammering one show does not starve another."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from boxoffice.api.app import create_app
from boxoffice.engine.settings import Settings
from boxoffice.engine.wiring import Engine, open_engine
from tests.support.shows import ShowRef, pick_show
from tests.support.state import nothing_changes


@contextlib.asynccontextmanager
async def instances(settings: Settings, count: int) -> AsyncIterator[list[Engine]]:
    """`count` engine contexts of their own (own connections) on the same Redis and prefix."""
    contexts = [await open_engine(settings, background=False) for _ in range(count)]
    try:
        yield contexts
    finally:
        for context in contexts:
            await context.close()


def client_of(context: Engine, address: str) -> httpx.AsyncClient:
    """An HTTP client of one app instance, seen by it as coming from `address`."""
    transport = httpx.ASGITransport(app=create_app(context.settings, engine=context), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"] == "limit_exceeded" and answer.json()["message"]
    assert 1 <= int(answer.headers["retry-after"]) <= 60


async def hold(client: httpx.AsyncClient, show_id: int, seats: list[str], customer: str) -> httpx.Response:
    return await client.post(f"/v1/shows/{show_id}/holds", json={"seats": seats, "customer": customer})


async def hold_and_release(client: httpx.AsyncClient, show_id: int, seat: str, customer: str) -> httpx.Response:
    answer = await hold(client, show_id, [seat], customer)
    if answer.status_code == 201:
        assert (await client.delete(f"/v1/holds/{answer.json()['hold_id']}")).status_code == 204
    return answer


async def test_the_customer_limit_holds_across_two_app_instances(settings: Settings, ctx: Engine,
                                                                show: ShowRef) -> None:
    other = await pick_show(ctx, min_seats=len(show.seat_ids) + 1)
    limits = settings.with_changes(rate_limit_holds_per_min=3, rate_limit_ip_per_min=0)
    async with instances(limits, 2) as (one, two):
        a, b = client_of(one, "198.51.100.1"), client_of(two, "198.51.100.2")
        async with a, b:
            seats = show.seat_ids
            for client, seat in ((a, seats[0]), (b, seats[1]), (a, seats[2])):
                assert (await hold_and_release(client, show.show_id, seat, "eve@example.org")).status_code == 201
            async with nothing_changes(ctx, [show.show_id]):
                limited(await hold(b, show.show_id, [seats[3]], "eve@example.org"))
                limited(await hold(a, show.show_id, [seats[3]], "eve@example.org"))
                # Holds and waitlist joins share the customer's budget.
                limited(await b.post(f"/v1/shows/{show.show_id}/waitlist",
                                     json={"count": 1, "customer": "eve@example.org"}))
            # Per customer and per show: nobody else is limited, nor eve on another show.
            assert (await hold_and_release(b, show.show_id, seats[4], "fay@example.org")).status_code == 201
            assert (await hold_and_release(a, other.show_id, other.seat_ids[0], "eve@example.org")).status_code == 201


async def test_the_address_limit_holds_across_two_app_instances_per_show(settings: Settings, ctx: Engine,
                                                                         show: ShowRef) -> None:
    other = await pick_show(ctx, min_seats=len(show.seat_ids) + 1)
    limits = settings.with_changes(rate_limit_holds_per_min=0, rate_limit_ip_per_min=5)
    async with instances(limits, 2) as (one, two):
        bot_a, bot_b = client_of(one, "203.0.113.66"), client_of(two, "203.0.113.66")
        person = client_of(two, "192.0.2.10")
        async with bot_a, bot_b, person:
            seats = show.seat_ids
            # Malformed requests are refused before any script runs (no Redis work): not counted.
            assert (await bot_a.post(f"/v1/shows/{show.show_id}/holds", content=b"{")).status_code == 422
            assert (await bot_b.post(f"/v1/shows/{show.show_id}/waitlist", json={})).status_code == 422
            for i, client in enumerate((bot_a, bot_b, bot_a, bot_b, bot_a)):
                answer = await hold_and_release(client, show.show_id, seats[i], f"bot{i}@example.org")
                assert answer.status_code == 201
            async with nothing_changes(ctx, [show.show_id]):
                limited(await hold(bot_b, show.show_id, [seats[5]], "bot9@example.org"))
                limited(await hold(bot_a, show.show_id, [seats[5]], "bot10@example.org"))
                # Holds and waitlist joins share the address's budget.
                limited(await bot_a.post(f"/v1/shows/{show.show_id}/waitlist",
                                         json={"count": 1, "customer": "bot11@example.org"}))
            assert (await hold_and_release(person, show.show_id, seats[6], "gus@example.org")).status_code == 201
            # Per show: the same address still holds on another show.
            answer = await hold_and_release(bot_a, other.show_id, other.seat_ids[0], "bot12@example.org")
            assert answer.status_code == 201


async def test_one_customer_cycling_holds_never_keeps_more_than_ten_seats(client: httpx.AsyncClient,
                                                                         show: ShowRef) -> None:
    rng = random.Random(3)
    url = f"/v1/shows/{show.show_id}"
    customer = "hoarder@example.org"
    holds: list[dict[str, object]] = []
    refused = 0
    for cycle in range(15):
        taken = [seat for h in holds for seat in h["seats"]]  # type: ignore[attr-defined]
        wanted = rng.sample([s for s in show.seat_ids[:40] if s not in taken], rng.randint(1, 10))
        answer = await hold(client, show.show_id, wanted, customer)
        if len(taken) + len(wanted) <= 10:
            assert answer.status_code == 201, answer.text
            holds.append(answer.json())
        else:
            assert answer.status_code == 429 and answer.json()["error"] == "limit_exceeded", answer.text
            refused += 1
            # Nor through the waitlist: a place in the queue counts as seats too.
            join = await client.post(f"{url}/waitlist", json={"count": 11 - len(taken), "customer": customer})
            assert join.status_code in (422, 429), join.text
        counts = (await client.get(f"{url}/seats")).json()["counts"]
        assert counts["held"] == sum(len(h["seats"]) for h in holds) <= 10, (cycle, counts)  # type: ignore[arg-type]
        if cycle % 4 == 3:  # give everything back and start again
            for h in holds:
                assert (await client.delete(f"/v1/holds/{h['hold_id']}")).status_code == 204
            holds = []
    assert refused >= 3 and (await client.get(f"{url}/seats")).json()["counts"]["held"] <= 10

    # All at once: thirty concurrent one-seat holds by the same customer; ten succeed.
    for h in holds:
        await client.delete(f"/v1/holds/{h['hold_id']}")
    answers = await asyncio.gather(*(hold(client, show.show_id, [seat], customer) for seat in show.seat_ids[50:80]))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 10 and statuses.count(429) == 20, statuses
    assert (await client.get(f"{url}/seats")).json()["counts"]["held"] == 10


async def test_cycling_is_cut_off_by_the_rate_limit(settings: Settings, show: ShowRef) -> None:
    limits = settings.with_changes(rate_limit_holds_per_min=20, rate_limit_ip_per_min=0)
    async with instances(limits, 1) as (one,):
        async with client_of(one, "198.51.100.30") as client:
            answers = [await hold_and_release(client, show.show_id, show.seat_ids[i % 5], "cycler@example.org")
                       for i in range(25)]
    statuses = [a.status_code for a in answers]
    assert statuses[:20] == [201] * 20 and statuses[20:] == [429] * 5, statuses
    limited(answers[-1])


@pytest.mark.parametrize("bot_addresses", [1, 50], ids=["one-address", "many-addresses"])
async def test_a_bot_hammering_one_show_does_not_starve_another(settings: Settings, ctx: Engine, show: ShowRef,
                                                                 bot_addresses: int) -> None:
    other = await pick_show(ctx, min_seats=len(show.seat_ids) + 1)
    # The rate limits alone: with one address all 300 of the bot's requests reach one
    # instance at once, past BOXOFFICE_MAX_IN_FLIGHT (tests/api/test_shedding.py).
    limits = settings.with_changes(rate_limit_holds_per_min=5, rate_limit_ip_per_min=40, max_in_flight=0)
    rng = random.Random(bot_addresses)
    async with instances(limits, 2) as (one, two):
        bots = [client_of(one if i % 2 else two, f"203.0.113.{i + 1}") for i in range(bot_addresses)]
        people = [client_of(two if i % 2 else one, f"192.0.2.{i + 1}") for i in range(10)]
        async with contextlib.AsyncExitStack() as stack:
            for c in [*bots, *people]:
                await stack.enter_async_context(c)

            async def bot(n: int) -> httpx.Response:
                # Random seats, rotating customer names: the worst a single bot operator can do.
                return await hold(bots[n % len(bots)], show.show_id, rng.sample(show.seat_ids[10:], 2),
                                  f"bot{n % 7}@example.org")

            async def person(n: int) -> httpx.Response:
                if n % 2:  # on the other show
                    return await hold(people[n], other.show_id, other.seat_ids[n: n + 1], f"person{n}@example.org")
                return await hold(people[n], show.show_id, show.seat_ids[n: n + 1], f"person{n}@example.org")

            attack = [bot(n) for n in range(300)]
            fair = [person(n) for n in range(10)]
            answers = await asyncio.gather(*attack[:150], *fair, *attack[150:])
    bot_answers = answers[:150] + answers[160:]
    person_answers = answers[150:160]
    # The people's holds, on the other show and on the hammered one, all succeed.
    assert all(a.status_code == 201 for a in person_answers), [a.text for a in person_answers]
    bot_statuses = {a.status_code for a in bot_answers}
    assert bot_statuses <= {201, 409, 429}, bot_statuses
    assert sum(a.status_code == 429 for a in bot_answers) >= 150, "the bot was cut off"
    for answer in bot_answers:
        if answer.status_code == 429 and "too many requests" in answer.json()["message"]:
            limited(answer)
    # Seven customer names, five holds a minute each: the bot's haul is bounded; the other
    # show holds exactly the people's seats.
    bot_seats = set(await ctx.holds.seat_statuses(show.show_id)) - set(show.seat_ids[:10])
    assert len(bot_seats) <= 7 * 5 * 2
    held_other = await ctx.holds.seat_statuses(other.show_id)
    assert sorted(held_other) == sorted(other.seat_ids[n] for n in range(1, 10, 2))


async def test_a_hold_makes_exactly_one_redis_round_trip_with_the_limits_on(
        settings: Settings, ctx: Engine, show: ShowRef) -> None:
    """The limits are counted inside the hold's and the join's own script: with both on
    (the production defaults), the server sees one command from the service for a hold, its
    FCALL, and no command of a limit for either (MONITOR; what a script runs shows as "lua")."""
    import redis.asyncio as aioredis

    defaults = Settings(redis_url=None, database_url=None)
    assert defaults.rate_limit_holds_per_min > 0 and defaults.rate_limit_ip_per_min > 0
    limits = settings.with_changes(rate_limit_holds_per_min=defaults.rate_limit_holds_per_min,
                                   rate_limit_ip_per_min=defaults.rate_limit_ip_per_min)
    async with instances(limits, 1) as (one,), client_of(one, "198.51.100.77") as client:
        url = f"/v1/shows/{show.show_id}"
        # The show loaded and its catalog cached first: a show's first touch is not the path.
        assert (await hold(client, show.show_id, show.seat_ids[:1], "warm@example.org")).status_code == 201
        watcher = aioredis.Redis.from_url(settings.redis_url)
        marker = f"end-of-request-{show.show_id}"
        try:
            # A join for free seats is granted at once; the answer then reads the granted hold.
            for request, expected in (
                    (lambda: hold(client, show.show_id, show.seat_ids[1:3], "ana@example.org"), ["hold_seats"]),
                    (lambda: client.post(f"{url}/waitlist", json={"count": 1, "customer": "bo@example.org"}),
                     ["join_waitlist", "hold_status"])):
                async with watcher.monitor() as monitor:
                    answer = await request()
                    assert answer.status_code == 201, answer.text
                    await watcher.echo(marker)  # everything the request sent comes before it
                    sent = []
                    while True:
                        command = await asyncio.wait_for(monitor.next_command(), 10)
                        if marker in command["command"]:
                            break
                        if command["client_type"] != "lua" and limits.key_prefix in command["command"]:
                            sent.append(command["command"].split(" ")[:2])
                assert [verb.upper() for verb, _ in sent] == ["FCALL"] * len(expected), sent
                assert [function.rsplit("_", 1)[0] for _, function in sent] == expected, sent
        finally:
            await watcher.aclose()
    # The counters exist, in the show's slot, and were counted once per request.
    assert await ctx.redis.get(ctx.keys.rate(show.show_id, "c", "ana@example.org")) == "1"
    assert await ctx.redis.get(ctx.keys.rate(show.show_id, "a", "198.51.100.77")) == "3"
