"""The one loader of lua/: makes the scripts the functions of one Redis Functions library,
checks each call's key count against the count in the file name (BullMQ's convention), and
calls by FCALL, loading the library again when the server answers "Function not found"
(after a restart or a flush).

Why a library and not EVALSHA: an EVAL script runs its whole source on every call, so the
forty helpers of lua/includes/ were made again each time (~6 us of Redis per hold, a fifth
of the script). A library's helpers are made once, at FUNCTION LOAD.

The library: every include the scripts name (`--@include`, inlined once), then each script
body as the function `<script>_<version>`, opened by `start_call(KEYS, ARGV)`, which sets the
per-call state (lua/includes/context.lua). The version (a hash of the library) is in the
library's and the functions' names, so processes running different lua/ share a Redis
without calling each other's code."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from boxoffice.engine.redis.autopipeline import AutoPipeline
from boxoffice.engine.redis.cluster_pipeline import ClusterAutoPipeline

# The scripts ship inside the package (package data), found wherever it is installed.
LUA_DIR = resources.files("boxoffice") / "lua"
INCLUDE = re.compile(r"^--@include (\w+)\s*$", re.MULTILINE)
SCRIPT_NAME = re.compile(r"^(\w+)-(\d+)\.lua$")
LIBRARY_NAME = "boxoffice"


@dataclass(frozen=True)
class Script:
    name: str
    key_count: int
    function: str  # its name in the library


@dataclass(frozen=True)
class Library:
    name: str
    source: str
    scripts: dict[str, Script]


def _inline(source: str, lua_dir: Traversable, seen: set[str] | None = None) -> str:
    seen = set() if seen is None else seen

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in seen:
            return ""
        seen.add(name)
        return _inline((lua_dir / "includes" / f"{name}.lua").read_text(), lua_dir, seen)

    return INCLUDE.sub(replace, source)


def load_library(lua_dir: Traversable = LUA_DIR) -> Library:
    """The library of the scripts in `lua_dir` (another tree's: bench/lua_ab.py)."""
    includes: list[str] = []
    bodies: dict[str, tuple[int, str]] = {}
    for path in sorted((f for f in lua_dir.iterdir() if f.name.endswith(".lua")), key=lambda f: f.name):
        match = SCRIPT_NAME.match(path.name)
        if match is None:
            raise ValueError(f"lua/{path.name}: name must be <name>-<key count>.lua")
        source = path.read_text()
        includes += [name for name in INCLUDE.findall(source) if name not in includes]
        bodies[match.group(1)] = (int(match.group(2)), INCLUDE.sub("", source))
    parts = [_inline("".join(f"--@include {name}\n" for name in includes), lua_dir)]
    for name, (_, body) in bodies.items():
        parts.append(f"\nredis.register_function('{name}_@VERSION@', function(KEYS, ARGV)\n"
                     f"start_call(KEYS, ARGV)\n{body}\nend)\n")
    code = "".join(parts)
    version = hashlib.sha1(code.encode()).hexdigest()[:12]  # noqa: S324 - a name, not a secret
    name = f"{LIBRARY_NAME}_{version}"
    source = f"#!lua name={name}\n" + code.replace("@VERSION@", version)
    scripts = {script: Script(script, key_count, f"{script}_{version}")
               for script, (key_count, _) in bodies.items()}
    return Library(name, source, scripts)


def function_missing(error: Exception) -> bool:
    return isinstance(error, ResponseError) and "Function not found" in str(error)


def make_pipeline(redis: Any) -> AutoPipeline | ClusterAutoPipeline | None:
    """The auto-pipeline for this client: one connection to a single server, or one per node
    of a Redis Cluster; None where it does not apply (TLS, a unix socket, fakeredis)."""
    if isinstance(redis, RedisCluster):
        return ClusterAutoPipeline.for_client(redis)
    return AutoPipeline.for_client(redis)


class ScriptRunner:
    """Runs our scripts on a redis.asyncio client (single server or cluster). With
    `autopipeline` the calls of concurrent requests share pipelined writes, on one connection
    (engine/redis/autopipeline.py) or one per cluster node (engine/redis/cluster_pipeline.py),
    instead of the pool."""

    def __init__(self, redis: Any, autopipeline: bool = False) -> None:
        self.redis = redis
        self.library = load_library()
        self.scripts = self.library.scripts
        self.pipeline = make_pipeline(redis) if autopipeline else None
        self._loading: asyncio.Future[None] | None = None

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self.scripts[name]
        if len(keys) != script.key_count:
            raise ValueError(f"{name} takes {script.key_count} keys, got {len(keys)}")
        try:
            return await self._call(script, keys, args)
        except ResponseError as error:
            if not function_missing(error):
                raise
        # The server lost the library (restarted empty, flushed): load it and call again.
        await self.load()
        return await self._call(script, keys, args)

    async def _call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        if self.pipeline is not None:
            return await self.pipeline.execute("FCALL", script.function, script.key_count, *keys, *args)
        return await self.redis.fcall(script.function, script.key_count, *keys, *args)

    async def load(self) -> None:
        """FUNCTION LOAD REPLACE of the library (a cluster client sends it to every primary);
        the callers that found it missing at the same time share one load."""
        loading = self._loading
        if loading is None:
            loading = self._loading = asyncio.ensure_future(
                self.redis.function_load(self.library.source, replace=True))
            loading.add_done_callback(lambda _: setattr(self, "_loading", None))
        await asyncio.shield(loading)

    async def aclose(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.aclose()
