"""CPU budgets for a bench's server processes, through the Linux cgroup (v1) cpu controller.

Why: "two workers vs one" asks whether the service scales with its cores. On a small machine
where the load client and Redis share the cores with the service, the second worker only
gets what they leave over, so the wall-clock ratio measures the machine's last free core,
not the service. Giving every worker the same budget — a fixed share of one core, enforced by
the kernel's CFS quota — makes each worker a "core" of known size with room beside it for
Redis and the client: then two workers against one is a fair wall-clock measurement of how
the service itself scales (shared Redis, shared PostgreSQL, metrics files and all).

Needs root and the cgroup v1 cpu controller mounted at /sys/fs/cgroup/cpu (as on the
machines this project runs its benches on); `unavailable()` says why not otherwise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

CPU_CONTROLLER = Path("/sys/fs/cgroup/cpu")
# A short period keeps a throttled worker's pauses short (at most the period minus its quota).
PERIOD_US = 10_000


def unavailable() -> str | None:
    """Why budgets cannot be set here, or None when they can."""
    if not (CPU_CONTROLLER / "cpu.cfs_quota_us").exists():
        return f"no cgroup v1 cpu controller at {CPU_CONTROLLER}"
    if not os.access(CPU_CONTROLLER, os.W_OK):
        return f"{CPU_CONTROLLER} is not writable (budgets need root)"
    return None


def _cpu_cgroup_of(pid: int) -> Path:
    """The cpu cgroup a process is in now (to put it back there afterwards)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return CPU_CONTROLLER / path.lstrip("/")
    return CPU_CONTROLLER


@contextlib.contextmanager
def core_share(pids: Iterable[int], share: float) -> Iterator[list[Path]]:
    """Puts each process (with its threads and any children it makes) in a cgroup of its
    own that may use `share` of one core; on exit puts them back and removes the cgroups."""
    if not 0 < share <= 1:
        raise ValueError(f"a share of a core is in (0, 1], not {share}")
    reason = unavailable()
    if reason:
        raise RuntimeError(f"cannot set CPU budgets: {reason}")
    for stale in CPU_CONTROLLER.glob("boxoffice-bench-*"):
        with contextlib.suppress(OSError):  # left by a run that was killed; only empty ones go
            stale.rmdir()
    made: list[tuple[Path, Path]] = []
    try:
        for pid in pids:
            home = _cpu_cgroup_of(pid)
            group = CPU_CONTROLLER / f"boxoffice-bench-{os.getpid()}-{pid}"
            group.mkdir()
            made.append((group, home))
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(max(1000, int(PERIOD_US * share))))
            (group / "cgroup.procs").write_text(str(pid))
        yield [group for group, _ in made]
    finally:
        for group, home in made:
            with contextlib.suppress(OSError):
                for member in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(OSError):  # it may have ended meanwhile
                        (home / "cgroup.procs").write_text(member)
            with contextlib.suppress(OSError):
                group.rmdir()
