"""CPU seconds spent by groups of local processes during a bench run, from /proc (Linux):
on a small machine where everything shares the cores, CPU per request says more about
where the time goes than wall-clock step times, which include waiting for a core."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds so far)."""
    out: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # fields[1] is the parent pid; fields[11], fields[12] user and system ticks.
        out[int(entry.name)] = (int(fields[1]), cmdline, (int(fields[11]) + int(fields[12])) / TICKS_PER_S)
    return out


def cpu_seconds(groups: dict[str, Callable[[str], bool]]) -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process of each group: processes whose command line
    matches, and their descendants (worker processes)."""
    processes = _processes()
    member: dict[int, str] = {}

    def group_of(pid: int, seen: int = 0) -> str | None:
        if pid in member:
            return member[pid]
        if pid not in processes or seen > 20:
            return None
        parent, cmdline, _ = processes[pid]
        for name, matches in groups.items():
            if matches(cmdline):
                member[pid] = name
                return name
        found = group_of(parent, seen + 1)
        if found is not None:
            member[pid] = found
        return found

    found: dict[str, dict[int, float]] = {name: {} for name in groups}
    for pid, (_, _, seconds) in processes.items():
        name = group_of(pid)
        if name is not None:
            found[name][pid] = seconds
    return found


def cpu_spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each group spent between two samples (processes that ended meanwhile
    are not counted; processes that started count from zero)."""
    return {name: sum(seconds - before.get(name, {}).get(pid, 0.0) for pid, seconds in pids.items())
            for name, pids in after.items()}


def machine_jiffies() -> tuple[int, int]:
    """(all, idle) clock ticks of every core together since boot, from /proc/stat: the
    share of the machine that was busy between two samples, neighbours included."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]  # idle + iowait


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[0] - before[0]
    return 1.0 - (after[1] - before[1]) / total if total > 0 else 0.0


def serving_processes(port: int) -> list[int]:
    """The processes that serve requests of the uvicorn started with `--port <port>`: its
    worker processes (uvicorn --workers N > 1 spawns them), or itself when it has none."""
    processes = _processes()
    parents = [pid for pid, (_, cmdline, _) in processes.items() if f"--port {port} " in cmdline + " "
               and "uvicorn" in cmdline]
    if not parents:
        raise LookupError(f"no uvicorn process with --port {port}")
    workers = [pid for pid, (parent, cmdline, _) in processes.items()
               if parent in parents and "spawn_main" in cmdline]
    return sorted(workers) or parents


def is_redis_server(cmdline: str, port: int) -> bool:
    """Whether a command line is the redis-server listening on `port`: Redis renames its
    process to `redis-server <address>:<port>`, followed by ` [cluster]` on a cluster node."""
    words = cmdline.split()
    return len(words) >= 2 and words[0].endswith("redis-server") and words[1].endswith(f":{port}")


def redis_server_pids(ports: list[int]) -> dict[int, int]:
    """port -> pid of the redis-server processes listening on `ports`."""
    found = {port: pid for pid, (_, cmdline, _) in _processes().items() for port in ports
             if is_redis_server(cmdline, port)}
    missing = set(ports) - set(found)
    if missing:
        raise LookupError(f"no redis-server process on port(s) {sorted(missing)}")
    return found
