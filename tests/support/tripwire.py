"""A tripwire on the engine's two ways out: every Lua script call (keys and arguments)
and every SQL statement (with its parameters) made while it is set. Hostile-input tests
use it to prove a payload was refused at the door and never reached a script or a query."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event

from boxoffice.engine.wiring import Engine


@dataclass
class Tripwire:
    scripts: list[tuple[str, list[Any], list[Any]]] = field(default_factory=list)
    queries: list[tuple[str, Any]] = field(default_factory=list)

    def values(self) -> list[str]:
        """Every value that went out: script keys and arguments, SQL parameters."""
        out = [str(v) for _, keys, args in self.scripts for v in (*keys, *args)]
        for _, parameters in self.queries:
            rows = parameters if isinstance(parameters, list | tuple) else [parameters]
            for row in rows:
                out += [str(v) for v in (row.values() if isinstance(row, dict) else row)]
        return out

    def assert_never_reached(self, *payloads: str) -> None:
        """No payload went out as (part of) a value; a payload long enough not to occur in
        the code's own SQL must not appear in any statement text either (formatted SQL)."""
        for payload in payloads:
            leaked = [v for v in self.values() if payload in v]
            if len(payload) >= 6:
                leaked += [statement for statement, _ in self.queries if payload in statement]
            assert not leaked, f"{payload!r} reached the engine's backends: {leaked[:3]}"


@contextlib.contextmanager
def tripwire(ctx: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tripwire]:
    wire = Tripwire()
    run = ctx.scripts.run

    async def recording_run(name: str, keys: list[str], args: list[Any]) -> Any:
        wire.scripts.append((name, list(keys), list(args)))
        return await run(name, keys, args)

    def recording_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                          executemany: bool) -> None:
        wire.queries.append((statement, parameters))

    monkeypatch.setattr(ctx.scripts, "run", recording_run)
    event.listen(ctx.sql.sync_engine, "before_cursor_execute", recording_execute)
    try:
        yield wire
    finally:
        event.remove(ctx.sql.sync_engine, "before_cursor_execute", recording_execute)
        monkeypatch.setattr(ctx.scripts, "run", run)
