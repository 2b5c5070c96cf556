"""bench/hold_cost.py times the two holds in short series that alternate (A B, then B A), and
its ratio is the median of neighbouring series' ratios; each side's inner commands are
summed over all its series, weighted by their calls."""

from __future__ import annotations

import pytest

from bench import hold_cost


def test_a_side_summed_over_its_series_weighs_each_by_its_calls() -> None:
    readings = [{"usec_per_call": 10.0, "calls": 1, "inner": {"hget": {"calls": 2.0, "usec": 1.0}}},
                {"usec_per_call": 20.0, "calls": 3, "inner": {"hget": {"calls": 1.0, "usec": 3.0},
                                                              "zadd": {"calls": 1.0, "usec": 4.0}}}]
    side = hold_cost.summed(readings)
    assert side["calls"] == 4
    assert side["usec_per_call"] == pytest.approx((10 + 60) / 4)
    assert side["inner"] == {"hget": {"calls": 1.25, "usec": 2.5}, "zadd": {"calls": 0.75, "usec": 3.0}}


def test_the_ratio_is_the_median_of_neighbouring_series() -> None:
    row = hold_cost.measure(None, 500)  # a redis-server of its own; 100 holds a side and round
    assert row["holds_per_series"] == hold_cost.CHUNK
    assert row["chunks"] == hold_cost.ROUNDS * 100 // hold_cost.CHUNK
    assert len(row["round_ratios"]) == hold_cost.ROUNDS
    assert 0 < row["ratio"] < 2 and row["meets_target"] == (row["ratio"] >= hold_cost.TARGET)
    # Both sides made every hold: four seats each, one FCALL each, the minimal's three calls.
    assert row["minimal_inner_per_hold"]["hmget"]["calls"] == 1
    assert row["minimal_inner_per_hold"]["zadd"]["calls"] == 1
    # (ours writes seats side by side in one SETRANGE, others one per run: the bench's seats,
    # in the order of their ids, are side by side in some holds and not in others)
    assert row["inner_per_hold"]["zadd"]["calls"] == 1
    assert 1 <= row["inner_per_hold"]["setrange"]["calls"] <= hold_cost.SEATS
