"""Times as the contract writes them: RFC 3339 in UTC, to the second, from Redis-clock ms."""

from __future__ import annotations

import functools
import time

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # the contract's times (strftime), for datetimes and ms alike


def ms_to_rfc3339(ms: int) -> str:
    return _second_to_rfc3339(ms // 1000)


# Concurrent holds expire within the same few seconds: format each second once (2 µs each).
@functools.lru_cache(maxsize=1024)
def _second_to_rfc3339(second: int) -> str:
    return time.strftime(RFC3339, time.gmtime(second))
