"""KPI progress from the catalog: the source datasets' live records, read through SQLAlchemy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.kpi.definitions import KpiDefinition
from cityos.domain.kpi.progress import KpiProgress, compute_progress
from cityos.domain.kpi.publication import Published
from cityos.kernel.db.models import Dataset, Record


def source_records(session: Session, dataset_id: str) -> list[Mapping[str, Any]]:
    """The data of every live record of a dataset (tombstones left out)."""
    rows = session.scalars(
        select(Record.data).where(Record.dataset_id == dataset_id, Record.deleted_at.is_(None))
    )
    return list(rows)


def kpi_progress(
    session: Session, kpis: Sequence[KpiDefinition], *, today: date, department: str | None = None
) -> list[KpiProgress]:
    """Each KPI's progress as of ``today``, for the whole city or one department. KPIs sharing a
    source dataset read it once."""
    records: dict[str, list[Mapping[str, Any]]] = {}
    result = []
    for kpi in kpis:
        if kpi.source_dataset not in records:
            records[kpi.source_dataset] = source_records(session, kpi.source_dataset)
        result.append(compute_progress(kpi, records[kpi.source_dataset], today=today, department=department))
    return result


def kpi_departments(session: Session, kpi: KpiDefinition) -> list[str]:
    """The departments with data for a KPI, sorted."""
    found = {data.get(kpi.department_field) for data in source_records(session, kpi.source_dataset)}
    return sorted(d for d in found if isinstance(d, str))


def sources_state(session: Session, kpis: Sequence[KpiDefinition]) -> dict[str, tuple[int, str]]:
    """Each source dataset's record count and last change: unchanged for a while once the catalog has
    applied what departments sent."""
    ids = sorted({kpi.source_dataset for kpi in kpis})
    rows = session.execute(
        select(Dataset.id, Dataset.record_count, Dataset.last_record_at).where(Dataset.id.in_(ids))
    )
    return {row.id: (row.record_count, str(row.last_record_at)) for row in rows}


def published_records(session: Session, dataset_id: str) -> dict[str, Published]:
    """Every record of a dataset by key, tombstones included (data None), with its last event id."""
    rows = session.execute(
        select(Record.record_key, Record.event_id, Record.data, Record.deleted_at).where(
            Record.dataset_id == dataset_id
        )
    )
    return {
        row.record_key: Published(
            event_id=row.event_id, data=None if row.deleted_at is not None else row.data
        )
        for row in rows
    }
