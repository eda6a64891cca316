"""KPI files: the repository's pass their schema and mean what the DX plan says; broken files are
refused with the reason; the Japanese fiscal year turns on 1 April."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cityos.domain.kpi.definitions import (
    KpiError,
    fiscal_year,
    fiscal_year_months,
    load_kpis,
    month_fiscal_year,
)
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings

KPI_DIR = Settings().kpi_dir


@pytest.mark.parametrize(
    ("day", "year"),
    [
        (date(2022, 3, 31), 2021),
        (date(2022, 4, 1), 2022),
        (date(2021, 4, 1), 2021),
        (date(2022, 1, 1), 2021),
        (date(2021, 12, 31), 2021),
        (date(2026, 3, 31), 2025),
    ],
)
def test_fiscal_year_runs_april_to_march(day: date, year: int) -> None:
    assert fiscal_year(day) == year
    assert month_fiscal_year(f"{day.year}-{day.month:02d}") == year


def test_fiscal_year_months() -> None:
    months = fiscal_year_months(2021)
    assert months[0] == "2021-04" and months[-1] == "2022-03" and len(set(months)) == 12
    assert {month_fiscal_year(m) for m in months} == {2021}


def test_repository_kpis_match_the_plan_and_their_sources() -> None:
    kpis = {kpi.id: kpi for kpi in load_kpis(KPI_DIR)}
    assert {
        "copy-paper",
        "rpa-hours-saved",
        "rpa-hours-saved-centre",
        "e-approval-rate",
        "telework-rate",
    } <= set(kpis)
    paper = kpis["copy-paper"]
    assert (paper.direction, paper.baseline_fiscal_year, paper.target_change, paper.target_fiscal_year) == (
        "decrease", 2021, -0.5, 2025,
    )  # fmt: skip
    assert paper.source_dataset == "copier-usage"
    assert (kpis["rpa-hours-saved"].target_value, kpis["rpa-hours-saved-centre"].target_value) == (
        100000,
        30000,
    )
    schema_set = load_schema_dir(Settings().schemas_dir)
    for kpi in kpis.values():
        properties = schema_set.latest(kpi.source_dataset).document["properties"]
        named = {*kpi.aggregation.fields, *kpi.aggregation.denominator, kpi.month_field, kpi.department_field}
        assert named <= set(properties), kpi.id
        for field in (*kpi.aggregation.fields, *kpi.aggregation.denominator):
            assert properties[field]["type"] in ("integer", "number"), (kpi.id, field)
        assert kpi.owner_department in schema_set.departments
        assert kpi.name_ja and kpi.name_en and kpi.unit_ja and kpi.description_ja and kpi.description_en


def _copy(tmp_path: Path, kpi_id: str, change: dict[str, Any]) -> Path:
    folder = tmp_path / "kpis"
    folder.mkdir()
    shutil.copy(KPI_DIR / "kpi.schema.json", folder)
    document = json.loads((KPI_DIR / f"{kpi_id}.json").read_text(encoding="utf-8"))
    document.update(change)
    (folder / f"{kpi_id}.json").write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": "other"}, "differs from the file's name"),
        ({"direction": "sideways"}, "not a valid KPI file"),
        ({"target": {"fiscal_year": 2021, "change": -0.5}}, "must come after"),
        ({"target": {"fiscal_year": 2025}}, "not a valid KPI file"),
        ({"target": {"fiscal_year": 2025, "change": -0.5, "value": 3}}, "not a valid KPI file"),
        ({"aggregation": {"kind": "ratio", "numerator": ["枚数_カラー"]}}, "not a valid KPI file"),
        ({"aggregation": {"kind": "sum", "fields": []}}, "not a valid KPI file"),
        ({"extra": 1}, "not a valid KPI file"),
    ],
)
def test_broken_kpi_files_are_refused(tmp_path: Path, change: dict[str, Any], reason: str) -> None:
    folder = _copy(tmp_path, "copy-paper", change)
    with pytest.raises(KpiError, match=reason):
        load_kpis(folder)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path, "copy-paper", {})
    (folder / "copy-paper.json").write_text("{", encoding="utf-8")
    with pytest.raises(KpiError, match="not JSON"):
        load_kpis(folder)
