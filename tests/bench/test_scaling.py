"""bench/scaling.py's sweep keeps working, on one redis-server and on a local Redis Cluster of
three primaries: a few hundred holds with 1 and 2 workers of the service at its defaults (the
abuse limits on), through the bench's own command. Speed is not asserted here; every hold
must be granted (none limited, none shed), each from a client address of its own, the
cluster's nodes must share the holds, and the results file must carry the figures."""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Real
from pathlib import Path

import orjson
import pytest

from bench import scaling
from tests.support.services import migrated_database

HOLDS = 300


@pytest.fixture(scope="module")
def bench_database() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.mark.parametrize("primaries", [0, 3], ids=["one server", "cluster of 3"])
def test_the_sweep_grants_every_hold_at_the_defaults_and_counts_them_per_node(
        bench_database: str, primaries: int, tmp_path: Path) -> None:
    out = tmp_path / "scaling.json"
    code = scaling.main(["--database-url", bench_database, "--workers", "1", "2", "--max-workers", "2",
                         "--holds", str(HOLDS), "--rounds", "2", "--cluster-primaries", str(primaries),
                         "--out", str(out)])
    assert code == 0
    result = orjson.loads(out.read_bytes())

    assert result["redis"]["cluster"] is (primaries > 0)
    assert result["redis"]["nodes"] == max(1, primaries)
    assert result["limited"] == 0
    # Two rounds of the worker counts 1 and 2, each beside a Redis-alone round.
    assert len(result["redis_alone_rounds"]) == 4 and all(r > 0 for r in result["redis_alone_rounds"])
    assert [p["workers"] for p in result["points"]] == [1, 2]
    for point in result["points"]:
        assert point["statuses"] == {"201": HOLDS}, point["statuses"]
        assert point["worker_pids"] == point["workers"]
        for key in ("holds_per_s", "p50_ms", "p99_ms", "service_cpu_ms_per_request", "redis_cpu_ms_per_request",
                    "client_cpu_ms_per_request"):
            assert isinstance(point[key], Real), (key, point.get(key))
        assert point["holds_per_s"] > 0
        assert len(point["rounds_holds_per_s"]) == 2 and point["holds_per_s"] == sorted(point["rounds_holds_per_s"])[1]
        assert point["shed"] == point["limited"] == 0
        # Each hold a client of its own, told apart by the service's abuse limits.
        assert point["client_addresses_counted"] == HOLDS
        per_node = point["holds_per_node"]
        assert len(per_node) == max(1, primaries)
        assert set(point["redis_cpu_ms_per_request_per_node"]) == set(per_node)
        # Each node serves an equal share of the point's shows, dealt a seat of each in turn.
        assert all(calls >= HOLDS // len(per_node) for calls in per_node.values()), per_node
        assert sum(per_node.values()) >= HOLDS
    (row,) = result["comparisons"]
    assert row["name"] == "past saturation"
    assert row["peak_holds_per_s"] == max(p["holds_per_s"] for p in result["points"])
