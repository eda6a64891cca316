"""The DX plan's KPIs as JSON: the city's progress for everyone, a department's own for that department.

The city-wide series are open data (the ``dx-kpi`` dataset publishes them too). A department's figures
come from internal datasets: only the department's own credential reads them, and every other caller
gets the same 404 for a department that exists as for one that does not, so the answer reveals nothing.
"""

# No ``from __future__ import annotations``: FastAPI reads handler annotations at runtime.

import re
from collections.abc import Collection
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cityos.domain.access import CallerKind
from cityos.domain.kpi.definitions import KpiDefinition, load_kpis, today_in_japan
from cityos.domain.kpi.progress import KpiProgress, KpiValue
from cityos.domain.kpi.reading import kpi_progress
from services.publish.context import COMMON_RESPONSES, ContextDep, SessionDep, caller_of, visible_datasets
from services.publish.responses import TextPair

# One body for every department the caller may not read, whether it exists or not.
KPI_NOT_FOUND = {"error": "not_found", "detail": "no KPI figures for this department that you may read"}
_DEPARTMENT_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MAX_DEPARTMENT_ID = 64


class KpiPoint(BaseModel):
    period: str = Field(description="`YYYY-MM` (a month) or `FY2024` (April 2024 to March 2025)")
    value: float | None = Field(description="Null: no data for the period")
    trajectory: float | None = Field(description="Where the value should be on the line baseline → target")


class KpiYearValue(BaseModel):
    fiscal_year: int
    value: float | None


class KpiBody(BaseModel):
    id: str = Field(examples=["copy-paper"])
    name: TextPair
    unit: TextPair
    direction: Literal["decrease", "increase"]
    source_dataset: str | None = Field(
        description="The dataset the KPI is computed from; null unless you may read it"
    )
    owner_department: str
    baseline: KpiYearValue
    target: KpiYearValue
    latest: KpiPoint | None = Field(
        description="The latest complete fiscal year with data, or the current year to date if none is complete"
    )
    progress: float | None = Field(description="Share of the way from baseline to target achieved, from 0")
    on_track: bool | None
    monthly: list[KpiPoint]
    fiscal_years: list[KpiPoint] = Field(description="Oldest first; the last is the current year to date")


class KpiReport(BaseModel):
    as_of: date = Field(description="The city's date (Japan) the figures are computed for")
    department: str | None = Field(description="Null: the whole city")
    kpis: list[KpiBody]


router = APIRouter(tags=["kpi"], responses=COMMON_RESPONSES)


@lru_cache(maxsize=4)
def _cached_kpis(kpi_dir: Path, stamp: tuple[tuple[str, int], ...]) -> list[KpiDefinition]:
    return load_kpis(kpi_dir)


def current_kpis(kpi_dir: Path) -> list[KpiDefinition]:
    """The KPI files, read again only when one of them changed."""
    stamp = tuple((file.name, file.stat().st_mtime_ns) for file in sorted(kpi_dir.glob("*.json")))
    return _cached_kpis(kpi_dir, stamp)


def _point(value: KpiValue | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"period": value.period, "value": value.value, "trajectory": value.trajectory}


def kpi_body(progress: KpiProgress, readable: Collection[str]) -> dict[str, Any]:
    """The KPI's JSON; its source dataset is named only to a caller who may read it (``readable``):
    the name of an internal dataset is not open data."""
    kpi = progress.kpi
    return {
        "id": kpi.id,
        "name": {"ja": kpi.name_ja, "en": kpi.name_en},
        "unit": {"ja": kpi.unit_ja, "en": kpi.unit_en},
        "direction": kpi.direction,
        "source_dataset": kpi.source_dataset if kpi.source_dataset in readable else None,
        "owner_department": kpi.owner_department,
        "baseline": {"fiscal_year": kpi.baseline_fiscal_year, "value": progress.baseline_value},
        "target": {"fiscal_year": kpi.target_fiscal_year, "value": progress.target_value},
        "latest": _point(progress.latest),
        "progress": progress.progress,
        "on_track": progress.on_track,
        "monthly": [_point(v) for v in progress.monthly],
        "fiscal_years": [_point(v) for v in progress.fiscal_years],
    }


def may_read_department(request: Request, department: str) -> bool:
    """Only the department's own credential reads its figures."""
    caller = caller_of(request)
    return caller.kind is CallerKind.department and caller.principal == department


@router.get(
    "/api/v1/kpis",
    summary="The DX plan's KPIs: the city's progress (open data), or your own department's",
    response_class=Response,
    responses={
        200: {"model": KpiReport, "content": {"application/json": {}}},
        404: {"description": "No KPI figures for this department that you may read"},
    },
)
def kpis(
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    department: Annotated[
        str | None,
        Query(
            description="A department id: its own figures, for that department's credential only",
            max_length=200,
        ),
    ] = None,
) -> Response:
    if department is not None and not (
        len(department) <= _MAX_DEPARTMENT_ID
        and _DEPARTMENT_ID.fullmatch(department)
        and may_read_department(request, department)
    ):
        raise HTTPException(status_code=404, detail=KPI_NOT_FOUND)
    today = today_in_japan()
    progress = kpi_progress(session, current_kpis(ctx.settings.kpi_dir), today=today, department=department)
    readable = {dataset.id for dataset, _ in visible_datasets(session, caller_of(request))}
    body = {
        "as_of": today.isoformat(),
        "department": department,
        "kpis": [kpi_body(p, readable) for p in progress],
    }
    return Response(orjson.dumps(body), media_type="application/json")
