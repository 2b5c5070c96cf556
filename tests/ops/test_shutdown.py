"""Closing the engine ends every background task, even one that swallowed its first cancel
(asyncio.wait_for can, on Python 3.11, when the awaited event fires as the cancel arrives):
a service that never finished closing hung a test's teardown for five minutes."""

from __future__ import annotations

import asyncio

from boxoffice.engine.wiring import stop_tasks


async def test_a_task_that_swallows_its_cancel_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # lost, as a racing wait_for loses it
        await asyncio.Event().wait()  # the loop would go on: only a second cancel ends it

    async def plain() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(stubborn()), asyncio.create_task(plain())]
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await stop_tasks(tasks)
    assert swallowed.is_set()
    assert all(task.cancelled() for task in tasks)
