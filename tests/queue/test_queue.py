"""The release queue (docs/API.md, "Release queue") on the real Redis and a PostgreSQL
database of the admin tests' kind (tests/api/test_admin.py: everything made through the API):
the opening, joining, order, pacing, passes checked inside the hold and join scripts,
the ends (left, expired, sold out, closed) and every ticket told. Time moves with the
scripts' now-ms override, never with sleeps."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from boxoffice.engine.errors import AlreadyQueued, PassRequired, QueueNotOpen, SaleNotOpen, ShowClosed
from boxoffice.engine.redis.gateway import BestRequest
from boxoffice.engine.release_queue import REFRESH_MAX_S, REFRESH_MIN_S, QueueTicket
from boxoffice.engine.statuses import TicketStatus
from boxoffice.engine.wiring import Engine
from tests.api.test_admin import (
    a_hall,
    a_movie,
    actx,
    admin_database,
    auth,
    http,
    made,
    plan,
    show_body,
    tomorrow,
)
from tests.support.state import show_state

__all__ = ["actx", "admin_database", "http"]  # fixtures used by name

S = 1000


def rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def redis_now_ms(ctx: Engine) -> int:
    seconds, micros = await ctx.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def queued_show(http: httpx.AsyncClient, opens_ms: int, order: str = "arrival", rows: str = "AB",
                      per_row: int = 6) -> int:
    """A new show of its own hall whose sales open at `opens_ms` (whole seconds)."""
    seats = plan(rows, per_row)
    for seat in seats:  # one category, every seat a standard one
        seat["category"], seat["kind"] = "standard", "standard"
    _, hall_id = await a_hall(http, seats)
    show = await made(http, "shows", {**show_body(hall_id, await a_movie(http), tomorrow(),
                                                  sale_opens_at=rfc3339(opens_ms), queue_order=order),
                                      "prices": [{"category": "standard", "amount": 1000, "currency": "EUR"}]})
    return int(show["id"])


async def opening(ctx: Engine, http: httpx.AsyncClient, order: str = "arrival", rows: str = "AB",
                  per_row: int = 6) -> tuple[int, int]:
    """(show id, its opening ms): sales open an hour from now."""
    opens = (await redis_now_ms(ctx) // S + 3600) * S
    return await queued_show(http, opens, order, rows, per_row), opens


async def test_before_the_opening_holds_and_joins_answer_sale_not_open(actx: Engine, http: httpx.AsyncClient,
                                                                         ) -> None:
    show_id, opens = await opening(actx, http)
    info = (await http.get(f"/v1/shows/{show_id}")).json()
    assert info["sale_opens_at"] == rfc3339(opens)
    assert info["queue"] == {"active": True, "length": 0, "order": "arrival"}
    held = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": ["A2"], "customer": "a@x.org"})
    assert held.status_code == 409 and held.json()["error"] == "sale_not_open", held.text
    assert held.json()["sale_opens_at"] == rfc3339(opens)
    joined = await http.post(f"/v1/shows/{show_id}/waitlist", json={"count": 1, "customer": "a@x.org"})
    assert joined.status_code == 409 and joined.json()["error"] == "sale_not_open"
    # the queue opens BOXOFFICE_QUEUE_OPENS_BEFORE_S (900 s) before the sales
    early = await http.post(f"/v1/shows/{show_id}/queue", json={"customer": "a@x.org"})
    assert early.status_code == 409 and early.json()["error"] == "queue_not_open", early.text
    with pytest.raises(QueueNotOpen):
        await actx.release_queue.join(show_id, "a@x.org", now_ms=opens - 900 * S - 1)
    ticket = await actx.release_queue.join(show_id, "a@x.org", now_ms=opens - 900 * S)
    assert (ticket.status, ticket.position, ticket.queue_pass) == ("waiting", 1, None)
    assert ticket.eta_s == 900
    with pytest.raises(SaleNotOpen):
        await actx.holds.hold(show_id, ["A2"], "a@x.org", now_ms=opens - 1)


async def test_admission_in_arrival_order_paced_and_a_pass_lets_its_customer_hold(
        actx: Engine, http: httpx.AsyncClient) -> None:
    q = actx.release_queue
    show_id, opens = await opening(actx, http)
    tickets = [await q.join(show_id, f"c{i}@x.org", now_ms=opens - 60 * S + i) for i in range(8)]
    assert [t.position for t in tickets] == list(range(1, 9))
    with pytest.raises(AlreadyQueued):
        await q.join(show_id, "c0@x.org", now_ms=opens - 30 * S)
    assert await q.tick(show_id, now_ms=opens - 1) == 0  # nobody before the opening
    # 12 seats, groups of 2: 6 may shop at once; 10 a second (the default): one in the first 100 ms
    assert await q.tick(show_id, now_ms=opens + 100) == 1
    assert await q.tick(show_id, now_ms=opens + 1000) == 5  # 9 more due, but the seats' limit: 6 shopping
    # the metrics saw each admission once, with its wait from joining (about a minute)
    labels = {"show_id": str(show_id)}
    assert REGISTRY.get_sample_value("boxoffice_queue_admissions_total", labels) == 6
    assert REGISTRY.get_sample_value("boxoffice_queue_wait_seconds_count", labels) == 6
    assert REGISTRY.get_sample_value("boxoffice_queue_waiting", labels) == 2
    assert REGISTRY.get_sample_value("boxoffice_queue_shopping", labels) == 6
    states = [await q.status(t.ticket_id, now_ms=opens + 1000) for t in tickets]
    assert [s.status for s in states] == ["admitted"] * 6 + ["waiting"] * 2
    assert [s.position for s in states[6:]] == [1, 2]
    # no pass: refused; the pass of another customer: refused; its own: held, and used
    with pytest.raises(PassRequired):
        await actx.holds.hold(show_id, ["A2"], "c0@x.org", now_ms=opens + 1000)
    with pytest.raises(PassRequired):
        await actx.holds.hold(show_id, ["A2"], "c1@x.org", now_ms=opens + 1000,
                                  queue_pass=states[0].queue_pass.token)
    hold = await actx.holds.hold(show_id, ["A2"], "c0@x.org", now_ms=opens + 1000,
                                     queue_pass=states[0].queue_pass.token)
    assert hold.seats == ["A2"]
    with pytest.raises(PassRequired):  # replayed
        await actx.holds.hold(show_id, ["A3"], "c0@x.org", now_ms=opens + 1000,
                                  queue_pass=states[0].queue_pass.token)
    used = await q.status(tickets[0].ticket_id, now_ms=opens + 1000)
    assert (used.status, used.queue_pass) == ("admitted", None)
    # the used pass freed a place: the hold's own script admitted the next one
    assert (await q.status(tickets[6].ticket_id, now_ms=opens + 1100)).status == "admitted"
    assert (await q.status(tickets[7].ticket_id, now_ms=opens + 1100)).position == 1
    best = await actx.holds.hold_best(show_id, BestRequest(2), "c6@x.org", now_ms=opens + 1100,
                                          queue_pass=(await q.status(tickets[6].ticket_id, now_ms=opens + 1100)
                                                      ).queue_pass.token)
    assert len(best.seats) == 2


async def test_passes_lapse_leaving_frees_a_place_and_every_ticket_ends_told(
        actx: Engine, http: httpx.AsyncClient) -> None:
    q = actx.release_queue
    show_id, opens = await opening(actx, http, rows="A", per_row=2)  # 2 seats: 1 shopper at once
    a, b, c = [await q.join(show_id, f"{n}@x.org", now_ms=opens - S) for n in "abc"]
    assert await q.tick(show_id, now_ms=opens + S) == 1
    await q.leave(b.ticket_id, now_ms=opens + S)
    await q.leave(b.ticket_id, now_ms=opens + S)  # again: no change
    assert (await q.status(b.ticket_id, now_ms=opens + S)).status == "left"
    lapse = opens + S + actx.settings.queue_pass_s * S
    assert await q.tick(show_id, now_ms=lapse) == 1  # a's pass lapsed: c is admitted
    assert (await q.status(a.ticket_id, now_ms=lapse)).status == "expired"
    c_now = await q.status(c.ticket_id, now_ms=lapse)
    assert c_now.status == "admitted"
    hold = await actx.holds.hold(show_id, ["A1", "A2"], "c@x.org", now_ms=lapse,
                                     queue_pass=c_now.queue_pass.token)
    # nothing free but a hold that may come back: d is admitted (to join the waitlist)
    d = await q.join(show_id, "d@x.org", now_ms=lapse + 1)
    assert d.status == "admitted" and d.queue_pass
    await actx.confirmations.confirm(hold.hold_id, "queue-sold-out-1", "tok_ok")
    # nothing free or held: the queue ends sold_out for everyone, a newcomer's ticket too
    await q.tick(show_id, now_ms=lapse + 2)
    assert (await q.status(d.ticket_id, now_ms=lapse + 2)).status == "sold_out"
    late = await q.join(show_id, "e@x.org", now_ms=lapse + 3)
    assert late.status == "sold_out"
    assert (await q.info(show_id)).active is False
    assert not await actx.redis.sismember(actx.keys.running_queues, str(show_id))


async def test_closing_a_show_closes_its_queue_and_tells_every_ticket(actx: Engine, http: httpx.AsyncClient,
                                                                      ) -> None:
    q = actx.release_queue
    show_id, opens = await opening(actx, http)
    tickets = [await q.join(show_id, f"z{i}@x.org", now_ms=opens - S) for i in range(5)]
    assert await q.tick(show_id, now_ms=opens + 500) == 5  # 10 a second: 5 due by then
    more = [await q.join(show_id, f"y{i}@x.org", now_ms=opens + 200) for i in range(3)]
    closed = await http.post(f"/v1/admin/shows/{show_id}/close", json={"reason": "test"}, headers=auth())
    assert closed.status_code == 200
    for t in tickets + more:
        assert (await q.status(t.ticket_id)).status == "closed"
    with pytest.raises(ShowClosed):
        await q.join(show_id, "late@x.org")
    report = (await http.get(f"/v1/admin/shows/{show_id}/report", headers=auth())).json()
    assert report["queued"] == 0


async def test_shuffle_before_open_draws_one_order_and_later_joins_follow_in_arrival(
        actx: Engine, http: httpx.AsyncClient) -> None:
    q = actx.release_queue
    show_id, opens = await opening(actx, http, order="shuffle_before_open", rows="ABCDEFGHIJ", per_row=20)
    early = [await q.join(show_id, f"s{i}@x.org", now_ms=opens - 60 * S + i) for i in range(40)]
    assert all(t.position is None for t in early)  # equal before the draw
    after = [await q.join(show_id, f"t{i}@x.org", now_ms=opens + 10 + i) for i in range(5)]
    positions = [(await q.status(t.ticket_id, now_ms=opens + 20)).position for t in early + after]
    assert sorted(positions[:40]) == list(range(1, 41)) and positions[40:] == [41, 42, 43, 44, 45]
    assert positions[:40] != list(range(1, 41))  # shuffled (1 chance in 40! of failing)


# -- hostile passes ----------------------------------------------------------------------


async def test_forged_replayed_foreign_and_lapsed_passes_are_refused_and_change_nothing(
        actx: Engine, http: httpx.AsyncClient) -> None:
    q = actx.release_queue
    opened = (await redis_now_ms(actx) // S - 10) * S  # sales opened ten seconds ago
    show_id = await queued_show(http, opened, rows="ABCD")
    other_id = await queued_show(http, opened)
    ana = (await http.post(f"/v1/shows/{show_id}/queue", json={"customer": "ana@x.org"})).json()
    ben = (await http.post(f"/v1/shows/{show_id}/queue", json={"customer": "ben@x.org"})).json()
    elsewhere = (await http.post(f"/v1/shows/{other_id}/queue", json={"customer": "ana@x.org"})).json()
    await q.tick(show_id)
    await q.tick(other_id)  # (sales are open: each join was admitted at once already)
    ana = (await http.get(f"/v1/queue/{ana['ticket_id']}")).json()
    ben = (await http.get(f"/v1/queue/{ben['ticket_id']}")).json()
    elsewhere = (await http.get(f"/v1/queue/{elsewhere['ticket_id']}")).json()
    assert ana["status"] == ben["status"] == elsewhere["status"] == "admitted"
    used = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": ["A2"], "customer": "ana@x.org"},
                           headers={"X-Queue-Pass": ana["pass"]["token"]})
    assert used.status_code == 201, used.text
    forged = "P" + "A" * 22
    hostile = {
        "none": {},
        "forged": {"X-Queue-Pass": forged},
        "malformed": {"X-Queue-Pass": "not a pass"},
        "replayed": {"X-Queue-Pass": ana["pass"]["token"]},
        "another customer's": {"X-Queue-Pass": ben["pass"]["token"]},
        "another show's": {"X-Queue-Pass": elsewhere["pass"]["token"]},
    }
    before = await show_state(actx, show_id)
    for name, headers in hostile.items():
        for path, body in ((f"/v1/shows/{show_id}/holds", {"seats": ["B2"], "customer": "ana@x.org"}),
                           (f"/v1/shows/{show_id}/holds", {"count": 2, "customer": "ana@x.org"}),
                           (f"/v1/shows/{show_id}/waitlist", {"count": 1, "customer": "ana@x.org"})):
            answer = await http.post(path, json=body, headers=headers)
            assert answer.status_code == 403, (name, path, answer.text)
            assert answer.json()["error"] == "pass_required", name
            assert answer.json()["queue_url"] == f"/v1/shows/{show_id}/queue"
    assert await show_state(actx, show_id) == before
    # a lapsed pass: refused on Redis's clock the moment it lapses
    lapsed_at = ben["pass"]["ttl_s"] * S + await redis_now_ms(actx) + S
    with pytest.raises(PassRequired):
        await actx.holds.hold(show_id, ["B2"], "ben@x.org", now_ms=lapsed_at,
                                  queue_pass=ben["pass"]["token"])
    assert (await q.status(ben["ticket_id"], now_ms=lapsed_at)).status == "expired"


# -- 2,000 clients at once ---------------------------------------------------------------


@pytest.mark.parametrize("order", ["arrival", "shuffle_before_open"])
async def test_two_thousand_clients_join_at_once_and_are_admitted_in_the_policys_order(
        actx: Engine, http: httpx.AsyncClient, order: str) -> None:
    """2,000 clients join through the API at once before the opening; then the queue admits
    while the admitted hold one seat each with their pass and others try without one: the
    admissions follow the policy's order exactly (Redis's own record: admit_seq), nobody is
    admitted twice, every hold was made with a pass, and every ticket ends told."""
    q = actx.release_queue
    show_id, opens = await opening(actx, http, order, rows="ABCDEFGHIJ", per_row=10)  # 100 seats
    clients = 2000
    tickets = await asyncio.gather(*(q.join(show_id, f"r{i}@x.org", now_ms=opens - 60 * S + i % 7)
                                     for i in range(clients)))
    assert len({t.ticket_id for t in tickets}) == clients
    by_id = {t.ticket_id: t for t in tickets}
    # the order the policy promises, read before anyone is admitted
    await q.tick(show_id, now_ms=opens - 1)
    if order == "shuffle_before_open":
        await q.status(tickets[0].ticket_id, now_ms=opens)  # the draw, once, at the opening
    promised = await actx.redis.zrange(actx.keys.queue(show_id), 0, -1)
    if order == "arrival":
        arrivals = {t: int(await actx.redis.hget(actx.keys.ticket(show_id, t), "arrival")) for t in by_id}
        assert promised == sorted(by_id, key=lambda t: arrivals[t])
    holds: list[str] = []
    now = opens
    for _ in range(400):
        now += 100
        await q.tick(show_id, now_ms=now)
        # the tickets holding an unused pass now (Redis's set of them), not yet seen admitted
        shopping = await actx.redis.zrange(actx.keys.show_base(show_id) + "passes", 0, -1)
        states = await asyncio.gather(*(q.status(t, now_ms=now) for t in shopping
                                        if by_id[t].status == "waiting"))
        newly = [s for s in states if s.status == "admitted" and s.queue_pass]
        for s in states:
            by_id[s.ticket_id] = s

        async def shop(ticket: QueueTicket, at: int) -> None:
            with pytest.raises(PassRequired):  # without the pass: refused
                await actx.holds.hold_best(show_id, BestRequest(1), ticket.customer, now_ms=at)
            try:
                hold = await actx.holds.hold_best(show_id, BestRequest(1), ticket.customer, now_ms=at,
                                                      queue_pass=ticket.queue_pass.token)
                holds.append(hold.hold_id)
            except Exception as exc:  # seats gone: the pass stays unused
                assert type(exc).__name__ == "SeatsUnavailable", exc

        await asyncio.gather(*(shop(t, now) for t in newly))
        if len(holds) == 100:
            break
    assert len(holds) == 100
    # every seat held by a pass; then sold: the queue ends sold_out for everyone else
    for hold_id in holds:
        await actx.confirmations.confirm(hold_id, f"rush-{hold_id[-12:]}", "tok_ok")
    await q.tick(show_id, now_ms=now + 100)
    records = [await actx.redis.hgetall(actx.keys.ticket(show_id, t)) for t in promised]
    admitted_order = sorted((int(r["admit_seq"]), i) for i, r in enumerate(records) if "admit_seq" in r)
    assert [i for _, i in admitted_order] == list(range(len(admitted_order))), "admitted out of order"
    assert len({seq for seq, _ in admitted_order}) == len(admitted_order)  # nobody twice
    used = [r for r in records if r.get("used") == "1"]
    assert len(used) == 100 and len({r["customer"] for r in used}) == 100
    finals = [(await q.status(t, now_ms=now + 100)).status for t in promised]
    assert set(finals) <= {"admitted", "sold_out"} and finals.count("admitted") == 100


# -- the ticket's stream -----------------------------------------------------------------


async def test_a_tickets_stream_sends_its_state_first_then_its_admission_and_its_end(
        actx: Engine, http: httpx.AsyncClient) -> None:
    from tests.waitlist.test_streams import serve, sse

    opened = (await redis_now_ms(actx) // S - 10) * S
    show_id = await queued_show(http, opened, rows="A", per_row=2)  # 2 seats: one shopper at once
    ana = (await http.post(f"/v1/shows/{show_id}/queue", json={"customer": "ana@x.org"})).json()
    ben = (await http.post(f"/v1/shows/{show_id}/queue", json={"customer": "ben@x.org"})).json()
    assert (ana["status"], ben["status"], ben["position"]) == ("admitted", "waiting", 1)
    async with serve(actx) as url, sse(url, f"/v1/queue/{ben['ticket_id']}/events") as events:
        first = await events.next()
        assert (first["status"], first["position"], first["pass"]) == ("waiting", 1, None)
        # ana holds with her pass: her place goes to ben at once, and his stream says so
        held = await http.post(f"/v1/shows/{show_id}/holds", json={"seats": ["A1"], "customer": "ana@x.org"},
                               headers={"X-Queue-Pass": ana["pass"]["token"]})
        assert held.status_code == 201, held.text
        admitted = await events.next()
        assert admitted["status"] == "admitted" and admitted["pass"]["token"]
        assert (await http.delete(f"/v1/queue/{ben['ticket_id']}")).status_code == 204
        left = await events.next()
        assert (left["status"], left["pass"]) == ("left", None)


def test_a_waiting_ticket_is_worth_reading_again_three_times_over_its_wait() -> None:
    def waiting(eta_s: int | None, status: TicketStatus = TicketStatus.WAITING) -> QueueTicket:
        return QueueTicket("Q1-a-b", 1, "c@x.org", status, 3, eta_s, None)

    assert waiting(0).refresh_after_s == REFRESH_MIN_S
    assert waiting(9).refresh_after_s == 3.0
    assert waiting(3600).refresh_after_s == REFRESH_MAX_S
    assert waiting(None, TicketStatus.ADMITTED).refresh_after_s is None


async def test_a_far_tickets_stream_reads_by_its_wait_and_tells_its_own_change_at_once(
        actx: Engine, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Others' changes (a place freed ahead) are read at most every refresh_after_s of the
    ticket, not on every change; a poll is told the same in X-Queue-Refresh-After."""
    from tests.waitlist.test_streams import serve, sse

    queue = actx.release_queue
    monkeypatch.setattr(queue, "pace", dataclasses.replace(queue.pace, admit_per_s=1))  # eta: a second a place
    opened = (await redis_now_ms(actx) // S - 10) * S
    show_id = await queued_show(http, opened, rows="A", per_row=2)  # 2 seats: one shopper at once
    ahead = [(await http.post(f"/v1/shows/{show_id}/queue", json={"customer": f"c{n}@x.org"})).json()
             for n in range(7)]
    assert ahead[0]["status"] == "admitted"
    joined = await http.post(f"/v1/shows/{show_id}/queue", json={"customer": "ben@x.org"})
    ben = joined.json()
    assert (ben["position"], ben["eta_s"]) == (7, 6)
    assert joined.headers["x-queue-refresh-after"] == "2", "a third of the 6 s wait"
    reads = 0
    real_status = queue.status

    async def counted_status(ticket_id: str, *args: Any, **kwargs: Any) -> QueueTicket:
        nonlocal reads
        reads += ticket_id == ben["ticket_id"]
        return await real_status(ticket_id, *args, **kwargs)

    monkeypatch.setattr(queue, "status", counted_status)
    async with serve(actx) as url, sse(url, f"/v1/queue/{ben['ticket_id']}/events") as events:
        first = await events.next()
        told = time.monotonic()
        assert (first["position"], reads) == (7, 1)
        assert (await http.delete(f"/v1/queue/{ahead[3]['ticket_id']}")).status_code == 204
        moved = await events.next(timeout_s=10)
        assert moved["position"] == 6 and reads == 2
        assert time.monotonic() - told >= 2.0, "read again no sooner than its refresh"
        assert (await http.delete(f"/v1/queue/{ben['ticket_id']}")).status_code == 204
        left = await events.next()  # its own change: at once
        assert left["status"] == "left"
    polled = await http.get(f"/v1/queue/{ahead[1]['ticket_id']}")
    assert polled.json()["position"] == 1 and polled.headers["x-queue-refresh-after"] == "0.5"
    admitted = await http.get(f"/v1/queue/{ahead[0]['ticket_id']}")
    assert "x-queue-refresh-after" not in admitted.headers


# -- a pass where none is needed ----------------------------------------------------------


async def test_a_pass_header_of_a_show_without_a_queue_is_read_as_no_pass_as_documented(
        actx: Engine, http: httpx.AsyncClient) -> None:
    """Any X-Queue-Pass value is read, never refused for its shape: a token-shaped one is
    checked inside the script while a queue runs, anything else counts as no pass (docs/API.md,
    "Admission and the pass"). The OpenAPI document must say so, or a client (and schemathesis)
    takes a malformed header for an error the service will report."""
    from boxoffice.api.openapi import OPENAPI

    _, hall_id = await a_hall(http)
    show_id = int((await made(http, "shows", show_body(hall_id, await a_movie(http), tomorrow())))["id"])
    values = ["", "not a pass", "P" + "A" * 22, "x" * 200]
    for number, value in enumerate(values):
        hold = {"seats": [f"A{number + 2}"], "customer": f"p{number}@x.org"}
        join = {"count": 1, "customer": f"w{number}@x.org"}
        for path, body in ((f"/v1/shows/{show_id}/holds", hold), (f"/v1/shows/{show_id}/waitlist", join)):
            answer = await http.post(path, json=body, headers={"X-Queue-Pass": value})
            assert answer.status_code == 201, (value, path, answer.text)
    for path in ("/v1/shows/{show_id}/holds", "/v1/shows/{show_id}/waitlist"):
        declared = [p for p in OPENAPI["paths"][path]["post"]["parameters"] if p.get("name") == "X-Queue-Pass"]
        assert len(declared) == 1, path
        schema = declared[0]["schema"]
        assert schema["type"] == "string" and "pattern" not in schema and "minLength" not in schema, schema
        assert all(len(value) <= schema.get("maxLength", len(value)) for value in values), schema
