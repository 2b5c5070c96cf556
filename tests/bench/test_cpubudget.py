"""bench/cpubudget.py really holds a process to its share of a core, and leaves nothing behind.

The ceilings' "two workers vs one, half a core each" comparison stands on this: if the quota
did not bind, the comparison would measure the machine again, not the service."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cpubudget

SPIN = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


def spent_over(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)  # measuring a rate over wall time, not waiting for an event
    return cpu_seconds(pid) - before


def test_a_budget_holds_a_busy_process_to_its_share_and_is_removed() -> None:
    reason = cpubudget.unavailable()
    if reason:
        pytest.fail(f"the ceilings' CPU budgets cannot work on this machine: {reason}")
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        free = spent_over(spinner.pid, 0.5)
        with cpubudget.core_share([spinner.pid], 0.2) as groups:
            (group,) = groups
            assert str(spinner.pid) in (group / "cgroup.procs").read_text().split()
            held = spent_over(spinner.pid, 1.0)
        assert not group.exists()
        assert "boxoffice-bench-" not in Path(f"/proc/{spinner.pid}/cgroup").read_text()
        after = spent_over(spinner.pid, 0.5)
    finally:
        spinner.kill()
        spinner.wait()
    assert free > 0.3, f"the spinner ran {free:.2f} s of 0.5 s unconstrained: machine too busy to tell"
    assert held <= 0.2 * 1.0 * 1.3 + 0.02, f"held to 0.2 of a core it still ran {held:.2f} s of 1 s"
    assert held >= 0.1, f"held to 0.2 of a core it ran only {held:.2f} s of 1 s"
    assert after > 0.3, f"released, it ran only {after:.2f} s of 0.5 s"


def test_a_share_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError), cpubudget.core_share([], 1.5):
        pass
