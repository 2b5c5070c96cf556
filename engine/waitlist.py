"""The fair waitlist: join, leave, status with an honest eta. Grants happen inside the
scripts that free seats (lua/includes/waitlist.lua); this module validates and reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import (
    AlreadyWaiting,
    EntryNotWaiting,
    InvalidRequest,
    LimitExceeded,
    NoChance,
    NotFound,
    ScriptCode,
    ShowClosed,
)
from engine.limits import MAX_SEATS_PER_CUSTOMER, MAX_WAITLIST_COUNT
from engine.models import EntryStatus

if TYPE_CHECKING:
    from engine.service import Context

# With fewer ended holds than this in a show, the unpaid share comes from the prior.
MIN_SAMPLES = 20
PRIOR_UNPAID_SHARE = 0.3
DEADLINES_FOR_ETA = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def estimate_eta_s(wanted: int, free_now: int, deadlines: list[tuple[int, int]], unpaid_share: float,
                   now_ms: int) -> int | None:
    """Seconds until `wanted` seats are expected to be free: walk the active holds by
    deadline; each is expected to give back its seats with the measured unpaid share
    (a release or expiry). None when even all of them are not expected to suffice."""
    expected = float(free_now)
    if expected >= wanted:
        return 0
    for deadline_ms, seats in deadlines:
        expected += seats * unpaid_share
        if expected >= wanted:
            return max(0, round((deadline_ms - now_ms) / 1000))
    return None


class Waitlist:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def parse_entry_id(self, entry_id: str) -> int:
        parsed = self.ctx.signer.parse(entry_id, "W")
        if parsed is None:
            raise NotFound("no such waitlist entry")
        return parsed.show_id

    async def join(self, show_id: int, customer: str, count: int, category: str | None) -> dict[str, Any]:
        show = await self.ctx.catalog.show(show_id)
        if not show.is_open():
            raise ShowClosed(f"show {show_id} has started or is closed")
        if not 1 <= count <= MAX_WAITLIST_COUNT:
            raise InvalidRequest("count is out of range",
                                 details=[{"field": "count", "problem": f"must be 1 to {MAX_WAITLIST_COUNT}"}])
        if category is not None and category not in show.prices:
            raise InvalidRequest("unknown price category",
                                 details=[{"field": "category", "problem": f"not a category of show {show_id}"}])
        entry_id = self.ctx.signer.new_entry_id(show_id)
        result = await self.ctx.inventory.run(
            "join_waitlist", show_id, entry_id, customer, count, category or "", MAX_SEATS_PER_CUSTOMER
        )
        code = int(result[0])
        if code == ScriptCode.ALREADY_WAITING:
            raise AlreadyWaiting("this customer already waits for this show")
        if code == ScriptCode.CUSTOMER_LIMIT:
            raise LimitExceeded(f"a customer may hold at most {MAX_SEATS_PER_CUSTOMER} seats of a show")
        if code == ScriptCode.NO_CHANCE:
            raise NoChance("not enough seats are held or free for this request ever to be met")
        return {"entry_id": entry_id, "show_id": str(show_id), "count": count,
                "category": category, "position": int(result[1]), "status": _text(result[2])}

    async def leave(self, entry_id: str) -> None:
        show_id = self.parse_entry_id(entry_id)
        result = await self.ctx.inventory.run("leave_waitlist", show_id, entry_id)
        if int(result[0]) != 1:
            status = _text(result[1]) or "expired"
            raise EntryNotWaiting(f"the entry is {status}, not waiting", status=status)

    async def status(self, entry_id: str) -> dict[str, Any]:
        show_id = self.parse_entry_id(entry_id)
        result = await self.ctx.inventory.run("entry_status", show_id, entry_id, DEADLINES_FOR_ETA)
        if not result:
            return {"entry_id": entry_id, "show_id": str(show_id), "status": EntryStatus.EXPIRED.value,
                    "position": None, "eta_s": None, "hold": None}
        status = _text(result[0])
        count, position, hold_id = int(result[1]), int(result[3]), _text(result[4])
        body: dict[str, Any] = {"entry_id": entry_id, "show_id": str(show_id), "status": status,
                                "count": count, "category": _text(result[2]) or None,
                                "position": position if status == EntryStatus.WAITING else None,
                                "eta_s": None, "hold": None}
        if status == EntryStatus.WAITING:
            wanted = int(result[5]) + count
            paid, unpaid, now_ms = int(result[6]), int(result[7]), int(result[8])
            ended = paid + unpaid
            share = unpaid / ended if ended >= MIN_SAMPLES else PRIOR_UNPAID_SHARE
            flat = [int(v) for v in result[9]]
            deadlines = list(zip(flat[0::2], flat[1::2], strict=True))
            body["eta_s"] = estimate_eta_s(wanted, 0, deadlines, share, now_ms)
        elif status == EntryStatus.GRANTED and hold_id:
            body["hold"] = (await self.ctx.inventory.hold_status(hold_id)).public()
        return body
