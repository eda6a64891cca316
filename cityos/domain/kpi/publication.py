"""A KPI's series as records of the public dataset ``dx-kpi``: one per KPI × period × scope (pure).

Periods are months (``2024-04``) and fiscal years (``FY2024``); the scope is ``city``. The source
dataset is not named: it is internal, and its name is not open data. Values are
rounded to two decimals, enough for pages, hours and percentages, so the published figures do not
change with the last bits of a float. The record key ``<KPI>-<period>-<scope>`` (``copy-paper-fy2024-city``)
makes publishing again an update of the same record, never a second one; ``publication_plan`` sends
only what differs from the catalog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cityos.domain.kpi.definitions import month_fiscal_year
from cityos.domain.kpi.progress import KpiProgress, KpiValue

DATASET_ID = "dx-kpi"
CITY_SCOPE = "city"
KITAKYUSHU_CODE = "401005"
DIRECTIONS = {"decrease": "減少", "increase": "増加"}


def published_number(value: float) -> float:
    return round(value, 2)


def record_key(kpi_id: str, period: str, scope: str = CITY_SCOPE) -> str:
    return f"{kpi_id}-{period.lower()}-{scope}"


def _record(
    progress: KpiProgress, value: KpiValue, *, fiscal: bool, partial: bool, scope: str
) -> dict[str, Any]:
    kpi = progress.kpi
    year = int(value.period[2:]) if fiscal else month_fiscal_year(value.period)
    record: dict[str, Any] = {
        "ID": record_key(kpi.id, value.period, scope),
        "全国地方公共団体コード": KITAKYUSHU_CODE,
        "指標ID": kpi.id,
        "指標名": kpi.name_ja,
        "指標名_英語": kpi.name_en,
        "単位": kpi.unit_ja,
        "単位_英語": kpi.unit_en,
        "期間種別": "年度" if fiscal else "月",
        "期間": value.period,
        "年度": year,
        "年度途中": partial,
        "範囲": scope,
        "基準年度": kpi.baseline_fiscal_year,
        "目標年度": kpi.target_fiscal_year,
        "方向": DIRECTIONS[kpi.direction],
        "担当部局コード": kpi.owner_department,
    }
    optional = {
        "値": value.value,
        "目標軌道値": value.trajectory,
        "基準値": progress.baseline_value,
        "目標値": progress.target_value,
    }
    record.update({name: published_number(number) for name, number in optional.items() if number is not None})
    return record


def kpi_records(progress: KpiProgress) -> list[dict[str, Any]]:
    """The ``dx-kpi`` records of one KPI's progress: every month, then every fiscal year (the last,
    the current one, marked as year to date)."""
    scope = progress.department or CITY_SCOPE
    monthly = [_record(progress, v, fiscal=False, partial=False, scope=scope) for v in progress.monthly]
    last = len(progress.fiscal_years) - 1
    yearly = [
        _record(progress, v, fiscal=True, partial=i == last, scope=scope)
        for i, v in enumerate(progress.fiscal_years)
    ]
    return monthly + yearly


@dataclass(frozen=True, slots=True)
class Published:
    """A ``dx-kpi`` record as the catalog holds it: its last event and its data (None: deleted)."""

    event_id: str
    data: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class PublicationPlan:
    """What to send so the catalog holds exactly ``wanted``: upserts as (event id prefix, record), and
    the keys to delete with their event id prefix."""

    upserts: list[tuple[str, dict[str, Any]]]
    deletions: list[tuple[str, str]]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def publication_plan(wanted: list[dict[str, Any]], published: Mapping[str, Published]) -> PublicationPlan:
    """Only what differs from the catalog is sent. An event's id is made of the record and of the
    event the catalog last applied to that key: sending the plan twice before the catalog applied it
    repeats the same ids (ignored), while a figure that returns to an earlier value, or a record
    deleted by hand, gets a new id and is written again."""
    upserts = []
    for record in wanted:
        held = published.get(str(record["ID"]))
        if held is not None and held.data is not None and dict(held.data) == record:
            continue
        upserts.append((f"kpi-{_digest(record, held.event_id if held else None)}", record))
    keys = {str(record["ID"]) for record in wanted}
    deletions = [
        (f"kpi-delete-{_digest(key, held.event_id)}", key)
        for key, held in sorted(published.items())
        if held.data is not None and key not in keys
    ]
    return PublicationPlan(upserts=upserts, deletions=deletions)
