"""The keys a bench made, deleted when it is done: benches may run on a Redis that is shared
(the machine's, REDIS_URL), and every bench names its keys under a prefix of its own."""

from __future__ import annotations

import redis

DELETE_BATCH = 500


def forget_prefix(redis_url: str, prefix: str) -> None:
    """Deletes every key under `prefix:` (SCAN, then UNLINK in batches)."""
    client = redis.Redis.from_url(redis_url)
    try:
        batch = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= DELETE_BATCH:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
