"""Registration end to end: evaluate, write the version, publish it to the schema topic, commit.

The new version is on the schema topic (acknowledged) before the database commits: if publishing
fails nothing is registered; if the commit fails after publishing, the topic holds a version the
catalog lacks, which only widens what ingest accepts, and registering again repairs it (same URI).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.registry.store import Evaluation, add_version, dataset_meta, evaluate
from cityos.domain.registry.topic import SchemaChange, publish_changes
from cityos.kernel.db.models import Dataset, SchemaVersionRow

_ATTEMPTS = 3


def register(
    sessions: sessionmaker[Session],
    *,
    producer: Producer,
    schemas_topic: str,
    dataset_id: str,
    document: dict[str, Any],
    actor: str,
    bundle: dict[str, Any] | None = None,
) -> Evaluation:
    """Register ``document`` as the dataset's next version when lint and compatibility allow it.

    Returns the evaluation: ``existing`` (same schema already registered, nothing written),
    ``acceptable`` and new (registered now), or not acceptable (refused, with every reason).
    Raises ``UnknownDataset``; ``DeliveryFailed`` when the topic did not take the new version.
    """
    for attempt in range(_ATTEMPTS):
        try:
            with sessions.begin() as session:
                evaluation = evaluate(session, dataset_id=dataset_id, document=document, bundle=bundle)
                if evaluation.existing or not evaluation.acceptable:
                    return evaluation
                add_version(session, evaluation=evaluation, actor=actor)
                meta = dataset_meta(session, dataset_id)
                change = SchemaChange(
                    dataset=meta.model_dump(mode="json"),
                    version=evaluation.version,
                    uri=evaluation.uri,
                    document=evaluation.document,
                )
                publish_changes(producer, schemas_topic, [change])
            return evaluation
        except IntegrityError:
            # A concurrent registration took the number (add_version flushes before publishing, so
            # nothing went to the topic): evaluate again against the version it registered.
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def republish_all(sessions: sessionmaker[Session], *, producer: Producer, schemas_topic: str) -> int:
    """Publish every registered version again (the catalog does so at start-up): a schema topic that
    was lost or recreated is complete again, and compaction drops the repeats. Returns the count."""
    with sessions() as session:
        metas = {row.id: row.meta for row in session.scalars(select(Dataset))}
        changes = [
            SchemaChange(
                dataset=metas[row.dataset_id], version=row.version, uri=row.uri, document=row.document
            )
            for row in session.scalars(select(SchemaVersionRow).order_by(SchemaVersionRow.id))
            if row.dataset_id in metas
        ]
    publish_changes(producer, schemas_topic, changes, timeout_s=60)
    return len(changes)
