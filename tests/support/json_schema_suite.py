"""The JSON-Schema-Test-Suite fixture (draft 2020-12), read as (id, schema, instance, valid) cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.fixtures_path import FIXTURES

SUITE = FIXTURES / "json-schema-test-suite"
DRAFT_2020_12 = SUITE / "tests" / "draft2020-12"
Case = tuple[str, Any, Any, bool]


def read_cases(file: Path, label: str) -> list[Case]:
    """Every test of one suite file, its id starting with ``label``."""
    found: list[Case] = []
    for group in json.loads(file.read_text(encoding="utf-8")):
        for test in group["tests"]:
            case_id = f"{label}: {group['description']}: {test['description']}"
            found.append((case_id, group["schema"], test["data"], test["valid"]))
    return found
