"""The DX plan's KPIs as reviewed files: ``kpis/<id>.json``, one per indicator, checked when loaded.

A KPI says which dataset feeds it, how a month's value is computed from that dataset's records (a sum
of fields, or a ratio of two sums), its baseline fiscal year, and its target (absolute, or relative to
the baseline) with the fiscal year it is due. Years are the Japanese fiscal year, April to March.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jsonschema_rs

from cityos.kernel.errors import CityOSError

SCHEMA_FILE = "kpi.schema.json"
# A KPI file is a few kilobytes; anything far larger is not one.
MAX_FILE_BYTES = 256 * 1024


class KpiError(CityOSError):
    """A KPI file that is not a valid KPI definition."""


JAPAN = ZoneInfo("Asia/Tokyo")


def today_in_japan() -> date:
    """The city's date: a month or a fiscal year turns at midnight in Japan, not in UTC."""
    return datetime.now(JAPAN).date()


def fiscal_year(day: date) -> int:
    """The Japanese fiscal year a day falls in: April to March, named by the year it starts
    (2022-03-31 is FY2021, 2022-04-01 is FY2022)."""
    return day.year if day.month >= 4 else day.year - 1


def month_fiscal_year(month: str) -> int:
    """The fiscal year of a ``YYYY-MM`` month."""
    return fiscal_year(date(int(month[:4]), int(month[5:7]), 1))


def fiscal_year_months(year: int) -> list[str]:
    """The twelve ``YYYY-MM`` months of a fiscal year, April first."""
    return [f"{year + (m < 4)}-{m:02d}" for m in (*range(4, 13), 1, 2, 3)]


@dataclass(frozen=True, slots=True)
class Aggregation:
    """How a period's value comes from the period's records.

    ``sum``: the sum of ``fields`` over the records. ``ratio``: the sum of ``fields`` (numerator) over
    the sum of ``denominator``, times ``scale`` (100 for a percentage). A ratio is of sums, never a mean
    of ratios, so a large department weighs as much as its numbers say.
    """

    kind: Literal["sum", "ratio"]
    fields: tuple[str, ...]
    denominator: tuple[str, ...] = ()
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class KpiDefinition:
    """One indicator of the DX plan, from ``kpis/<id>.json``."""

    id: str
    name_ja: str
    name_en: str
    unit_ja: str
    unit_en: str
    source_dataset: str
    owner_department: str
    aggregation: Aggregation
    direction: Literal["decrease", "increase"]
    baseline_fiscal_year: int
    baseline_value: float | None  # None: computed from the data of the baseline fiscal year
    target_value: float | None  # an absolute target for the city …
    target_change: float | None  # … or one relative to the baseline (-0.5: half of it)
    target_fiscal_year: int
    description_ja: str
    description_en: str
    month_field: str = "年月"
    department_field: str = "部局コード"

    @property
    def is_sum(self) -> bool:
        return self.aggregation.kind == "sum"


def _validator(kpi_dir: Path) -> Any:
    schema_file = kpi_dir / SCHEMA_FILE
    try:
        document = json.loads(schema_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KpiError(f"{schema_file}: cannot read the KPI schema: {exc}") from exc
    return jsonschema_rs.validator_for(document)


def _definition(document: dict[str, Any]) -> KpiDefinition:
    aggregation = document["aggregation"]
    if aggregation["kind"] == "sum":
        agg = Aggregation(kind="sum", fields=tuple(aggregation["fields"]))
    else:
        agg = Aggregation(
            kind="ratio",
            fields=tuple(aggregation["numerator"]),
            denominator=tuple(aggregation["denominator"]),
            scale=float(aggregation["scale"]),
        )
    baseline, target, source = document["baseline"], document["target"], document["source"]
    value = baseline["value"]
    return KpiDefinition(
        id=document["id"],
        name_ja=document["name"]["ja"],
        name_en=document["name"]["en"],
        unit_ja=document["unit"]["ja"],
        unit_en=document["unit"]["en"],
        source_dataset=source["dataset"],
        owner_department=document["owner_department"],
        aggregation=agg,
        direction=document["direction"],
        baseline_fiscal_year=baseline["fiscal_year"],
        baseline_value=None if value is None else float(value),
        target_value=float(target["value"]) if "value" in target else None,
        target_change=float(target["change"]) if "change" in target else None,
        target_fiscal_year=target["fiscal_year"],
        description_ja=document["description"]["ja"],
        description_en=document["description"]["en"],
        month_field=source["month_field"],
        department_field=source["department_field"],
    )


def parse_kpi(document: Any, validator: Any, *, name: str) -> KpiDefinition:
    """A KPI definition from a parsed file; ``name`` is the file's stem, which must be its id."""
    errors = [error.message for error in validator.iter_errors(document)]
    if errors:
        raise KpiError(f"{name}: not a valid KPI file: {errors[0]}")
    if document["id"] != name:
        raise KpiError(f"{name}: the id {document['id']!r} differs from the file's name")
    if document["target"]["fiscal_year"] <= document["baseline"]["fiscal_year"]:
        raise KpiError(f"{name}: the target's fiscal year must come after the baseline's")
    return _definition(document)


def load_kpis(kpi_dir: Path) -> list[KpiDefinition]:
    """Every KPI file of ``kpi_dir`` (``<id>.json`` besides the schema), checked, sorted by id."""
    validator = _validator(kpi_dir)
    kpis = []
    for file in sorted(kpi_dir.glob("*.json")):
        if file.name == SCHEMA_FILE:
            continue
        if file.stat().st_size > MAX_FILE_BYTES:
            raise KpiError(f"{file}: larger than {MAX_FILE_BYTES} bytes")
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise KpiError(f"{file}: not JSON: {exc}") from exc
        kpis.append(parse_kpi(document, validator, name=file.stem))
    return sorted(kpis, key=lambda kpi: kpi.id)
