"""The demo's KPI series: every department every month from April 2021 through today, figures that
depend on seed, department and month only, consistent counts, and departments on and off the plan."""

from __future__ import annotations

import json
from datetime import date

import jsonschema_rs
import pandas as pd
import pytest

from cityos.department.demo import demo_records
from cityos.department.demo_kpi import DEPARTMENTS, KPI_SOURCE_DATASETS, kpi_series, series_length
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings

SCHEMAS = load_schema_dir(Settings().schemas_dir)
TODAY = date(2025, 3, 31)  # the last day of FY2024


def _months(first: str, last: str) -> list[str]:
    return [p.strftime("%Y-%m") for p in pd.period_range(first, last, freq="M")]


def test_departments_are_the_city_departments() -> None:
    listed = json.loads((Settings().schemas_dir / "departments.json").read_text(encoding="utf-8"))
    assert list(DEPARTMENTS) == [(d["id"], d["name"]["ja"]) for d in listed]


@pytest.mark.parametrize("dataset_id", sorted(KPI_SOURCE_DATASETS))
def test_every_department_every_month_once_and_valid(dataset_id: str) -> None:
    records = kpi_series(dataset_id, series_length(TODAY), seed=2026)
    frame = pd.DataFrame(records)
    expected = {(d, m) for d, _ in DEPARTMENTS for m in _months("2021-04", "2025-03")}
    assert set(zip(frame["部局コード"], frame["年月"], strict=True)) == expected
    assert len(frame) == len(expected) and frame["ID"].is_unique
    assert (frame["ID"] == frame["部局コード"] + "-" + frame["年月"]).all()
    validator = jsonschema_rs.validator_for(SCHEMAS.latest(dataset_id).document, validate_formats=True)
    assert all(validator.is_valid(record) for record in records)
    assert set(frame["部局コード"]) <= set(SCHEMAS.departments)


@pytest.mark.parametrize("dataset_id", sorted(KPI_SOURCE_DATASETS))
def test_a_month_does_not_depend_on_the_length_of_the_series(dataset_id: str) -> None:
    short = kpi_series(dataset_id, series_length(date(2023, 6, 1)), seed=5)
    long = kpi_series(dataset_id, series_length(date(2026, 12, 2)), seed=5)
    assert long[: len(short)] == short
    assert kpi_series(dataset_id, 50, seed=6) != short[:50]


def test_counts_are_consistent() -> None:
    approvals = pd.DataFrame(kpi_series("e-approval", series_length(TODAY), seed=1))
    assert (approvals["電子決裁件数"] <= approvals["決裁件数"]).all()
    telework = pd.DataFrame(kpi_series("telework", series_length(TODAY), seed=1))
    assert (telework["テレワーク実施職員数"] <= telework["対象職員数"]).all()


def test_paper_falls_and_some_departments_lag() -> None:
    frame = pd.DataFrame(kpi_series("copier-usage", series_length(date(2026, 3, 31)), seed=2026))
    frame["pages"] = frame["枚数_モノクロ"] + frame["枚数_カラー"]
    frame["fy"] = frame["年月"].map(lambda m: int(m[:4]) - (int(m[5:]) < 4))
    by_year = frame.pivot_table(index="部局コード", columns="fy", values="pages", aggfunc="sum")
    cut = 1 - by_year[2025] / by_year[2021]
    assert 0.35 < 1 - by_year[2025].sum() / by_year[2021].sum() < 0.6
    assert (cut >= 0.45).sum() >= 4 and (cut < 0.4).sum() >= 2


@pytest.mark.parametrize("count", [1, 300, 2000])
def test_dx_kpi_demo_records_validate_with_unique_keys(count: int) -> None:
    document = SCHEMAS.latest("dx-kpi").document
    records = demo_records("dx-kpi", document, count=count, seed=2026)
    assert len({record["ID"] for record in records}) == len(records) == count
    assert records[0]["範囲"] == "city"  # the city's series first, then departments'
