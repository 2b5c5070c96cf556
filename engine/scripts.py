"""The one loader of lua/: inlines `--@include name` lines, checks each call's key count
against the count in the file name (BullMQ's convention), and calls by EVALSHA,
loading a script again when the server answers NOSCRIPT (after a restart or failover)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError

from engine.autopipeline import AutoPipeline

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)
SCRIPT_NAME = re.compile(r"^(\w+)-(\d+)\.lua$")


@dataclass(frozen=True)
class Script:
    name: str
    key_count: int
    source: str
    sha: str


def _inline(source: str, seen: set[str] | None = None) -> str:
    seen = set() if seen is None else seen

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return ""
        seen.add(name)
        return _inline((LUA_DIR / "includes" / f"{name}.lua").read_text(), seen)

    return INCLUDE.sub(replace, source)


def load_scripts() -> dict[str, Script]:
    scripts: dict[str, Script] = {}
    for path in sorted(LUA_DIR.glob("*.lua")):
        match = SCRIPT_NAME.match(path.name)
        if match is None:
            raise ValueError(f"lua/{path.name}: name must be <name>-<key count>.lua")
        source = _inline(path.read_text())
        sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        scripts[match.group(1)] = Script(match.group(1), int(match.group(2)), source, sha)
    return scripts


class ScriptRunner:
    """Runs our scripts on a redis.asyncio client (single server or cluster). With
    `autopipeline` (a single server over TCP) the calls of concurrent requests share
    pipelined writes on one connection (engine/autopipeline.py) instead of the pool."""

    def __init__(self, redis: Any, autopipeline: bool = False) -> None:
        self.redis = redis
        self.scripts = load_scripts()
        self.pipeline = AutoPipeline.for_client(redis) if autopipeline else None

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self.scripts[name]
        if len(keys) != script.key_count:
            raise ValueError(f"{name} takes {script.key_count} keys, got {len(keys)}")
        if self.pipeline is not None:
            try:
                return await self.pipeline.execute("EVALSHA", script.sha, script.key_count, *keys, *args)
            except NoScriptError:
                return await self.pipeline.execute("EVAL", script.source, script.key_count, *keys, *args)
        try:
            return await self.redis.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.redis.eval(script.source, len(keys), *keys, *args)

    async def aclose(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.aclose()
