"""What a batch of validated record events does to the catalog, decided without touching it.

``plan_batch`` takes the events and a ``BatchSnapshot`` of what the database held for them (the
ledger of processed events, the stored records' versions, the datasets' metadata) and returns the
rows to write and the outcome of every event. It does no I/O: ``services.catalog.store`` reads the
snapshot, asks for the plan and writes it, so the rules of exactly-once, newest-wins application
can be read, and tested, apart from SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from cityos.kernel.events import ValidatedEvent
from cityos.kernel.schemas import location_fields
from cityos.kernel.timeutil import require_aware

# Ordering of record changes: event time, then position in the validated topic.
Version = tuple[datetime, int, int]
# (source, id) of an event in the ledger; (dataset, record key) of a record.
LedgerKey = tuple[str, str]
RecordKey = tuple[str, str]
# Field names of a dataset's latitude and longitude, from its metadata.
LocationFields = tuple[str, str]


class Outcome(StrEnum):
    """What the catalog does with one event of a batch."""

    APPLIED = "applied"  # the record is written
    DELETED = "deleted"  # the record is replaced by a tombstone (or one is left for an absent record)
    STALE = "stale"  # older than the record's state: ledgered, nothing else changes
    DUPLICATE = "duplicate"  # already processed (ledger, or earlier in the batch): never ledgered again
    # Rejected: the catalog has not been synced with the schema set that validated the event.
    UNKNOWN_DATASET = "unknown_dataset"


@dataclass(slots=True)
class BatchResult:
    """What ``apply_batch`` did; every event lands in exactly one of the four counts."""

    applied: int = 0  # upserts written
    deleted: int = 0  # deletions processed (record tombstoned, or already absent)
    stale: int = 0  # older than the stored state: recorded in the ledger, nothing else changed
    duplicate: int = 0  # (source, id) already in the ledger or earlier in the batch: nothing changed
    applied_by_dataset: dict[str, int] = field(default_factory=dict)  # upserts per dataset
    deleted_by_dataset: dict[str, int] = field(default_factory=dict)  # deletions per dataset

    @property
    def total(self) -> int:
        return self.applied + self.deleted + self.stale + self.duplicate


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record row as the database holds it: only what ordering needs. Tombstones included."""

    version: Version  # of the event that produced this state (a deletion too)
    source: str
    event_id: str
    present: bool  # False for a tombstone


@dataclass(frozen=True, slots=True)
class BatchSnapshot:
    """What the database held, before the batch, for the records, events and datasets it names."""

    processed: frozenset[LedgerKey]  # events of the batch already in the ledger
    records: Mapping[RecordKey, StoredRecord]  # stored rows of the batch's records
    datasets: Mapping[str, Mapping[str, Any]]  # metadata (dataset.json) of the batch's known datasets


@dataclass(frozen=True, slots=True)
class EventDecision:
    event: ValidatedEvent
    outcome: Outcome
    note: str | None = None  # the ledger's note: why nothing changed, or what was absent


@dataclass(frozen=True, slots=True)
class DatasetChange:
    """Changes to one dataset row: live records gained or lost, newest change applied."""

    dataset_id: str
    record_delta: int
    last_change: datetime | None


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """The writes of a batch, ready for bulk statements, and the decision about every event."""

    decisions: list[EventDecision]  # one per event, in batch order
    ledger_rows: list[dict[str, Any]]  # processed_events rows, in batch order
    inserts: list[dict[str, Any]]  # records rows for keys the database does not hold, by key
    updates: list[dict[str, Any]]  # records rows replacing stored ones (by primary key), by key
    rows: list[dict[str, Any]]  # inserts and updates together, by key: what one upsert writes
    datasets: list[DatasetChange]  # by dataset id
    result: BatchResult  # counts of the events that are not rejected
    # record_changes rows, in batch order: one per ledgered event, applied and stale alike.
    change_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rejected(self) -> list[EventDecision]:
        return [d for d in self.decisions if d.outcome is Outcome.UNKNOWN_DATASET]

    @property
    def unknown_datasets(self) -> list[str]:
        return sorted({d.event.dataset_id for d in self.rejected})


@dataclass(slots=True)
class _Change:
    """A record's state after an event of this batch, with the row that writes it."""

    version: Version
    source: str
    event_id: str
    present: bool  # False for a tombstone
    row: dict[str, Any]


def _bump(counts: dict[str, int], key: str, by: int = 1) -> None:
    counts[key] = counts.get(key, 0) + by


def _latest(moments: dict[str, datetime], key: str, moment: datetime) -> None:
    current = moments.get(key)
    if current is None or moment > current:
        moments[key] = moment


def _coordinate(value: object, limit: float) -> float | None:
    # bool is an int subclass, but a flag is no coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        return None
    return number


def _record_row(
    event: ValidatedEvent, version: Version, location: LocationFields | None, now: datetime
) -> dict[str, Any]:
    # Validated upserts always carry an object; {} only guards the type.
    data = event.data if event.data is not None else {}
    latitude = longitude = None
    if location is not None:
        latitude = _coordinate(data.get(location[0]), 90.0)
        longitude = _coordinate(data.get(location[1]), 180.0)
        if latitude is None or longitude is None:
            # Half a coordinate pair would place a point on the equator or the meridian.
            latitude = longitude = None
    return {
        "dataset_id": event.dataset_id,
        "record_key": event.record_key,
        "data": data,
        "schema_version": event.schema_version,
        "event_source": event.source,
        "event_id": event.id,
        "event_time": version[0],
        "kafka_partition": event.partition,
        "kafka_offset": event.offset,
        "latitude": latitude,
        "longitude": longitude,
        "updated_at": now,
        "deleted_at": None,
    }


def _tombstone_row(event: ValidatedEvent, version: Version, now: datetime) -> dict[str, Any]:
    # The same columns as _record_row (one executemany for both). The document and the coordinates go:
    # a deletion must not leave the data behind (personal data included); only the version stays.
    row = _record_row(event, version, None, now)
    row.update(data={}, deleted_at=now)
    return row


def _ledger_row(event: ValidatedEvent, outcome: Outcome, note: str | None, now: datetime) -> dict[str, Any]:
    return {
        "source": event.source,
        "event_id": event.id,
        "dataset_id": event.dataset_id,
        "outcome": outcome.value,
        "processed_at": now,
        "note": note,
    }


def _change_row(event: ValidatedEvent, version: Version, now: datetime) -> dict[str, Any]:
    # Stale events too: one lost to a newer change, yet still says what the record was at its time.
    return {
        "event_source": event.source,
        "event_id": event.id,
        "dataset_id": event.dataset_id,
        "record_key": event.record_key,
        "event_time": version[0],
        "kafka_partition": event.partition,
        "kafka_offset": event.offset,
        "schema_version": event.schema_version,
        "deleted": event.is_deletion,
        # A deletion keeps no document; a validated upsert always carries one ({} only guards the type).
        "data": None if event.is_deletion else (event.data if event.data is not None else {}),
        "applied_at": now,
    }


def _decide(
    event: ValidatedEvent, version: Version, state: _Change | StoredRecord | None
) -> tuple[Outcome, str | None]:
    """The outcome of a first delivery against the record's current state, and the ledger's note."""
    if state is not None and version <= state.version:
        # Redelivery and replay never roll a record back, a tombstone included.
        return Outcome.STALE, f"superseded by {state.source} {state.event_id}"
    if event.is_deletion:
        return Outcome.DELETED, None if state is not None and state.present else "record absent"
    return Outcome.APPLIED, None


def _net_effect(
    changes: Mapping[RecordKey, _Change],
    stored: Mapping[RecordKey, StoredRecord],
    last_change: Mapping[str, datetime],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[DatasetChange]]:
    """Rows to insert and update (and both, in key order), and dataset changes, against what the
    database held.

    Records and tombstones alike are rows: a key with a row is updated in place, a new key inserted;
    nothing is deleted. Key order: concurrent writers then lock rows in the same order, and B-tree
    pages are hit in turn; dataset order likewise keeps two consumers of the same datasets from
    deadlocking on their rows.
    """
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    count_delta: dict[str, int] = {}
    for record_key in sorted(changes):
        change = changes[record_key]
        before = stored.get(record_key)
        (updates if before is not None else inserts).append(change.row)
        rows.append(change.row)
        was_live = before is not None and before.present
        if change.present != was_live:
            _bump(count_delta, record_key[0], 1 if change.present else -1)
    datasets = [
        DatasetChange(dataset_id, count_delta.get(dataset_id, 0), last_change.get(dataset_id))
        for dataset_id in sorted(last_change.keys() | count_delta.keys())
    ]
    return inserts, updates, rows, datasets


def plan_batch(events: Sequence[ValidatedEvent], snapshot: BatchSnapshot, *, now: datetime) -> BatchPlan:
    """Decide every event of a batch, in order, against ``snapshot`` and the batch's earlier events.

    - an event of a dataset the snapshot does not know is rejected (``UNKNOWN_DATASET``);
    - an event whose (source, id) is in the ledger, or earlier in the batch, is a duplicate;
    - an upsert or deletion not newer than the record's state -- by (time, partition, offset) -- is
      stale: ledgered with the event that superseded it, nothing else changes;
    - otherwise the record's row is planned, or a tombstone replacing it (also for an absent record,
      so an older upsert arriving later cannot create it), and the dataset's count and last change.

    The state compared against is the latest of the batch's earlier changes and the stored row, a
    tombstone included. ``now`` stamps the ledger and the rows; naive datetimes raise ``ValueError``.
    """
    processed_at = require_aware(now)
    locations = {dataset_id: location_fields(meta) for dataset_id, meta in snapshot.datasets.items()}
    seen = set(snapshot.processed)
    changes: dict[RecordKey, _Change] = {}
    last_change: dict[str, datetime] = {}
    decisions: list[EventDecision] = []
    ledger_rows: list[dict[str, Any]] = []
    change_rows: list[dict[str, Any]] = []
    result = BatchResult()

    for event in events:
        if event.dataset_id not in locations:
            decisions.append(EventDecision(event, Outcome.UNKNOWN_DATASET))
            continue
        ledger_key = (event.source, event.id)
        if ledger_key in seen:
            decisions.append(EventDecision(event, Outcome.DUPLICATE))
            result.duplicate += 1
            continue
        seen.add(ledger_key)

        version: Version = (require_aware(event.time), event.partition, event.offset)
        record_key = (event.dataset_id, event.record_key)
        state: _Change | StoredRecord | None = changes.get(record_key)
        if state is None:
            state = snapshot.records.get(record_key)
        outcome, note = _decide(event, version, state)
        if outcome is Outcome.STALE:
            result.stale += 1
        elif outcome is Outcome.DELETED:
            if state is not None and state.present:
                _latest(last_change, event.dataset_id, version[0])
            row = _tombstone_row(event, version, processed_at)
            changes[record_key] = _Change(version, event.source, event.id, present=False, row=row)
            result.deleted += 1
            _bump(result.deleted_by_dataset, event.dataset_id)
        else:
            row = _record_row(event, version, locations[event.dataset_id], processed_at)
            changes[record_key] = _Change(version, event.source, event.id, present=True, row=row)
            _latest(last_change, event.dataset_id, version[0])
            result.applied += 1
            _bump(result.applied_by_dataset, event.dataset_id)
        decisions.append(EventDecision(event, outcome, note))
        ledger_rows.append(_ledger_row(event, outcome, note, processed_at))
        change_rows.append(_change_row(event, version, processed_at))

    inserts, updates, rows, datasets = _net_effect(changes, snapshot.records, last_change)
    return BatchPlan(decisions, ledger_rows, inserts, updates, rows, datasets, result, change_rows)
