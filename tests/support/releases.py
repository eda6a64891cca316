"""Set-up shared by the release tests: a catalog that already holds synthetic resident moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cityos.domain.anonymize.synthetic import as_records, synthetic_moves
from cityos.kernel.db.models import Record
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from services.catalog.store import sync_schema_set


def store_synthetic_moves(session: Session, *, count: int, seed: int, now: datetime) -> None:
    """The repository's schemas and `count` personal records, as the catalog consumer would have
    stored them (committed)."""
    store_moves(session, as_records(synthetic_moves(count, seed=seed)), now=now)


def store_moves(session: Session, records: list[dict[str, Any]], *, now: datetime) -> None:
    """The repository's schemas and these resident-move records, as the catalog consumer would have
    stored them (committed); records ingest would refuse today can still be in a catalog."""
    sync_schema_set(session, schema_set=load_schema_dir(REPO_ROOT / "schemas"), now=now)
    rows = [
        {
            "dataset_id": "resident-moves",
            "record_key": r["異動ID"],
            "data": r,
            "schema_version": 1,
            "event_source": "/test",
            "event_id": r["異動ID"],
            "event_time": now,
            "kafka_partition": 0,
            "kafka_offset": i,
            "updated_at": now,
        }
        for i, r in enumerate(records)
    ]
    session.execute(insert(Record), rows)
    session.commit()
