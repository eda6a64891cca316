"""Synthetic resident moves as CloudEvents on the citizens department's topic, like any department's."""

from __future__ import annotations

from collections.abc import Iterator

from cityos.anonymize.synthetic import as_records, synthetic_moves
from cityos.outbox import record_event
from cityos.schemas import SchemaSet
from cityos.settings import Settings

DATASET = "resident-moves"


def synthetic_move_events(
    schema_set: SchemaSet, settings: Settings, *, count: int, seed: int
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one upsert per synthetic record; same seed, same events and ids."""
    meta = schema_set.datasets[DATASET]
    version = schema_set.latest(DATASET)
    topic = settings.department_topic(meta.department)
    source = f"/departments/{meta.department}/synthetic"
    for record in as_records(synthetic_moves(count, seed=seed)):
        key = str(record[meta.record_key])
        value = record_event(
            record=record,
            dataschema=version.uri,
            source=source,
            event_id=f"synthetic-{seed}-{key}",
            subject=key,
        )
        yield topic, f"{DATASET}/{key}".encode(), value
