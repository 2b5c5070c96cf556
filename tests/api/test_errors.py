"""api/errors.py is the one place statuses are chosen: every engine error has its own row,
and every row is the contract's (docs/API.md "Every error code the service answers")."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from boxoffice.api import errors as api_errors
from boxoffice.engine import errors as engine_errors

API_MD = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def contract_codes() -> dict[str, int]:
    rows = re.findall(r"^\| `(\w+)` \| (\d{3}) \|", API_MD.read_text(), flags=re.MULTILINE)
    return {code: int(status) for code, status in rows}


def test_every_engine_error_has_its_own_row() -> None:
    classes = [cls for _, cls in inspect.getmembers(engine_errors, inspect.isclass)
               if issubclass(cls, engine_errors.BoxOfficeError) and cls is not engine_errors.BoxOfficeError]
    assert len(classes) > 10
    assert [cls.__name__ for cls in classes if cls not in api_errors.TABLE] == []


def test_every_row_answers_the_contracts_status_for_its_code() -> None:
    contract = contract_codes()
    for cls, (status, code) in api_errors.TABLE.items():
        assert contract.get(code) == status, (cls.__name__, code, status)


def test_the_engine_knows_no_status() -> None:
    for cls in api_errors.TABLE:
        assert not hasattr(cls, "status") and not hasattr(cls, "code"), cls.__name__
