"""Writing and reading the shared audit log (``audit_events``).

Callers own the transaction: ``record_audit`` only adds the row, so an audited change and its audit
entry commit (or roll back) together.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityos.domain.wire import Instant
from cityos.kernel.db.models import AuditEvent
from cityos.kernel.spreadsheet import formula_safe


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_kind: str,
    subject_id: str,
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Add one audit entry to ``session`` (not committed here)."""
    entry = AuditEvent(
        at=at or datetime.now(UTC),
        actor=actor,
        action=action,
        subject_kind=subject_kind,
        subject_id=subject_id,
        detail=detail or {},
    )
    session.add(entry)
    return entry


def list_audit(
    session: Session,
    *,
    subject_kind: str | None = None,
    subject_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> Sequence[AuditEvent]:
    """Audit entries matching every given filter, oldest first."""
    query = select(AuditEvent)
    if subject_kind is not None:
        query = query.where(AuditEvent.subject_kind == subject_kind)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return session.scalars(query.order_by(AuditEvent.id).limit(limit)).all()


class AuditEntryView(BaseModel):
    """An audit entry as the access API, its exports and ``cityos audit`` show it."""

    id: int
    at: Instant
    actor: str
    action: str
    subject_kind: str
    subject_id: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEvent) -> AuditEntryView:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            subject_kind=entry.subject_kind,
            subject_id=entry.subject_id,
            detail=entry.detail,
        )


AUDIT_COLUMNS = ("id", "at", "actor", "action", "subject_kind", "subject_id", "detail")


def audit_ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def _audit_cell(column: str, value: Any) -> str:
    text = orjson.dumps(value).decode() if column == "detail" else "" if value is None else str(value)
    return formula_safe(text)


def audit_csv(rows: list[dict[str, Any]]) -> bytes:
    """UTF-8 with a BOM (Excel opens Japanese text correctly); detail as a JSON cell.

    This file is made to be opened in a spreadsheet and its cells carry what callers chose (an
    actor's name, a refused field list), so formula-like cells are always neutralised.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(AUDIT_COLUMNS)
    for row in rows:
        writer.writerow([_audit_cell(c, row[c]) for c in AUDIT_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
