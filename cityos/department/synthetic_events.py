"""Synthetic resident moves as CloudEvents on the citizens department's topic, like any department's."""

from __future__ import annotations

from collections.abc import Iterator

from cityos.department.outbox import upsert_events
from cityos.domain.anonymize.synthetic import as_records, synthetic_moves
from cityos.kernel.schemas import SchemaSet
from cityos.kernel.settings import Settings

DATASET = "resident-moves"


def synthetic_move_events(
    schema_set: SchemaSet, settings: Settings, *, count: int, seed: int
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one upsert per synthetic record; same seed, same events and ids."""
    records = as_records(synthetic_moves(count, seed=seed))
    yield from upsert_events(
        schema_set, settings, DATASET, records, origin="synthetic", id_prefix=f"synthetic-{seed}"
    )
