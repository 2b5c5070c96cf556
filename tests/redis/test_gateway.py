"""The script gateway (boxoffice/engine/redis/gateway.py) against the scripts' own headers: every
script in boxoffice/lua has one gateway method; each method sends the keys and arguments
the script's header documents (its Input); every return code a header documents (its
Output) is a ScriptCode and the gateway answers it with a result or an engine error, never
with "answered something unexpected"; and nothing else in the service sends a script."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from boxoffice.engine.errors import BoxOfficeError, ScriptCode
from boxoffice.engine.redis.gateway import BestRequest, QueuePace, ShowLoad, ShowScripts
from boxoffice.engine.redis.keys import Keys

LUA = resources.files("boxoffice") / "lua"
PACKAGE = Path(str(resources.files("boxoffice")))
SEATS = ["A1", "A2"]

# One call per script, with two of everything variadic (seats, pairs).
CALLS: dict[str, tuple[Callable[[ShowScripts], Awaitable[Any]], int]] = {
    # script: (the gateway call, how many arguments it sends beyond the documented fixed ones)
    "hold_seats": (lambda g: g.hold_seats(1, "H", "c", 10, SEATS), 2),
    "hold_best": (lambda g: g.hold_best(1, "H", "c", 10, BestRequest(4, "premium", None, True)), 0),
    "release_hold": (lambda g: g.release_hold(1, "H"), 0),
    "hold_status": (lambda g: g.hold_status(1, "H"), 0),
    "join_waitlist": (lambda g: g.join_waitlist(1, "W", "c", 2, "", 10), 0),
    "leave_waitlist": (lambda g: g.leave_waitlist(1, "W"), 0),
    "entry_status": (lambda g: g.entry_status(1, "W"), 0),
    "eta_holds": (lambda g: g.eta_holds(1, 50), 0),
    "seat_status": (lambda g: g.seat_status(1, None), 0),
    "index_seats": (lambda g: g.index_seats(1, SEATS, None), 2),
    "confirm_begin": (lambda g: g.confirm_begin(1, "H", 1000, "at"), 0),
    "confirm_check": (lambda g: g.confirm_check(1, "H", 5, 1000), 0),
    "confirm_finish": (lambda g: g.confirm_finish(1, "H", "bk", SEATS), 2),
    "confirm_abort": (lambda g: g.confirm_abort(1, "H", 5), 0),
    "confirm_reclaim": (lambda g: g.confirm_reclaim(1, "H", 5, 1000, "c", "at", 10, SEATS), 2),
    "sweep": (lambda g: g.sweep(1), 0),
    "listen": (lambda g: g.listen(1, 60_000), 0),
    "unload_show": (lambda g: g.unload_show(1, 1000, 10, None), 0),
    "close_show": (lambda g: g.close_show(1), 0),
    "cancel_booking": (lambda g: g.cancel_booking(1, "bk", SEATS), 2),
    "queue_join": (lambda g: g.queue_join(1, "Q", "c", "P", QueuePace(900, 0, 2, 50, 600), "seed"), 0),
    "queue_status": (lambda g: g.queue_status(1, "Q", "seed"), 0),
    "queue_leave": (lambda g: g.queue_leave(1, "Q"), 0),
    "queue_admit": (lambda g: g.queue_admit(1, "seed"), 0),
    "queue_info": (lambda g: g.queue_info(1), 0),
    # two seats and one booked seat, each a pair
    "load_show": (lambda g: g.load_show(1, ShowLoad(0, "open", [("A1", "x"), ("A2", "y")], [("A1", "bk")])), 6),
}


class Sent(Exception):
    pass


class Recorder:
    """Stands in for the script runner: records a call, then answers `reply` (or stops)."""

    def __init__(self, reply: Any = None) -> None:
        self.reply = reply
        self.calls: list[tuple[str, list[str], list[Any]]] = []

    async def run(self, name: str, keys: list[str], argv: list[Any]) -> Any:
        self.calls.append((name, keys, argv))
        if self.reply is None:
            raise Sent
        return self.reply


def gateway(runner: Recorder) -> ShowScripts:
    async def nothing(*_: Any) -> None:
        return None

    return ShowScripts(runner, Keys("t"), 1000, load_missing=nothing, on_earlier_wake=nothing)  # type: ignore[arg-type]


def header(script: str) -> str:
    (path,) = [f for f in LUA.iterdir() if re.fullmatch(rf"{script}-\d+\.lua", f.name)]
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return "\n".join(lines)


def documented_arguments(text: str) -> tuple[int, bool]:
    """(highest fixed ARGV index, whether more follow) from a header's Input; the first three
    are every script's (includes/context.lua)."""
    text = "\n".join(line for line in text.splitlines() if "see includes/context.lua" not in line)
    fixed = [int(n) for n in re.findall(r"ARGV\[(\d+)\]", text)]
    ranges = re.findall(r"ARGV\[(\d+)\s*\.\.", text)
    return max([3, *fixed, *(int(n) - 1 for n in ranges)]), bool(ranges)


def documented_codes(text: str) -> set[int]:
    output = text.split("Output:", 1)[1] if "Output:" in text else ""
    return {int(n) for n in re.findall(r"(?<![\w\[])(-\d+)\b", output)}


def scripts() -> list[str]:
    return sorted(m.group(1) for f in LUA.iterdir() if (m := re.fullmatch(r"(\w+)-\d+\.lua", f.name)))


def test_every_script_has_one_gateway_call() -> None:
    assert sorted(CALLS) == scripts()


@pytest.mark.parametrize("script", scripts())
async def test_the_gateway_sends_what_the_header_documents(script: str) -> None:
    runner = Recorder()
    call, variadic = CALLS[script]
    with pytest.raises(Sent):
        await call(gateway(runner))
    (name, keys, argv), = runner.calls
    assert name == script and len(keys) == 1 == int(next(
        f.name for f in LUA.iterdir() if f.name.startswith(f"{script}-")).split("-")[1].split(".")[0])
    fixed, more = documented_arguments(header(script))
    assert len(argv) == fixed + variadic, (script, argv, fixed)
    assert more == (variadic > 0), f"{script}: the header and the gateway disagree on variadic arguments"


@pytest.mark.parametrize("script", scripts())
async def test_every_documented_code_is_answered(script: str) -> None:
    """Each negative code of the header, fed back as the script's result, comes out as a
    typed refusal or an engine error."""
    codes = documented_codes(header(script)) - {ScriptCode.NOT_LOADED}
    for code in codes:
        assert code in {c.value for c in ScriptCode}, f"{script}: {code} is not a ScriptCode"
        runner = Recorder(reply=[[code, "0", "0", "0"], 0, 0, [], []])
        try:
            await CALLS[script][0](gateway(runner))
        except BoxOfficeError:
            pass


def test_every_script_code_is_documented_by_some_script() -> None:
    documented = set().union(*(documented_codes(header(s)) for s in scripts()))
    assert {c.value for c in ScriptCode} <= documented


def test_nothing_else_sends_a_script() -> None:
    senders = [path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               if re.search(r"\.fcall\(|scripts\.run\(|runner\.run\(", path.read_text())]
    assert sorted(senders) == ["engine/redis/gateway.py", "engine/redis/scripts.py"], senders
