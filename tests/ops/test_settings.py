"""Each setting's default is written once (engine/settings.py); README.md's table of
settings must name every one with that default."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from boxoffice.engine.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
UNSET = {"—", "(none)", "(from the database)"}


def readme_defaults() -> dict[str, str]:
    """variable -> its default as the README's table writes it (one row may name several)."""
    defaults: dict[str, str] = {}
    for names, default in re.findall(r"^\| (`BOXOFFICE_[^|]+) \| ([^|]+) \|", README.read_text(), re.MULTILINE):
        variables = re.findall(r"`(BOXOFFICE_\w+)`", names)
        values = [v.strip().strip("`") for v in default.split(",")] if len(variables) > 1 else [default.strip()]
        assert len(values) == len(variables), names
        defaults.update(zip(variables, (v.strip("`") for v in values), strict=True))
    return defaults


def written(default: Any) -> set[str]:
    """The ways the README may write a default."""
    if default is None or default == ():
        return UNSET
    if isinstance(default, bool):
        return {"1" if default else "0"}
    if isinstance(default, float):
        return {f"{default:g}", str(int(default)) if default.is_integer() else f"{default:g}"}
    return {str(default)}


def test_the_table_is_read() -> None:
    assert len(readme_defaults()) >= 20


@pytest.mark.parametrize("setting", [f for f in fields(Settings) if "env" in f.metadata], ids=lambda f: f.name)
def test_every_setting_is_in_the_readme_with_its_default(setting: Any) -> None:
    variable = setting.metadata["env"]
    table = readme_defaults()
    assert variable in table, f"README.md's settings table has no {variable}"
    assert setting.default is not MISSING
    assert table[variable] in written(setting.default), (variable, table[variable], setting.default)
