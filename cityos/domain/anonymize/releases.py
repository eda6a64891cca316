"""Releases as datasets: a passing gate run becomes a catalog dataset (``public`` open data, or
``partner`` for one approved applicant), its records inserted, its 概要 in the metadata; the
processing method goes only into a restricted audit record.

Service functions never commit: the caller owns the transaction, so a release, its records and
its audit entries land together or not at all.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cityos.domain.anonymize.gate import GateOutcome, run_gate
from cityos.domain.anonymize.profile import PROFILES_DIR, ProfileError, load_profile, profile_path
from cityos.domain.anonymize.verify import read_release
from cityos.domain.audit import record_audit
from cityos.domain.readmodel import queries
from cityos.domain.wire import Instant
from cityos.kernel.db.history_models import RecordChange
from cityos.kernel.db.models import Dataset, Record, SchemaVersionRow
from cityos.kernel.db.release_models import Release

RELEASE_CLASSIFICATIONS = ("public", "partner")
RESTRICTED_ACTION = "release.method"  # audit action of the restricted record: never published


class ReleaseError(Exception):
    """A release that cannot be made; ``reasons`` lists every reason."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class ReleaseResult:
    release: Release | None
    outcome: GateOutcome
    reasons: list[str] = field(default_factory=list)


def personal_frame(session: Session, dataset_id: str) -> pd.DataFrame:
    """Every live record of a dataset as a DataFrame (one column per field, missing = NaN)."""
    rows = session.scalars(
        select(Record.data)
        .where(Record.dataset_id == dataset_id, Record.deleted_at.is_(None))
        .order_by(Record.record_key)
    ).all()
    return pd.DataFrame.from_records(list(rows))


def latest_schema(session: Session, dataset_id: str) -> dict[str, Any] | None:
    """The document of the dataset's highest registered schema version."""
    row = queries.latest_schema(session, dataset_id=dataset_id)
    return None if row is None else row.document


def _release_schema(release_id: str, profile_columns: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://cityos.example/releases/{release_id}/1",
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {"type": "string", "title": name, "maxLength": 200} for name in profile_columns},
    }


def _overview(source: Dataset, outcome: GateOutcome, columns: list[str], now: datetime) -> dict[str, Any]:
    """The published 概要: number of 本人, items, date; nothing of the method."""
    return {
        "名称": f"{source.title_ja}（行政機関等匿名加工情報）",
        "本人の数": outcome.released_records,
        "項目": columns,
        "作成日": now.date().isoformat(),
    }


def create_release(
    session: Session,
    *,
    source_dataset_id: str,
    classification: str,
    operator: str,
    applicant_id: str | None = None,
    proposal_id: str | None = None,
    items: list[str] | None = None,
    profiles_dir: Path = PROFILES_DIR,
    now: datetime | None = None,
) -> ReleaseResult:
    """Run the gate over the catalog's records of a personal dataset; on success add the release.

    A partner release holds exactly ``items`` (its approved proposal's) and the row id; a public
    release holds the profile's whole output. There is no seed to choose: row order and
    pseudonyms come from the operating system's cryptographic generator (see ``gate``).
    """
    now = now or datetime.now(UTC)
    source = session.get(Dataset, source_dataset_id)
    reasons = _preconditions(source, classification, applicant_id, proposal_id, items)
    if source is None or reasons:
        raise ReleaseError(reasons or [f"no dataset {source_dataset_id}"])
    try:
        profile = load_profile(profile_path(source.id, profiles_dir))
    except ProfileError as exc:
        raise ReleaseError([f"release profile: {p}" for p in exc.problems]) from exc
    schema = latest_schema(session, source.id) or {}
    release_id = f"rel-{now:%Y%m%d}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / f"{release_id}.csv"
        frame = personal_frame(session, source.id)
        outcome = run_gate(frame, profile, schema, path=path, record_key=source.record_key, items=items)
        method = outcome.restricted_record(profile)
        if not outcome.passed:
            record_audit(
                session,
                actor=operator,
                action="release.refused",
                subject_kind="dataset",
                subject_id=source.id,
                detail={
                    "reasons": outcome.reasons,
                    "records": [found.as_json() for found in outcome.offending],
                    "method": method,
                    "proposal": proposal_id,
                },
                at=now,
            )
            return ReleaseResult(None, outcome, outcome.reasons)
        content = path.read_bytes()
        released = read_release(path)
    columns = [c for c in outcome.columns if c != profile.row_id]
    dataset_id = f"{source.id}-{release_id}"
    overview = _overview(source, outcome, columns, now)
    title_en = f"{source.title_en} (anonymized release)"
    license_id = "CC-BY-4.0" if classification == "public" else "提供契約による"
    session.add(
        Dataset(
            id=dataset_id,
            department_id=source.department_id,
            title_ja=overview["名称"],
            title_en=title_en,
            classification=classification,
            license=license_id,
            record_key=profile.row_id,
            # Shaped like a dataset.json, so every publish surface renders it as any other dataset.
            meta={
                "id": dataset_id,
                "title": {"ja": overview["名称"], "en": title_en},
                "description": {
                    "ja": f"{source.title_ja}を行政機関等匿名加工情報として加工したもの。"
                    f"本人の数 {overview['本人の数']}、項目 {'、'.join(columns)}。",
                    "en": f"Anonymized release of {source.title_en}: {overview['本人の数']} persons.",
                },
                "department": source.department_id,
                "license": license_id,
                "classification": classification,
                "record_key": profile.row_id,
                "location": None,
                "update_frequency": "irregular",
                "keywords": ["匿名加工情報", *source.meta.get("keywords", [])[:3]],
                "release": release_id,
                "source": source.id,
                "概要": overview,
            },
            record_count=len(released),
            last_record_at=now,
        )
    )
    session.flush()
    session.add(
        SchemaVersionRow(
            dataset_id=dataset_id,
            version=1,
            uri=f"https://cityos.example/releases/{release_id}/1",
            document=_release_schema(release_id, outcome.columns),
            registered_at=now,
        )
    )
    _insert_records(session, dataset_id, release_id, released, profile.row_id, now)
    release = Release(
        id=release_id,
        source_dataset_id=source.id,
        dataset_id=dataset_id,
        classification=classification,
        proposal_id=proposal_id,
        applicant_id=applicant_id,
        # The table's unique ``seed`` column now only numbers the run: it drives nothing (the
        # randomness comes from the OS), so knowing it gives no hold on the pseudonyms or order.
        seed=secrets.randbits(62),
        sha256=outcome.sha256 or "",
        content=content,
        row_count=len(released),
        overview=overview,
        created_by=operator,
        created_at=now,
    )
    session.add(release)
    session.flush()
    record_audit(
        session,
        actor=operator,
        action="release.created",
        subject_kind="release",
        subject_id=release_id,
        detail={
            "dataset": dataset_id,
            "source": source.id,
            "classification": classification,
            "applicant": applicant_id,
            "proposal": proposal_id,
            "rows": len(released),
        },
        at=now,
    )
    record_audit(
        session,
        actor=operator,
        action=RESTRICTED_ACTION,
        subject_kind="release",
        subject_id=release_id,
        detail=method,
        at=now,
    )
    return ReleaseResult(release, outcome)


def _preconditions(
    source: Dataset | None,
    classification: str,
    applicant_id: str | None,
    proposal_id: str | None,
    items: list[str] | None,
) -> list[str]:
    reasons = []
    if source is None:
        return ["no such dataset"]
    if source.classification != "personal":
        reasons.append(
            f"{source.id} is {source.classification}, not personal: it needs no anonymized release"
        )
    if classification not in RELEASE_CLASSIFICATIONS:
        reasons.append(f"classification must be one of {', '.join(RELEASE_CLASSIFICATIONS)}")
    if classification == "partner" and not (applicant_id and proposal_id and items):
        reasons.append("a partner release is made for an accepted proposal: use the proposal's release step")
    if classification == "public" and applicant_id:
        reasons.append("a public release is for everyone: no applicant")
    if classification == "public" and items is not None:
        reasons.append("a public release holds every item of its profile: no item list")
    return reasons


def _insert_records(
    session: Session, dataset_id: str, release_id: str, frame: pd.DataFrame, row_id: str, now: datetime
) -> None:
    # No Kafka position: a release is written by the catalog itself, not consumed from a topic.
    rows = [
        {
            "dataset_id": dataset_id,
            "record_key": record[row_id],
            "data": record,
            "schema_version": 1,
            "event_source": f"/releases/{release_id}",
            "event_id": record[row_id],
            "event_time": now,
            "kafka_partition": -1,
            "kafka_offset": -1,
            "latitude": None,
            "longitude": None,
            "updated_at": now,
            "deleted_at": None,
        }
        for record in frame.to_dict(orient="records")
    ]
    # The change log holds the release's rows too, so the release reads the same as of any instant after
    # its creation as it does now (snapshots and workspaces read through the log).
    changes = [
        {
            "event_source": row["event_source"],
            "event_id": row["event_id"],
            "dataset_id": dataset_id,
            "record_key": row["record_key"],
            "event_time": now,
            "kafka_partition": -1,
            "kafka_offset": -1,
            "schema_version": 1,
            "deleted": False,
            "data": row["data"],
            "applied_at": now,
        }
        for row in rows
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(Record), rows[start : start + 5000])
        session.execute(insert(RecordChange), changes[start : start + 5000])


def list_releases(session: Session) -> list[Release]:
    return list(session.scalars(select(Release).order_by(Release.created_at, Release.id)))


class ReleaseSummary(BaseModel):
    """What an operator list shows: never the content, never the method."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    id: str
    dataset: str
    source: str
    classification: str
    applicant: str | None
    proposal: str | None
    rows: int
    sha256: str
    overview: dict[str, Any] = Field(alias="概要", description="the published 概要 of the release")
    created_at: Instant
    created_by: str

    @classmethod
    def of(cls, release: Release) -> ReleaseSummary:
        return cls(
            id=release.id,
            dataset=release.dataset_id,
            source=release.source_dataset_id,
            classification=release.classification,
            applicant=release.applicant_id,
            proposal=release.proposal_id,
            rows=release.row_count,
            sha256=release.sha256,
            overview=release.overview,
            created_at=release.created_at,
            created_by=release.created_by,
        )
