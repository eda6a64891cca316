"""Each dataset schema requires what its standard requires; docs/csv-import.md names every
difference, per item, with the reason. The standards are read from the shared fixtures."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from cityos.kernel.schemas import default_schema_dir, load_schema_dir
from tests.support.fixtures_path import FIXTURES

DEFINITIONS = FIXTURES / "opendata-jp" / "definitions"
DOC = Path(__file__).parents[3] / "docs" / "csv-import.md"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _standard_required(standard: str) -> set[str]:
    name = standard.split()[-1]
    if standard.startswith("自治体標準"):
        assert name == "公衆トイレ一覧"  # the one current definition in the fixtures
        rows = _rows(DEFINITIONS / "municipal-standard-current" / "public-toilet-schema.csv")
        assert {r["classification"] for r in rows} == {"◎", "○", "〇", ""}
        return {r["name"] for r in rows if r["classification"] == "◎"}
    rows = _rows(DEFINITIONS / "recommended-datasets-2019" / "column-definitions.csv")
    items = [r for r in rows if r["dataset"] == name]
    assert items, name
    return {r["item"] for r in items if r["required"] == "true"}


def _documented() -> set[tuple[str, str, str]]:
    """(dataset, item, here) of each row of the requiredness table."""
    table = re.findall(
        r"^\| ([a-z-]+) \| (\S+) \| [^|]+ \| (required|optional) \| .+ \|$", DOC.read_text(), re.M
    )
    return set(table)


def test_every_difference_from_the_standard_is_documented_per_item() -> None:
    schemas = load_schema_dir(default_schema_dir())
    differences: set[tuple[str, str, str]] = set()
    for dataset, meta in schemas.datasets.items():
        if not meta.standard:
            continue
        required = set(schemas.latest(dataset).document.get("required", []))
        standard = _standard_required(meta.standard)
        differences |= {(dataset, item, "required") for item in required - standard}
        differences |= {(dataset, item, "optional") for item in standard - required}
    assert differences == _documented()


def test_the_only_stricter_items_are_record_keys() -> None:
    schemas = load_schema_dir(default_schema_dir())
    for dataset, item, here in _documented():
        if here == "required":
            assert schemas.datasets[dataset].record_key == item
