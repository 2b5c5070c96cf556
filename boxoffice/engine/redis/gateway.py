"""The one gateway to the show scripts (boxoffice/lua): a method per script, which owns
its keys and arguments and turns its reply into typed values or engine errors. Nothing
else in the engine or the API builds script arguments or reads script replies.

Every call goes the same way: the show's one key (its meta hash: Keys.script_keys) and the
three common arguments (boxoffice/lua/includes/context.lua), the script's own arguments,
one FCALL. A show
Redis does not hold (-1) is loaded from the catalog and the call made again. Every show
script answers {result, next_wake, reindex, expired_late_ms, grant_waits_ms}, the lists
only when one has entries (boxoffice/lua/includes/settle.lua): they feed the metrics
(metrics.observe_script), and when the call made
the show's next wake earlier (reindex), the show's place in the sweep index is lowered
at once, so expiry never waits for a later wake than the show needs.

No call is ever sent twice by the client library (boxoffice/engine/redis/clients.py
builds the clients without retries): each mutating script is idempotent by the id it acts on
instead, so the caller (a customer retrying a 503, the reconciler) may repeat it safely."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from boxoffice.engine import metrics
from boxoffice.engine.errors import (
    AlreadyQueued,
    AlreadyWaiting,
    InvalidRequest,
    LimitExceeded,
    NoChance,
    PassRequired,
    QueueNotOpen,
    SaleNotOpen,
    ScriptCode,
    SeatsUnavailable,
    ShowClosed,
    WouldStrandSeat,
)
from boxoffice.engine.redis.keys import Keys
from boxoffice.engine.redis.scripts import ScriptRunner


@dataclass(frozen=True)
class ShowLoad:
    """What load_show puts into Redis: the show's start and status, each seat with its
    "category|row|place|rank|kind" (context.lua) in the hall plan's order, and the seats
    PostgreSQL has sold."""

    starts_at_ms: int
    status: str
    seats: list[tuple[str, str]]
    booked: list[tuple[str, str]]
    no_stranded_seats: bool = False  # explicit holds may not strand a single seat
    sale_opens_at_ms: int = 0  # 0: on sale now, no release queue
    queue_order: str = "arrival"


@dataclass(frozen=True)
class Held:
    hold_id: str
    expires_at_ms: int
    now_ms: int
    replayed: bool = False  # made by an earlier call: read it for what it is now
    seats: tuple[str, ...] = ()  # the seats a hold by count chose


@dataclass(frozen=True)
class BestRequest:
    """What a hold by count asks for (lua/hold_best-1.lua)."""

    count: int
    category: str | None = None  # None: any category
    kind: str | None = None  # None: standard seats only
    together: bool = True


@dataclass(frozen=True)
class RateLimits:
    """The abuse limits a hold or waitlist join counts against, inside its script
    (lua/includes/ratelimit.lua): requests a minute per customer and per client address of
    the show (0: that count off), and the client's address ("": not counted)."""

    per_customer: int = 0
    per_address: int = 0
    address: str = ""

    def arg(self) -> str:
        if not self.per_customer and not self.per_address:
            return ""  # both off: the script has nothing to parse
        return f"{self.per_customer}|{self.per_address}|{self.address}"


NO_LIMITS = RateLimits()


def rate_limited(result: Any) -> LimitExceeded:
    retry_after = int(result[1])
    return LimitExceeded(f"too many requests; try again in {retry_after} s", retry_after_s=retry_after)


@dataclass(frozen=True)
class HoldRecord:
    status: str
    seats: list[str]
    customer: str
    expires_at_ms: int
    booking_id: str
    now_ms: int


@dataclass(frozen=True)
class Pin:
    fence: int
    seats: list[str]
    customer: str
    expires_at_ms: int


@dataclass(frozen=True)
class PinRefused:
    code: ScriptCode
    status: str = ""


@dataclass(frozen=True)
class Joined:
    position: int
    status: str


@dataclass(frozen=True)
class EntryRecord:
    status: str
    count: int
    category: str
    position: int
    hold_id: str
    wanted_ahead: int
    holds_paid: int
    holds_unpaid: int
    now_ms: int
    free_for_entry: int
    starts_at_ms: int


@dataclass(frozen=True)
class TicketView:
    """A release queue ticket as lua/includes/queue.lua ticket_view answers it."""

    status: str
    position: int  # 0: not waiting, or before a shuffled queue's draw
    token: str  # the pass, "" unless admitted and unused
    pass_expires_ms: int
    now_ms: int
    opens_ms: int
    customer: str

    @classmethod
    def parse(cls, raw: list[Any]) -> TicketView:
        return cls(text(raw[0]), int(raw[1]), text(raw[2]), int(raw[3]), int(raw[4]), int(raw[5]), text(raw[6]))


@dataclass(frozen=True)
class QueuePace:
    """How a show's queue admits (lua/queue_join-1.lua: ARGV[7..11])."""

    opens_before_ms: int
    shoppers: int  # 0: the free seats over group_size
    group_size: int
    admit_per_s: int
    pass_ms: int


@dataclass(frozen=True)
class QueueTick:
    """What lua/queue_admit-1.lua reports."""

    admitted: int
    running: bool
    waiting: int
    shopping: int
    lapsed: int
    waits_ms: list[int]


# unload_show's states (boxoffice/lua/unload_show-1.lua).
UNLOAD_KEPT, UNLOAD_MORE, UNLOAD_DONE = 0, 1, 2


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def gate_refusal(show_id: int, result: Any) -> SaleNotOpen | PassRequired | None:
    """The refusal of lua/includes/gate.lua in a hold's or join's answer, else None."""
    code = int(result[0])
    if code == ScriptCode.SALE_NOT_OPEN:
        return SaleNotOpen(f"sales of show {show_id} open later", int(result[1]))
    if code == ScriptCode.PASS_REQUIRED:
        return PassRequired("this show sells through its release queue: a valid pass (X-Queue-Pass) issued"
                            " to this customer for this show is needed", queue_url=f"/v1/shows/{show_id}/queue")
    return None


def not_selling(show_id: int, reason: Any) -> ShowClosed:
    return ShowClosed(f"show {show_id} has {'started' if text(reason) == 'started' else 'been closed'}",
                      reason=text(reason))


class ShowScripts:
    def __init__(self, runner: ScriptRunner, keys: Keys, hold_ttl_ms: int,
                 load_missing: Callable[[int], Awaitable[None]],
                 on_earlier_wake: Callable[[int, int], Awaitable[None]]) -> None:
        self.runner = runner
        self.keys = keys
        self.hold_ttl_ms = hold_ttl_ms
        self._load_missing = load_missing
        self._on_earlier_wake = on_earlier_wake
        # Key names per show, built once (every call of a hot show needs the same nine).
        self._names: dict[int, tuple[list[str], str]] = {}

    def _show_names(self, show_id: int) -> tuple[list[str], str]:
        named = self._names.get(show_id)
        if named is None:
            if len(self._names) >= 10_000:
                self._names.clear()
            named = self._names[show_id] = (self.keys.script_keys(show_id), self.keys.show_base(show_id))
        return named

    def forget(self, show_id: int) -> None:
        self._names.pop(show_id, None)

    async def call(self, name: str, show_id: int, *args: Any, now_ms: int | None = None,
                   load: bool = True) -> Any:
        """Runs one show script and answers its `result`; None when the show is not loaded
        and `load` is false. now_ms (tests only) moves the scripts' clock."""
        keys, base = self._show_names(show_id)
        argv = [base, "" if now_ms is None else now_ms, self.hold_ttl_ms, *args]
        for _ in range(3):
            answer = await self.runner.run(name, keys, argv)
            if answer == ScriptCode.NOT_LOADED:
                if not load:
                    return None
                await self._load_missing(show_id)
                continue
            metrics.observe_script(answer)
            if int(answer[2]):
                await self._on_earlier_wake(show_id, int(answer[1]))
            return answer[0]
        raise RuntimeError(f"show {show_id} would not load into Redis")

    # -- the show's state ------------------------------------------------------------

    async def load_show(self, show_id: int, show: ShowLoad) -> bool:
        """Puts the show into Redis unless it is there; True when this call loaded it."""
        keys, base = self._show_names(show_id)
        argv: list[Any] = [base, "", self.hold_ttl_ms, show.starts_at_ms, show.status,
                           "1" if show.no_stranded_seats else "0", show.sale_opens_at_ms, show.queue_order,
                           len(show.seats)]
        for pair in show.seats:
            argv += pair
        for pair in show.booked:
            argv += pair
        return int(await self.runner.run("load_show", keys, argv)) == 1

    async def close_show(self, show_id: int) -> tuple[int, int]:
        """(holds released, waiters cancelled); (0, 0) when it was closed already. Queue
        tickets end `closed` in the same step (lua/close_show-1.lua)."""
        released, cancelled, *_ = await self.call("close_show", show_id)
        return int(released), int(cancelled)

    async def sweep(self, show_id: int) -> tuple[int, int]:
        """(holds ended, next wake ms or 0); a show Redis does not hold has nothing due."""
        keys, base = self._show_names(show_id)
        answer = await self.runner.run("sweep", keys, [base, "", self.hold_ttl_ms])
        if answer == ScriptCode.NOT_LOADED:
            return 0, 0
        metrics.observe_script(answer)
        return int(answer[0]), int(answer[1])

    async def unload_show(self, show_id: int, grace_ms: int, batch: int, now_ms: int | None) -> tuple[int, int]:
        """One batch of unloading: (state, keys deleted); UNLOAD_DONE when not loaded."""
        answer = await self.call("unload_show", show_id, grace_ms, batch, now_ms=now_ms, load=False)
        if answer is None:
            return UNLOAD_DONE, 0
        state, count = (int(v) for v in answer)
        return state, count

    async def seat_status(self, show_id: int, now_ms: int | None) -> tuple[Any, list[str], int, int]:
        """(status map or 0 when not indexed, categories kept for waiters, held, booked)."""
        status_map, waited, held, booked = await self.call("seat_status", show_id, now_ms=now_ms)
        return status_map, [text(c) for c in waited], int(held), int(booked)

    async def listen(self, show_id: int, lease_ms: int, load: bool = True, now_ms: int | None = None) -> int | None:
        """This process serves a live stream of the show: its change messages are published
        for `lease_ms` at least (lua/listen-1.lua). Answers when the running lease began
        (listened_since, ms): when it differs from the last call's answer, a change may have
        gone unpublished in between. None when the show is not loaded and `load` is false
        (nothing is published for it then)."""
        since = await self.call("listen", show_id, lease_ms, now_ms=now_ms, load=load)
        return None if since is None else int(since)

    async def index_seats(self, show_id: int, seat_ids: list[str], now_ms: int | None) -> None:
        await self.call("index_seats", show_id, *seat_ids, now_ms=now_ms)

    # -- holds -------------------------------------------------------------------------

    async def hold_seats(self, show_id: int, hold_id: str, customer: str, limit: int, seats: list[str],
                         now_ms: int | None = None, limits: RateLimits = NO_LIMITS, queue_pass: str = "") -> Held:
        result = await self.call("hold_seats", show_id, hold_id, customer, limit, limits.arg(), queue_pass, *seats,
                                 now_ms=now_ms)
        code = int(result[0])
        if code == 1:
            return Held(hold_id, int(result[1]), int(result[2]))
        unavailable = "some of the seats are not available; nothing was held"
        if (earlier := self._replayed_or_refused(show_id, limit, result, unavailable)) is not None:
            return earlier
        if code == ScriptCode.WOULD_STRAND_SEAT:
            raise WouldStrandSeat(f"the hold would leave seat {text(result[1])} alone between taken seats;"
                                  " nothing was held", seat=text(result[1]))
        if code == ScriptCode.UNKNOWN_SEAT:
            seat = text(result[1])
            problem = f"not in this hall or named twice: {seat}" if seat else "at least one seat is required"
            raise InvalidRequest("the seat list is not valid", details=[{"field": "seats", "problem": problem}])
        raise RuntimeError(f"hold_seats answered {result!r}")

    async def hold_best(self, show_id: int, hold_id: str, customer: str, limit: int, want: BestRequest,
                        now_ms: int | None = None, limits: RateLimits = NO_LIMITS, queue_pass: str = "") -> Held:
        """Holds the best free seats for `want` (best available), or refuses; nothing held then."""
        result = await self.call("hold_best", show_id, hold_id, customer, limit, want.count, want.category or "",
                                 want.kind or "", "1" if want.together else "0", limits.arg(), queue_pass,
                                 now_ms=now_ms)
        if int(result[0]) == 1:
            return Held(hold_id, int(result[1]), int(result[2]), seats=tuple(text(s) for s in result[3:]))
        unavailable = "no seats fit the request; nothing was held"
        if (earlier := self._replayed_or_refused(show_id, limit, result, unavailable)) is not None:
            return earlier
        raise RuntimeError(f"hold_best answered {result!r}")

    @staticmethod
    def _replayed_or_refused(show_id: int, limit: int, result: Any, unavailable: str) -> Held | None:
        """The answers a hold by seat and a hold by count share (lua/hold_seats-1.lua,
        lua/hold_best-1.lua): the earlier hold a retry with the same id replays, or the refusal
        raised (`unavailable`: the message when the seats are not to be had); None for any
        other answer."""
        code = int(result[0])
        if (refused := gate_refusal(show_id, result)) is not None:
            raise refused
        if code == 2:
            return Held(text(result[3]), int(result[1]), int(result[2]), replayed=True)
        if code == ScriptCode.SEATS_UNAVAILABLE:
            raise SeatsUnavailable(
                unavailable,
                unavailable=[text(s) for s in result[3:]],  # hold_best names none
                waitlist={"possible": bool(int(result[2])), "length": int(result[1])},
            )
        if code == ScriptCode.RATE_LIMITED:
            raise rate_limited(result)
        if code == ScriptCode.CUSTOMER_LIMIT:
            raise LimitExceeded(f"a customer may hold at most {limit} seats of a show at once"
                                f" (already holding or waiting for {int(result[1])})")
        if code == ScriptCode.NOT_SELLING:
            raise not_selling(show_id, result[1])
        return None

    async def hold_status(self, show_id: int, hold_id: str, now_ms: int | None = None) -> HoldRecord | None:
        result = await self.call("hold_status", show_id, hold_id, now_ms=now_ms)
        if not result:
            return None
        status, seats, customer, expires, booking_id, now = (text(v) for v in result)
        return HoldRecord(status, seats.split(","), customer, int(expires), booking_id, int(now))

    async def release_hold(self, show_id: int, hold_id: str, now_ms: int | None = None) -> str | None:
        """None when released (now or before), else the hold's status ("" when unknown)."""
        result = await self.call("release_hold", show_id, hold_id, now_ms=now_ms)
        return None if int(result[0]) == 1 else text(result[1])

    # -- confirm -----------------------------------------------------------------------

    async def confirm_begin(self, show_id: int, hold_id: str, pin_ms: int, attempt: str,
                            now_ms: int | None = None) -> Pin | PinRefused:
        result = await self.call("confirm_begin", show_id, hold_id, pin_ms, attempt, now_ms=now_ms)
        code = int(result[0])
        if code == 1:
            return Pin(int(result[1]), text(result[2]).split(","), text(result[3]), int(result[4]))
        if code == ScriptCode.NOT_SELLING:
            raise not_selling(show_id, result[1])
        return PinRefused(ScriptCode(code), text(result[1]) if len(result) > 1 else "")

    async def confirm_check(self, show_id: int, hold_id: str, fence: int, pin_ms: int) -> bool:
        return int(await self.call("confirm_check", show_id, hold_id, fence, pin_ms)) == 1

    async def confirm_finish(self, show_id: int, hold_id: str, booking_id: str, seats: list[str],
                             now_ms: int | None = None, load: bool = True) -> int | None:
        """Seats newly marked booked; None when the show is not loaded and `load` is false
        (a load reads the bookings from PostgreSQL anyway)."""
        newly = await self.call("confirm_finish", show_id, hold_id, booking_id, *seats, now_ms=now_ms, load=load)
        return None if newly is None else int(newly)

    async def confirm_abort(self, show_id: int, hold_id: str, fence: int, now_ms: int | None = None) -> int:
        """1 active again, 2 ended (its deadline passed), 0 not this confirm's pin."""
        return int(await self.call("confirm_abort", show_id, hold_id, fence, now_ms=now_ms))

    async def confirm_reclaim(self, show_id: int, hold_id: str, fence: int, pin_ms: int, customer: str,
                              attempt: str, limit: int, seats: list[str]) -> int | str:
        """The new fence when the hold is the customer's again, else the hold's status
        ("closed" or "started" when the show sells nothing)."""
        result = await self.call("confirm_reclaim", show_id, hold_id, fence, pin_ms, customer, attempt, limit,
                                 *seats)
        code = int(result[0])
        if code == 1:
            return int(result[1])
        return text(result[1])

    async def cancel_booking(self, show_id: int, booking_id: str, seats: list[str]) -> int:
        """Gives a cancelled booking's seats back (waiters first); seats freed by this call."""
        return int(await self.call("cancel_booking", show_id, booking_id, *seats))

    # -- the waitlist ------------------------------------------------------------------

    async def join_waitlist(self, show_id: int, entry_id: str, customer: str, count: int, category: str,
                            limit: int, now_ms: int | None = None, limits: RateLimits = NO_LIMITS,
                            queue_pass: str = "") -> Joined:
        result = await self.call("join_waitlist", show_id, entry_id, customer, count, category, limit,
                                 limits.arg(), queue_pass, now_ms=now_ms)
        code = int(result[0])
        if (refused := gate_refusal(show_id, result)) is not None:
            raise refused
        if code == 1:
            return Joined(int(result[1]), text(result[2]))
        if code == ScriptCode.RATE_LIMITED:
            raise rate_limited(result)
        if code == ScriptCode.ALREADY_WAITING:
            raise AlreadyWaiting("this customer already waits for this show")
        if code == ScriptCode.CUSTOMER_LIMIT:
            raise LimitExceeded(f"a customer may hold at most {limit} seats of a show")
        if code == ScriptCode.NO_CHANCE:
            raise NoChance("not enough seats are held or free for this request ever to be met")
        if code == ScriptCode.NOT_SELLING:
            raise not_selling(show_id, result[1])
        raise RuntimeError(f"join_waitlist answered {result!r}")

    async def leave_waitlist(self, show_id: int, entry_id: str, now_ms: int | None = None) -> str | None:
        """None when left (now or before), else the entry's status ("" when unknown)."""
        result = await self.call("leave_waitlist", show_id, entry_id, now_ms=now_ms)
        return None if int(result[0]) == 1 else text(result[1])

    async def entry_status(self, show_id: int, entry_id: str, now_ms: int | None = None) -> EntryRecord | None:
        result = await self.call("entry_status", show_id, entry_id, now_ms=now_ms)
        if not result:
            return None
        return EntryRecord(text(result[0]), int(result[1]), text(result[2]), int(result[3]), text(result[4]),
                           int(result[5]), int(result[6]), int(result[7]), int(result[8]), int(result[9]),
                           int(result[10]))

    # -- the release queue -------------------------------------------------------------

    async def queue_join(self, show_id: int, ticket_id: str, customer: str, token: str, pace: QueuePace,
                         seed: str, now_ms: int | None = None, limits: RateLimits = NO_LIMITS) -> TicketView:
        result = await self.call("queue_join", show_id, ticket_id, customer, token, pace.opens_before_ms,
                                 pace.shoppers, pace.group_size, pace.admit_per_s, pace.pass_ms, seed, limits.arg(),
                                 now_ms=now_ms)
        code = int(result[0])
        if code == 1:
            return TicketView.parse(result[1:])
        if code == ScriptCode.RATE_LIMITED:
            raise rate_limited(result)
        if code == ScriptCode.NOT_SELLING:
            raise not_selling(show_id, result[1])
        if code == ScriptCode.QUEUE_NOT_OPEN:
            opens = int(result[1])
            if opens == 0:
                raise QueueNotOpen(f"show {show_id} is on sale without a queue")
            raise QueueNotOpen(f"the queue of show {show_id} opens before its sales, not yet", opens,
                               opens - pace.opens_before_ms)
        if code == ScriptCode.ALREADY_QUEUED:
            raise AlreadyQueued("this customer already has a ticket in this show's queue")
        raise RuntimeError(f"queue_join answered {result!r}")

    async def queue_status(self, show_id: int, ticket_id: str, seed: str,
                           now_ms: int | None = None) -> TicketView | None:
        result = await self.call("queue_status", show_id, ticket_id, seed, now_ms=now_ms)
        return TicketView.parse(result) if result else None

    async def queue_leave(self, show_id: int, ticket_id: str, now_ms: int | None = None) -> str | None:
        """None when left (now or before), else the ticket's status ("" when unknown)."""
        result = await self.call("queue_leave", show_id, ticket_id, now_ms=now_ms)
        return None if int(result[0]) == 1 else text(result[1])

    async def queue_admit(self, show_id: int, seed: str, now_ms: int | None = None) -> QueueTick | None:
        """The sweeper's tick of a show's queue; None when Redis does not hold the show."""
        answer = await self.call("queue_admit", show_id, seed, now_ms=now_ms, load=False)
        if answer is None:
            return None
        admitted, running, waiting, shopping, lapsed, waits = answer
        return QueueTick(int(admitted), bool(int(running)), int(waiting), int(shopping), int(lapsed),
                         [int(ms) for ms in waits])

    async def queue_info(self, show_id: int, now_ms: int | None = None) -> tuple[bool, int, str]:
        """(active, waiting, order) of the show's queue."""
        _, order, active, length, _ = await self.call("queue_info", show_id, now_ms=now_ms)
        return bool(int(active)), int(length), text(order)

    async def eta_holds(self, show_id: int, limit: int, now_ms: int | None = None) -> list[Any]:
        """[now, deadline, "category=n,...", ...] (boxoffice/lua/eta_holds-1.lua)."""
        return list(await self.call("eta_holds", show_id, limit, now_ms=now_ms))
