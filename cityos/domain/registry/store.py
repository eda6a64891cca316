"""Registry state in the catalog database: versions, compatibility levels, evaluation and registration.

Service functions take keyword-only arguments and never commit: the caller owns the transaction
(``cityos.domain.registry.service`` publishes the new version to the schema topic before it commits).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityos.domain.audit import record_audit
from cityos.domain.registry.compatibility import (
    DEFAULT_MODE,
    Incompatibility,
    IncompatibilityView,
    Mode,
    check_mode,
)
from cityos.domain.registry.lint import LintIssue, LintIssueView, lint_schema
from cityos.kernel.db.models import Dataset, SchemaVersionRow
from cityos.kernel.db.registry_models import SchemaCompatibility
from cityos.kernel.references import load_bundle
from cityos.kernel.schemas import DatasetMeta, schema_uri


class UnknownDataset(LookupError):
    """The dataset is not in the catalog (datasets come from ``schemas/<id>/dataset.json``)."""


@dataclass
class Evaluation:
    """What registering ``document`` for a dataset would do."""

    dataset_id: str
    mode: Mode
    version: int  # the version it has (existing) or would get (new)
    uri: str
    document: dict[str, Any]  # with its $id filled in
    existing: bool = False  # the same schema is already registered under ``version``
    lint: list[LintIssue] = field(default_factory=list)
    incompatibilities: list[Incompatibility] = field(default_factory=list)

    @property
    def acceptable(self) -> bool:
        return self.existing or (not self.lint and not self.incompatibilities)

    def view(self) -> EvaluationView:
        return EvaluationView(
            dataset=self.dataset_id,
            compatibility=self.mode,
            version=self.version,
            uri=self.uri,
            existing=self.existing,
            compatible=not self.incompatibilities,
            acceptable=self.acceptable,
            lint=[issue.view() for issue in self.lint],
            incompatibilities=[reason.view() for reason in self.incompatibilities],
        )

    def as_dict(self) -> dict[str, Any]:
        return self.view().model_dump(mode="json")


class EvaluationView(BaseModel):
    """The verdict on a candidate schema version: its number and URI, and every lint issue and
    incompatibility that refuses it."""

    dataset: str
    compatibility: Mode
    version: int = Field(description="the version it has (existing) or would get (new)")
    uri: str
    existing: bool = Field(description="the same schema is already registered under this version")
    compatible: bool
    acceptable: bool
    lint: list[LintIssueView]
    incompatibilities: list[IncompatibilityView]


def bundled_definitions(schemas_dir: Path) -> dict[str, Any]:
    """Shared definitions bundled with the schemas (``schemas/_shared/*.json``, by ``$id``)."""
    folder = schemas_dir / "_shared"
    return load_bundle(folder) if folder.is_dir() else {}


def dataset_meta(session: Session, dataset_id: str) -> DatasetMeta:
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise UnknownDataset(dataset_id)
    return DatasetMeta.model_validate(row.meta)


def versions_of(session: Session, dataset_id: str) -> list[SchemaVersionRow]:
    """Registered versions of a dataset, oldest first."""
    query = select(SchemaVersionRow).where(SchemaVersionRow.dataset_id == dataset_id)
    return list(session.scalars(query.order_by(SchemaVersionRow.version)))


def registered_documents(session: Session) -> dict[str, Any]:
    """Every registered version by URI: targets for ``$ref`` between datasets."""
    return {
        uri: document
        for uri, document in session.execute(select(SchemaVersionRow.uri, SchemaVersionRow.document))
    }


def compatibility_mode(session: Session, dataset_id: str) -> Mode:
    """The level an operator set, else the one the dataset declares (``compatibility`` in its
    dataset.json, which ``cityos schemas check`` enforces too), else BACKWARD."""
    row = session.get(SchemaCompatibility, dataset_id)
    if row is not None:
        return Mode(row.mode)
    dataset = session.get(Dataset, dataset_id)
    declared = dataset.meta.get("compatibility") if dataset is not None else None
    return Mode(declared) if isinstance(declared, str) else DEFAULT_MODE


def set_compatibility_mode(
    session: Session, *, dataset_id: str, mode: Mode, actor: str, now: datetime | None = None
) -> None:
    if session.get(Dataset, dataset_id) is None:
        raise UnknownDataset(dataset_id)
    moment = now or datetime.now(UTC)
    row = session.get(SchemaCompatibility, dataset_id)
    previous = row.mode if row is not None else compatibility_mode(session, dataset_id).value
    if row is None:
        session.add(
            SchemaCompatibility(dataset_id=dataset_id, mode=mode.value, updated_at=moment, updated_by=actor)
        )
    else:
        row.mode, row.updated_at, row.updated_by = mode.value, moment, actor
    record_audit(
        session,
        actor=actor,
        action="schema_compatibility_set",
        subject_kind="dataset",
        subject_id=dataset_id,
        detail={"from": previous, "to": mode.value},
        at=moment,
    )


def _same_json(left: Any, right: Any) -> bool:
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def _without_id(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "$id"}


def evaluate(
    session: Session,
    *,
    dataset_id: str,
    document: dict[str, Any],
    bundle: dict[str, Any] | None = None,
    mode: Mode | None = None,
) -> Evaluation:
    """Lint and compatibility of ``document`` as the dataset's next version, without writing anything.

    The same schema as a registered version (ignoring ``$id``) is that version: registering twice
    returns it. Otherwise the document gets the next version number, and its ``$id`` must be that
    version's URI or absent (then it is filled in).
    """
    meta = dataset_meta(session, dataset_id)
    chosen = mode or compatibility_mode(session, dataset_id)
    rows = versions_of(session, dataset_id)
    for row in rows:
        if _same_json(_without_id(row.document), _without_id(document)) and document.get("$id") in (
            None,
            row.uri,
        ):
            return Evaluation(dataset_id, chosen, row.version, row.uri, row.document, existing=True)
    version = (rows[-1].version if rows else 0) + 1
    uri = schema_uri(dataset_id, version)
    candidate = copy.deepcopy(document)
    candidate.setdefault("$id", uri)
    resources = {**(bundle or {}), **registered_documents(session)}
    evaluation = Evaluation(dataset_id, chosen, version, uri, candidate)
    evaluation.lint = lint_schema(candidate, uri=uri, meta=meta, resources=resources)
    if not any(
        issue.rule in ("valid_schema", "pattern_supported", "schema_size") for issue in evaluation.lint
    ):
        previous = [(row.version, row.document) for row in rows]
        evaluation.incompatibilities = check_mode(
            chosen, candidate, previous, resources=resources, candidate_label=f"v{version}"
        )
    return evaluation


def add_version(
    session: Session, *, evaluation: Evaluation, actor: str, now: datetime | None = None
) -> SchemaVersionRow:
    """Write an acceptable, new version (flushes, so a concurrent registration of the same number
    fails here on the unique constraint rather than at commit)."""
    if not evaluation.acceptable or evaluation.existing:
        raise ValueError("only an acceptable new version can be added")
    moment = now or datetime.now(UTC)
    row = SchemaVersionRow(
        dataset_id=evaluation.dataset_id,
        version=evaluation.version,
        uri=evaluation.uri,
        document=evaluation.document,
        registered_at=moment,
    )
    session.add(row)
    record_audit(
        session,
        actor=actor,
        action="schema_registered",
        subject_kind="schema",
        subject_id=evaluation.uri,
        detail={
            "dataset": evaluation.dataset_id,
            "version": evaluation.version,
            "mode": evaluation.mode.value,
        },
        at=moment,
    )
    session.flush()
    return row


def version_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(SchemaVersionRow)) or 0)
