"""KPI progress from records: fiscal-year boundaries, sums and ratios of sums, baselines and targets,
the trajectory, the partial current year, and what a department gets."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from cityos.domain.kpi.definitions import Aggregation, KpiDefinition
from cityos.domain.kpi.progress import compute_progress

PAPER = KpiDefinition(
    id="paper", name_ja="紙", name_en="Paper", unit_ja="枚", unit_en="pages", source_dataset="copier-usage",
    owner_department="digital", aggregation=Aggregation(kind="sum", fields=("白黒", "カラー")),
    direction="decrease", baseline_fiscal_year=2021, baseline_value=None, target_value=None,
    target_change=-0.5, target_fiscal_year=2025, description_ja="紙", description_en="paper",
)  # fmt: skip
RATE = dataclasses.replace(
    PAPER, id="rate", unit_ja="%", unit_en="%", direction="increase", target_change=None, target_value=90.0,
    aggregation=Aggregation(kind="ratio", fields=("電子",), denominator=("全部",), scale=100.0),
)  # fmt: skip


def _paper(department: str, month: str, mono: int, colour: int = 0) -> dict[str, Any]:
    return {"部局コード": department, "年月": month, "白黒": mono, "カラー": colour}


def _rate(department: str, month: str, electronic: int, total: int) -> dict[str, Any]:
    return {"部局コード": department, "年月": month, "電子": electronic, "全部": total}


def _by_period(values: list[Any]) -> dict[str, Any]:
    return {v.period: v for v in values}


def test_march_closes_the_fiscal_year_and_april_opens_the_next() -> None:
    records = [_paper("a", "2022-03", 100, 5), _paper("a", "2022-04", 1000), _paper("a", "2021-04", 10)]
    progress = compute_progress(PAPER, records, today=date(2022, 4, 1))
    years = _by_period(progress.fiscal_years)
    assert years["FY2021"].value == 115 and years["FY2022"].value == 1000
    assert list(years) == ["FY2021", "FY2022"]
    # 1 April: FY2021 is complete, FY2022 (one month) is the year to date.
    assert progress.latest is not None and progress.latest.period == "FY2021"
    assert progress.monthly[0].period == "2021-04" and progress.monthly[-1].period == "2022-04"
    months = _by_period(progress.monthly)
    assert months["2022-03"].value == 105 and months["2021-05"].value is None


def test_on_31_march_the_year_is_still_the_current_one() -> None:
    records = [_paper("a", "2021-04", 10), _paper("a", "2022-03", 30)]
    progress = compute_progress(PAPER, records, today=date(2022, 3, 31))
    assert [v.period for v in progress.fiscal_years] == ["FY2021"]
    # No complete year: latest is the year to date.
    assert progress.latest is not None and progress.latest.period == "FY2021" and progress.latest.value == 40


def test_records_after_today_are_left_out() -> None:
    records = [_paper("a", "2021-04", 10), _paper("a", "2021-06", 99)]
    progress = compute_progress(PAPER, records, today=date(2021, 5, 31))
    assert [v.period for v in progress.monthly] == ["2021-04", "2021-05"]
    assert progress.fiscal_years[0].value == 10


def test_relative_target_trajectory_progress_and_on_track() -> None:
    records = [
        _paper("a", f"{y}-{m:02d}", pages)
        for y, pages in ((2021, 100), (2022, 90), (2023, 60))
        for m in (5, 6)
    ]
    progress = compute_progress(PAPER, records, today=date(2024, 3, 1))
    assert progress.baseline_value == 200 and progress.target_value == 100
    years = _by_period(progress.fiscal_years)
    # A straight line from 200 (FY2021) to 100 (FY2025): 25 a year.
    assert years["FY2021"].trajectory == 200 and years["FY2022"].trajectory == 175
    assert years["FY2022"].value == 180
    # FY2023 is the current year: two months of data, the trajectory scaled to them.
    assert years["FY2023"].value == 120 and years["FY2023"].trajectory == pytest.approx(150 * 2 / 12)
    assert progress.latest is not None and progress.latest.period == "FY2022"
    assert progress.progress == pytest.approx((200 - 180) / (200 - 100))
    assert progress.on_track is False  # 180 pages where 175 were due
    # A month carries a twelfth of its year's line.
    assert _by_period(progress.monthly)["2022-05"].trajectory == pytest.approx(175 / 12)


def test_stated_baseline_wins_for_the_city_only() -> None:
    records = [_paper("a", "2021-05", 100), _paper("b", "2021-05", 300), _paper("a", "2022-05", 50)]
    stated = dataclasses.replace(PAPER, baseline_value=1000.0)
    city = compute_progress(stated, records, today=date(2023, 1, 1))
    assert city.baseline_value == 1000 and city.target_value == 500
    department = compute_progress(stated, records, today=date(2023, 1, 1), department="a")
    assert department.baseline_value == 100 and department.target_value == 50
    assert department.latest is not None and department.latest.value == 100  # FY2021, the complete year
    assert department.progress == 0.0


def test_a_rate_is_a_ratio_of_sums_and_its_target_applies_to_departments() -> None:
    records = [_rate("a", "2021-04", 1, 10), _rate("b", "2021-04", 90, 90), _rate("a", "2021-05", 9, 10)]
    progress = compute_progress(RATE, records, today=date(2022, 6, 1))
    months = _by_period(progress.monthly)
    assert months["2021-04"].value == pytest.approx(91 / 100 * 100)  # not the mean of 10 % and 100 %
    assert progress.fiscal_years[0].value == pytest.approx(100 / 110 * 100)
    assert months["2021-04"].trajectory == pytest.approx(100 / 110 * 100)  # a rate's month: its year's line
    department = compute_progress(RATE, records, today=date(2022, 6, 1), department="a")
    assert department.baseline_value == pytest.approx(50.0) and department.target_value == 90


def test_an_absolute_sum_target_belongs_to_the_city() -> None:
    hours = dataclasses.replace(PAPER, direction="increase", target_change=None, target_value=1000.0)
    records = [_paper("a", "2021-05", 100), _paper("a", "2022-05", 400)]
    city = compute_progress(hours, records, today=date(2023, 5, 1))
    assert city.target_value == 1000 and city.progress == pytest.approx((400 - 100) / (1000 - 100))
    department = compute_progress(hours, records, today=date(2023, 5, 1), department="a")
    assert department.target_value is None and department.progress is None and department.on_track is None


def test_no_data_gives_no_value_and_no_progress() -> None:
    progress = compute_progress(PAPER, [], today=date(2023, 5, 1))
    assert all(v.value is None for v in progress.monthly + progress.fiscal_years)
    assert progress.baseline_value is None and progress.latest is None and progress.progress is None
    # A zero denominator is no rate, not a division error.
    rate = compute_progress(RATE, [_rate("a", "2021-04", 0, 0)], today=date(2021, 4, 30))
    assert rate.monthly[0].value is None


def test_the_year_to_date_of_a_sum_is_annualised_for_progress() -> None:
    hours = dataclasses.replace(PAPER, direction="increase", target_change=None, target_value=2400.0)
    records = [_paper("a", "2021-04", 100), _paper("a", "2021-05", 100)]
    progress = compute_progress(hours, records, today=date(2021, 5, 20))
    assert progress.latest is not None and progress.latest.value == 200
    # 200 in two months is 1,200 a year; the baseline is the year itself (200), the target 2,400.
    assert progress.progress == pytest.approx((1200 - 200) / (2400 - 200))


def test_malformed_months_and_values_are_ignored() -> None:
    records = [
        _paper("a", "2021-13", 5),
        {"部局コード": "a", "年月": 202104, "白黒": 5},
        {"部局コード": "a", "年月": "2021-04", "白黒": "5", "カラー": True},
        _paper("a", "2021-04", 7),
    ]
    progress = compute_progress(PAPER, records, today=date(2021, 4, 30))
    assert [(v.period, v.value) for v in progress.monthly] == [("2021-04", 7)]
