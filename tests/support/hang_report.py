"""A pytest plugin: when a test is about to reach its pytest-timeout, print the stack of every
asyncio task of every running event loop. pytest-timeout's own report shows only the threads,
and a hung async test's main thread is the idle event loop; the tasks say which await never
ended.

It prints TASK_REPORT_BEFORE_S ahead of the timeout, into the test's captured stderr, which
pytest shows with the failure."""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

import pytest

TASK_REPORT_BEFORE_S = 10.0


def running_loops() -> list[asyncio.AbstractEventLoop]:
    """The event loops running in any thread of this process (found by the garbage collector:
    another thread's running loop is not reachable through asyncio's own functions)."""
    return [obj for obj in gc.get_objects() if isinstance(obj, asyncio.AbstractEventLoop) and obj.is_running()]


def report_tasks(out: TextIO) -> int:
    """Prints every task of every running loop with its stack; answers how many it printed.
    Read from another thread while the loop runs: a hung loop is idle, so what it reads
    holds still, and a task that changes under it is printed as it was."""
    printed = 0
    for loop in running_loops():
        for task in list(asyncio.all_tasks(loop)):
            text = io.StringIO()
            try:
                task.print_stack(file=text)
            except Exception as exc:  # a report must not fail
                text.write(f"{task!r}: stack not readable ({exc})\n")
            out.write(text.getvalue())
            printed += 1
    out.write(f"-- {printed} asyncio task(s) at the timeout report\n")
    out.flush()
    return printed


def timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    try:
        return float(item.config.getini("timeout") or 0)
    except ValueError:
        return 0.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    timeout = timeout_of(item)
    timer = None
    if timeout > TASK_REPORT_BEFORE_S:
        def report() -> None:
            sys.stderr.write(f"\n-- {item.nodeid} is {TASK_REPORT_BEFORE_S:.0f} s from its timeout; "
                             "its asyncio tasks:\n")
            report_tasks(sys.stderr)

        timer = threading.Timer(timeout - TASK_REPORT_BEFORE_S, report)
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
