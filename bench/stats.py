"""Latency and throughput bookkeeping shared by the bench scripts."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
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
    # (when it was answered, perf_counter; its latency; its endpoint) of every request: where
    # in a run the slow answers were (timeline)
    answered: list[tuple[float, float, str]] = field(default_factory=list)

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        self.latencies[endpoint].append(seconds)
        self.statuses[endpoint][status] += 1
        self.answered.append((time.perf_counter(), seconds, endpoint))

    def summary_of(self, endpoints: Callable[[str], bool], duration_s: float) -> dict[str, Any]:
        """One latency summary of the requests of several endpoints together."""
        chosen = [s for name, values in self.latencies.items() if endpoints(name) for s in values]
        return latency_summary(chosen, duration_s)

    def timeline(self, started: float, step_s: float = 1.0,
                 endpoints: Callable[[str], bool] = lambda _: True) -> list[dict[str, Any]]:
        """Per step of the run (by answer time): requests of `endpoints` answered, their p50,
        p99 and max."""
        steps: dict[int, list[float]] = defaultdict(list)
        for at, seconds, endpoint in self.answered:
            if endpoints(endpoint):
                steps[int((at - started) // step_s)].append(seconds)
        return [{"t_s": round(n * step_s, 3), **latency_summary(steps[n], step_s)} for n in sorted(steps)]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def summary(self, duration_s: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for endpoint in sorted(self.latencies):
            entry = latency_summary(self.latencies[endpoint], duration_s)
            entry["statuses"] = {str(k): v for k, v in sorted(self.statuses[endpoint].items())}
            out[endpoint] = entry
        out["ALL"] = self.summary_of(lambda _: True, duration_s)
        return out
