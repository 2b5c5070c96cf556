"""Latency and throughput bookkeeping shared by the bench scripts."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(share * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def latency_summary(latencies_s: list[float], duration_s: float) -> dict[str, Any]:
    ordered = sorted(latencies_s)
    ms = 1000.0
    return {
        "count": len(ordered),
        "per_s": round(len(ordered) / duration_s, 1) if duration_s > 0 else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * ms, 2),
        "p95_ms": round(percentile(ordered, 0.95) * ms, 2),
        "p99_ms": round(percentile(ordered, 0.99) * ms, 2),
        "max_ms": round((ordered[-1] if ordered else 0.0) * ms, 2),
    }


@dataclass
class EndpointStats:
    """Latencies and status codes per endpoint name ("GET /v1/shows/{id}/seats")."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        self.latencies[endpoint].append(seconds)
        self.statuses[endpoint][status] += 1

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def summary(self, duration_s: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for endpoint in sorted(self.latencies):
            entry = latency_summary(self.latencies[endpoint], duration_s)
            entry["statuses"] = {str(k): v for k, v in sorted(self.statuses[endpoint].items())}
            out[endpoint] = entry
        everything = [s for values in self.latencies.values() for s in values]
        out["ALL"] = latency_summary(everything, duration_s)
        return out
