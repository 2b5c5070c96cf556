"""The timeout report of tests/support/hang_report.py names the await a hung task waits in,
read from another thread while the loop is idle (as pytest-timeout's timer would)."""

from __future__ import annotations

import asyncio
import io
import threading

from tests.support.hang_report import report_tasks


async def waits_for_a_signal_never_sent(never: asyncio.Event) -> None:
    await never.wait()


async def test_the_report_names_the_await_of_a_stuck_task() -> None:
    never = asyncio.Event()
    stuck = asyncio.create_task(waits_for_a_signal_never_sent(never))
    await asyncio.sleep(0)  # the task runs to its await
    out = io.StringIO()
    printed: list[int] = []
    reader = threading.Thread(target=lambda: printed.append(report_tasks(out)))
    # The loop stays idle in this await while the other thread reads its tasks.
    await asyncio.get_running_loop().run_in_executor(None, lambda: (reader.start(), reader.join()))
    stuck.cancel()
    report = out.getvalue()
    assert printed and printed[0] >= 2  # this test's task and the stuck one
    assert "waits_for_a_signal_never_sent" in report
    assert "await never.wait()" in report
