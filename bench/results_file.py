"""Where a bench's figures go: its result as indented JSON in the file of its `--out`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def write_result(result: Any, out: Path) -> None:
    """Writes `result` to `out` (its folder made if need be) and says where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str))
    print(f"written to {out}")
