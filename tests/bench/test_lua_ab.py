"""bench/lua_ab.py compares two trees of lua/ in one redis-server: every hold of both sides
is timed (none lost to SLOWLOG's length), each side runs its own tree's code, and a tree
whose hold fails stops the comparison instead of timing the failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from bench import lua_ab
from boxoffice.engine.redis.scripts import LUA_DIR, load_library


def copy_of_lua(tmp_path: Path, change: tuple[str, str] | None = None) -> Path:
    tree = tmp_path / "lua"
    shutil.copytree(Path(str(LUA_DIR)), tree)
    script = tree / "hold_seats-1.lua"
    source = script.read_text() + "\n-- a copy\n"  # another library: its own name
    if change is not None:
        assert change[0] in source
        source = source.replace(*change)
    script.write_text(source)
    return tree


def test_two_trees_are_timed_hold_by_hold(tmp_path: Path) -> None:
    other = copy_of_lua(tmp_path)
    assert load_library(other).name != load_library().name
    row = lua_ab.measure(LUA_DIR, other, rounds=2)
    assert row["holds_per_side"] == 2 * lua_ab.HOLDS_PER_SHOW
    assert row["base_median_us"] > 0 and row["other_median_us"] > 0
    assert row["ratio_median"] == pytest.approx(row["other_median_us"] / row["base_median_us"], abs=0.001)


def test_a_tree_whose_hold_fails_stops_the_comparison(tmp_path: Path) -> None:
    broken = copy_of_lua(tmp_path, ("local customer = ARGV[5]", "local customer = ARGV[5] .. nil"))
    with pytest.raises(ResponseError):
        lua_ab.measure(LUA_DIR, broken, rounds=1)


def test_one_tree_against_itself_runs_through() -> None:
    """The same tree on both sides is one library: loaded once, deleted once."""
    row = lua_ab.measure(LUA_DIR, LUA_DIR, rounds=1)
    assert row["holds_per_side"] == lua_ab.HOLDS_PER_SHOW
