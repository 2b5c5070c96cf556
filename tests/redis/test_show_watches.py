"""The hub's side of a waiter's stream (engine/redis/pubsub.py ShowWatches): what a change
message of a show costs does not grow with the number of streams that follow its records."""

from __future__ import annotations

import asyncio

from boxoffice.engine.redis.pubsub import EntryWatch, ShowWatches


async def test_one_change_wakes_every_record_stream_of_the_show_at_once_and_ends_only_its_own() -> None:
    """The hub's side of a waiter's stream (ShowWatches): a change is one count and one event
    for all the show's streams, and the records it names as ended are told so, no others."""
    show = ShowWatches()
    watches = [EntryWatch(f"W{n}", show) for n in range(1000)]
    for watch in watches:
        show.by_entry[watch.entry_id].add(watch)
    waiting = [asyncio.create_task(watch.next_change()) for watch in watches]
    await asyncio.sleep(0)
    assert not any(task.done() for task in waiting), "nothing changed yet"
    show.changed(["W7"])
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [watch.entry_id for watch in watches if watch.ended.is_set()] == ["W7"]
    assert all(watch.changed for watch in watches)
    # A stream that reads takes every change so far as seen; the next change is news again.
    watches[3].reading()
    assert not watches[3].changed and not watches[3].ended.is_set() and watches[4].changed
    news = asyncio.create_task(watches[3].next_change())
    await asyncio.sleep(0)
    assert not news.done()
    show.changed([])
    await asyncio.wait_for(news, 5)
