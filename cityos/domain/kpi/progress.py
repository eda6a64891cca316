"""A KPI's monthly and fiscal-year values, its trajectory and its progress: pure, from source records.

Rules (docs/kpi.md says the same for the reader):

- A month's value comes from that month's records by the KPI's aggregation; a fiscal year's from the
  year's records the same way (a sum over the year, or the ratio of the year's sums). No record, no value.
- The baseline is the file's stated value (city only) or the baseline fiscal year's computed value. A
  relative target is resolved against that baseline. An absolute target of a sum (100,000 hours) belongs
  to the city and has no share per department; a rate's target applies to every department.
- The trajectory is the straight line from the baseline (in the baseline year) to the target (in the
  target year), one value per fiscal year, the target after it. A month of a sum carries a twelfth of
  its year's; a rate's month carries its year's. The current fiscal year is partial: a sum's trajectory
  is scaled to the months with data so the year to date compares with it.
- ``latest`` is the latest complete fiscal year with data, or the current year to date when no year is
  complete. ``progress`` is the share of the way from baseline to target that ``latest`` has gone
  (a partial sum annualised), never below 0. ``on_track``: ``latest`` at or better than its trajectory.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from cityos.domain.kpi.definitions import Aggregation, KpiDefinition, fiscal_year, month_fiscal_year

_MONTH = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])")


@dataclass(frozen=True, slots=True)
class KpiValue:
    period: str  # "2024-04" (a month) or "FY2024" (a fiscal year)
    value: float | None  # None: no data for the period
    trajectory: float | None  # where the value should be on the straight line baseline → target


@dataclass(frozen=True, slots=True)
class KpiProgress:
    kpi: KpiDefinition
    department: str | None  # None: the whole city
    baseline_value: float | None
    target_value: float | None  # absolute (a relative target resolved against the baseline)
    monthly: list[KpiValue]  # oldest first
    fiscal_years: list[KpiValue]  # oldest first; the current fiscal year is partial (year to date)
    latest: KpiValue | None  # the latest complete fiscal year, or the current year to date
    progress: float | None  # share of the way from baseline to target achieved (0.0 … 1.0+)
    on_track: bool | None  # latest value at or better than its trajectory


def fiscal_period(year: int) -> str:
    return f"FY{year}"


@dataclass(slots=True)
class _Sums:
    numerator: float = 0.0
    denominator: float = 0.0
    records: int = 0

    def add(self, other: _Sums) -> None:
        self.numerator += other.numerator
        self.denominator += other.denominator
        self.records += other.records


def _number(value: Any) -> float:
    # The schemas make these fields numbers; anything else (an absent optional field) counts as 0.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _record_sums(aggregation: Aggregation, data: Mapping[str, Any]) -> _Sums:
    return _Sums(
        numerator=sum(_number(data.get(name)) for name in aggregation.fields),
        denominator=sum(_number(data.get(name)) for name in aggregation.denominator),
        records=1,
    )


def monthly_sums(
    kpi: KpiDefinition, records: Iterable[Mapping[str, Any]], *, department: str | None
) -> dict[str, _Sums]:
    """Numerator and denominator sums per ``YYYY-MM`` month, of one department or the whole city."""
    months: dict[str, _Sums] = defaultdict(_Sums)
    for data in records:
        month = data.get(kpi.month_field)
        if not isinstance(month, str) or not _MONTH.fullmatch(month):
            continue
        if department is not None and data.get(kpi.department_field) != department:
            continue
        months[month].add(_record_sums(kpi.aggregation, data))
    return months


def _value(aggregation: Aggregation, sums: _Sums | None) -> float | None:
    if sums is None or sums.records == 0:
        return None
    if aggregation.kind == "sum":
        return sums.numerator
    if sums.denominator <= 0:
        return None
    return sums.numerator / sums.denominator * aggregation.scale


def _months_between(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:7])
    months = []
    while (current := f"{year}-{month:02d}") <= last:
        months.append(current)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def resolved_target(kpi: KpiDefinition, baseline: float | None, *, department: str | None) -> float | None:
    """The target as a value: relative targets against the baseline; a sum's absolute target is the
    city's alone (no department has a share of it)."""
    if kpi.target_change is not None:
        return None if baseline is None else baseline * (1 + kpi.target_change)
    if department is not None and kpi.is_sum:
        return None
    return kpi.target_value


def trajectory(kpi: KpiDefinition, baseline: float | None, target: float | None, year: int) -> float | None:
    """Where a fiscal year's value should be on the straight line from baseline to target."""
    if baseline is None or target is None or year < kpi.baseline_fiscal_year:
        return None
    if year >= kpi.target_fiscal_year:
        return target
    share = (year - kpi.baseline_fiscal_year) / (kpi.target_fiscal_year - kpi.baseline_fiscal_year)
    return baseline + (target - baseline) * share


def compute_progress(
    kpi: KpiDefinition,
    records: Iterable[Mapping[str, Any]],
    *,
    today: date,
    department: str | None = None,
) -> KpiProgress:
    """The KPI's progress from the source dataset's records (their data), as of ``today``."""
    current_month = f"{today.year}-{today.month:02d}"
    current_year = fiscal_year(today)
    by_month = {
        m: s for m, s in monthly_sums(kpi, records, department=department).items() if m <= current_month
    }
    first_month = min([f"{kpi.baseline_fiscal_year}-04", *by_month])
    years: dict[int, _Sums] = defaultdict(_Sums)
    months_with_data: dict[int, int] = defaultdict(int)
    for month, sums in by_month.items():
        years[month_fiscal_year(month)].add(sums)
        months_with_data[month_fiscal_year(month)] += 1

    agg = kpi.aggregation
    stated = kpi.baseline_value if department is None else None
    baseline = stated if stated is not None else _value(agg, years.get(kpi.baseline_fiscal_year))
    target = resolved_target(kpi, baseline, department=department)

    def year_trajectory(year: int) -> float | None:
        line = trajectory(kpi, baseline, target, year)
        if line is None or not kpi.is_sum or year < current_year:
            return line
        months = months_with_data.get(year, 0)
        return line * months / 12 if months else None  # the year to date

    monthly = []
    for month in _months_between(first_month, current_month):
        line = trajectory(kpi, baseline, target, month_fiscal_year(month))
        if line is not None and kpi.is_sum:
            line /= 12
        monthly.append(KpiValue(period=month, value=_value(agg, by_month.get(month)), trajectory=line))
    fiscal_years = [
        KpiValue(
            period=fiscal_period(year), value=_value(agg, years.get(year)), trajectory=year_trajectory(year)
        )
        for year in range(month_fiscal_year(first_month), current_year + 1)
    ]

    complete = [v for v in fiscal_years[:-1] if v.value is not None]
    partial = fiscal_years[-1] if fiscal_years and fiscal_years[-1].value is not None else None
    latest = complete[-1] if complete else partial
    progress = on_track = None
    if latest is not None and latest.value is not None:
        comparable = latest.value
        if latest is partial and kpi.is_sum:
            comparable = latest.value * 12 / months_with_data[current_year]
        if baseline is not None and target is not None and target != baseline:
            progress = max(0.0, (comparable - baseline) / (target - baseline))
        if latest.trajectory is not None:
            if kpi.direction == "decrease":
                on_track = latest.value <= latest.trajectory
            else:
                on_track = latest.value >= latest.trajectory
    return KpiProgress(
        kpi=kpi,
        department=department,
        baseline_value=baseline,
        target_value=target,
        monthly=monthly,
        fiscal_years=fiscal_years,
        latest=latest,
        progress=progress,
        on_track=on_track,
    )
