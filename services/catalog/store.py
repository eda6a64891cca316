"""Catalog writes: schema-set synchronisation and idempotent application of validated record events.

Service functions take keyword-only arguments and never commit: the caller owns the transaction, so
the consumer commits Kafka offsets only after the transaction holding these writes has committed.
Portable across SQLite and PostgreSQL (plain SQLAlchemy constructs, no dialect-specific upserts).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import case, func, insert, literal, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from cityos.kernel.db.models import (
    Base,
    Dataset,
    Department,
    ProcessedEvent,
    Record,
    SchemaVersionRow,
    UTCDateTime,
)
from cityos.kernel.errors import SchemaError
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.jsonutil import json_equal
from cityos.kernel.timeutil import require_aware

if TYPE_CHECKING:
    from cityos.kernel.schemas import SchemaSet

# Ledger outcomes. A duplicate is never written: the ledger row of its first delivery already exists.
OUTCOME_APPLIED: Final = "applied"
OUTCOME_DELETED: Final = "deleted"
OUTCOME_STALE: Final = "stale"

# Keys per IN list. A chunk of composite keys binds at most twice that many values, which stays under
# the 999 variables of SQLite builds older than 3.32; a batch of 500 events needs two queries.
IN_CHUNK: Final = 400

_T = TypeVar("_T")
_M = TypeVar("_M", bound=Base)

# Ordering of record changes: event time, then position in the validated topic.
_Version = tuple[datetime, int, int]
_Key = tuple[str, str]


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


@dataclass(slots=True)
class _RecordState:
    """A record as known while a batch is applied: from the database, then changed in memory."""

    version: _Version  # of the event that produced this state (a deletion too)
    source: str
    event_id: str
    row: dict[str, Any] | None  # values to write (a record or a tombstone); None while unchanged
    present: bool  # False for a tombstone


def _chunks(items: Sequence[_T], size: int = IN_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


def _location_fields(meta: Mapping[str, Any]) -> tuple[str, str] | None:
    location = meta.get("location")
    if not isinstance(location, Mapping):
        return None
    latitude, longitude = location.get("latitude"), location.get("longitude")
    if isinstance(latitude, str) and isinstance(longitude, str):
        return latitude, longitude
    return None


def _set_if_changed(obj: object, **values: Any) -> None:
    # Assigning an equal value is harmless for the ORM, but skipping it keeps flushes minimal and
    # avoids rewriting JSON columns whose stored form only differs in key order.
    for name, value in values.items():
        current = getattr(obj, name)
        if not json_equal(current, value):
            setattr(obj, name, value)


def _dump(model: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped


def _by_ids(
    session: Session, entity: type[_M], column: InstrumentedAttribute[str], ids: Collection[str]
) -> Iterator[_M]:
    for chunk in _chunks(sorted(ids)):
        yield from session.scalars(select(entity).where(column.in_(chunk)))


def sync_schema_set(session: Session, *, schema_set: SchemaSet, now: datetime | None = None) -> None:
    """Upsert departments, datasets and schema versions of ``schema_set`` into the catalog.

    Rows absent from the set are kept: records and feeds still refer to them. A schema version is
    immutable once registered: the same URI with another document, dataset or version number raises
    ``SchemaError`` (events already validated against the old document would silently change meaning).
    """
    registered_at = require_aware(now) if now is not None else datetime.now(UTC)

    departments = {dep.id: _dump(dep) for dep in schema_set.departments.values()}
    stored_departments: dict[str, Department] = {
        row.id: row for row in _by_ids(session, Department, Department.id, departments.keys())
    }
    for dep_id, dumped in departments.items():
        values = {
            "name_ja": dumped["name"]["ja"],
            "name_en": dumped["name"]["en"],
            "kafka_principal": dumped.get("kafka_principal"),
        }
        dep_row = stored_departments.get(dep_id)
        if dep_row is None:
            session.add(Department(id=dep_id, **values))
        else:
            _set_if_changed(dep_row, **values)
    # Flush table by table: referenced rows exist before the rows that reference them without relying
    # on the unit of work (the models declare no relationships), and errors surface at their stage.
    session.flush()

    datasets = {meta.id: _dump(meta) for meta in schema_set.datasets.values()}
    referenced = {dumped["department"] for dumped in datasets.values()}
    known_departments = set(departments) | {
        row.id for row in _by_ids(session, Department, Department.id, referenced - departments.keys())
    }
    stored_datasets: dict[str, Dataset] = {
        row.id: row for row in _by_ids(session, Dataset, Dataset.id, datasets.keys())
    }
    for dataset_id, dumped in datasets.items():
        if dumped["department"] not in known_departments:
            raise SchemaError(f"dataset {dataset_id}: unknown department {dumped['department']!r}")
        values = {
            "department_id": dumped["department"],
            "title_ja": dumped["title"]["ja"],
            "title_en": dumped["title"]["en"],
            "classification": dumped["classification"],
            "license": dumped["license"],
            "record_key": dumped["record_key"],
            "meta": dumped,
        }
        ds_row = stored_datasets.get(dataset_id)
        if ds_row is None:
            session.add(Dataset(id=dataset_id, record_count=0, last_record_at=None, **values))
        else:
            _set_if_changed(ds_row, **values)
    session.flush()

    versions = list(schema_set.versions.values())
    version_datasets = {v.dataset_id for v in versions}
    known_datasets = set(datasets) | {
        row.id for row in _by_ids(session, Dataset, Dataset.id, version_datasets - datasets.keys())
    }
    stored_versions: list[SchemaVersionRow] = list(
        _by_ids(session, SchemaVersionRow, SchemaVersionRow.dataset_id, version_datasets)
    )
    by_uri = {row.uri: row for row in stored_versions}
    by_number = {(row.dataset_id, row.version): row for row in stored_versions}
    # A URI may already be registered under a dataset outside this set; look those up too.
    for chunk in _chunks(sorted({v.uri for v in versions} - by_uri.keys())):
        for row in session.scalars(select(SchemaVersionRow).where(SchemaVersionRow.uri.in_(chunk))):
            by_uri[row.uri] = row
    for version in sorted(versions, key=lambda v: (v.dataset_id, v.version)):
        if version.dataset_id not in known_datasets:
            raise SchemaError(f"schema {version.uri}: unknown dataset {version.dataset_id!r}")
        existing = by_uri.get(version.uri)
        if existing is not None:
            if (existing.dataset_id, existing.version) != (version.dataset_id, version.version):
                raise SchemaError(
                    f"schema {version.uri} is registered as {existing.dataset_id} v{existing.version}, "
                    f"not {version.dataset_id} v{version.version}"
                )
            if not json_equal(existing.document, version.document):
                raise SchemaError(
                    f"schema {version.uri} changed after registration; publish a new version instead"
                )
            continue
        taken = by_number.get((version.dataset_id, version.version))
        if taken is not None:
            raise SchemaError(
                f"{version.dataset_id} v{version.version} is already registered as {taken.uri}, "
                f"not {version.uri}"
            )
        new_row = SchemaVersionRow(
            dataset_id=version.dataset_id,
            version=version.version,
            uri=version.uri,
            document=version.document,
            registered_at=registered_at,
        )
        session.add(new_row)
        by_uri[new_row.uri] = new_row
        by_number[(new_row.dataset_id, new_row.version)] = new_row
    session.flush()


def _pair_chunks(pairs: Collection[_Key]) -> Iterator[tuple[list[str], list[str]]]:
    """Each column's values for chunks of composite keys, to query as ``a IN (...) AND b IN (...)``.

    Not a row-value ``(a, b) IN ((..), ..)``: PostgreSQL plans that as an OR of one index probe per
    pair (a batch of 500 took ~0.2 s to look up), while two IN lists give one index scan on the
    composite primary key. The cross product may return a few extra rows; callers drop those.
    """
    for chunk in _chunks(sorted(pairs)):
        yield sorted({first for first, _ in chunk}), [second for _, second in chunk]


@contextmanager
def _custom_plans(session: Session) -> Iterator[None]:
    """On PostgreSQL, plan the enclosed statements for their actual parameters.

    psycopg prepares a statement after a few executions and PostgreSQL may then keep a generic plan.
    Made while the tables were still small (a fresh catalog), the IN-list look-ups' generic plan is a
    sequential scan that stays until the next ANALYZE: 20,000 events loaded into an empty catalog ran
    at a third of the speed. The bulk writes keep their prepared plans (primary-key access is right
    at any size); ``set_config(..., true)`` is transaction-local, so nothing leaks to the connection.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(select(func.set_config("plan_cache_mode", "force_custom_plan", True)))
    try:
        yield
    finally:
        if postgres:
            session.execute(select(func.set_config("plan_cache_mode", "auto", True)))


def _existing_ledger(session: Session, keys: Collection[_Key]) -> set[_Key]:
    found: set[_Key] = set()
    wanted = set(keys)
    for sources, event_ids in _pair_chunks(wanted):
        rows = session.execute(
            select(ProcessedEvent.source, ProcessedEvent.event_id).where(
                ProcessedEvent.source.in_(sources), ProcessedEvent.event_id.in_(event_ids)
            )
        )
        found.update(key for key in rows.tuples() if key in wanted)
    return found


def _stored_records(session: Session, keys: Collection[_Key]) -> dict[_Key, _RecordState]:
    # Only the ordering columns: the documents are not needed to decide, and plain rows keep the
    # ORM identity map out of a path that then writes with bulk statements. Tombstones included:
    # their version is what keeps an older upsert from resurrecting the record.
    states: dict[_Key, _RecordState] = {}
    wanted = set(keys)
    for dataset_ids, record_keys in _pair_chunks(wanted):
        rows = session.execute(
            select(
                Record.dataset_id,
                Record.record_key,
                Record.event_time,
                Record.kafka_partition,
                Record.kafka_offset,
                Record.event_source,
                Record.event_id,
                Record.deleted_at,
            ).where(Record.dataset_id.in_(dataset_ids), Record.record_key.in_(record_keys))
        )
        for dataset_id, record_key, event_time, partition, offset, source, event_id, deleted_at in rows:
            if (dataset_id, record_key) not in wanted:
                continue
            states[(dataset_id, record_key)] = _RecordState(
                version=(event_time, partition, offset),
                source=source,
                event_id=event_id,
                row=None,
                present=deleted_at is None,
            )
    return states


def _dataset_locations(session: Session, dataset_ids: Collection[str]) -> dict[str, tuple[str, str] | None]:
    locations: dict[str, tuple[str, str] | None] = {}
    for chunk in _chunks(sorted(dataset_ids)):
        rows = session.execute(select(Dataset.id, Dataset.meta).where(Dataset.id.in_(chunk)))
        for dataset_id, meta in rows:
            locations[dataset_id] = _location_fields(meta)
    missing = set(dataset_ids) - locations.keys()
    if missing:
        # Validated events name datasets from the schema set; the catalog has not been synced with it.
        raise SchemaError(f"events for datasets missing from the catalog: {sorted(missing)}")
    return locations


def _record_row(
    event: ValidatedEvent, version: _Version, location: tuple[str, str] | None, now: datetime
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


def _tombstone_row(event: ValidatedEvent, version: _Version, now: datetime) -> dict[str, Any]:
    # The same columns as _record_row (one executemany for both). The document and the coordinates go:
    # a deletion must not leave the data behind (personal data included); only the version stays.
    row = _record_row(event, version, None, now)
    row.update(data={}, deleted_at=now)
    return row


def apply_batch(session: Session, *, events: Sequence[ValidatedEvent], now: datetime) -> BatchResult:
    """Apply validated record events in order, exactly once each, newest state winning.

    - an event whose (source, id) is in the ledger, or earlier in the batch, is a duplicate: no change;
    - an upsert or deletion older than the record's state -- by (time, partition, offset) -- is stale:
      ledgered, nothing else changes, so redelivery and replay never roll a record back;
    - otherwise the record is written, or replaced by a tombstone (``deleted_at`` set, document
      dropped, the deletion's version kept), and the dataset's count and last change updated.

    The state a record is compared against may be a tombstone: a deletion followed, in any later
    batch, by an older upsert (a dead-letter replay) stays deleted, while a newer upsert re-creates
    the record. A deletion of an unknown record leaves a tombstone too, so an older upsert that
    arrives after it cannot create the record either. Tombstones are never counted or read.

    A handful of queries per batch (IN lists), then bulk writes. On a concurrent apply of the same
    events the ledger's primary key raises ``IntegrityError``: roll back and retry the batch.
    """
    result = BatchResult()
    if not events:
        return result
    processed_at = require_aware(now)

    with _custom_plans(session):
        seen = _existing_ledger(session, {(e.source, e.id) for e in events})
        states = _stored_records(session, {(e.dataset_id, e.record_key) for e in events})
    stored_keys = frozenset(states)
    stored_live = frozenset(key for key, state in states.items() if state.present)
    locations = _dataset_locations(session, {e.dataset_id for e in events})

    ledger_rows: list[dict[str, Any]] = []
    last_change: dict[str, datetime] = {}

    for event in events:
        ledger_key = (event.source, event.id)
        if ledger_key in seen:
            result.duplicate += 1
            continue
        seen.add(ledger_key)

        version: _Version = (require_aware(event.time), event.partition, event.offset)
        record_key = (event.dataset_id, event.record_key)
        state = states.get(record_key)
        note: str | None = None
        if state is not None and version <= state.version:
            outcome = OUTCOME_STALE
            note = f"superseded by {state.source} {state.event_id}"
            result.stale += 1
        elif event.is_deletion:
            outcome = OUTCOME_DELETED
            if state is None or not state.present:
                note = "record absent"
            else:
                _latest(last_change, event.dataset_id, version[0])
            row = _tombstone_row(event, version, processed_at)
            states[record_key] = _RecordState(version, event.source, event.id, row=row, present=False)
            result.deleted += 1
            _bump(result.deleted_by_dataset, event.dataset_id)
        else:
            outcome = OUTCOME_APPLIED
            row = _record_row(event, version, locations[event.dataset_id], processed_at)
            states[record_key] = _RecordState(version, event.source, event.id, row=row, present=True)
            _latest(last_change, event.dataset_id, version[0])
            result.applied += 1
            _bump(result.applied_by_dataset, event.dataset_id)
        ledger_rows.append(
            {
                "source": event.source,
                "event_id": event.id,
                "dataset_id": event.dataset_id,
                "outcome": outcome,
                "processed_at": processed_at,
                "note": note,
            }
        )

    # Net effect per record against what the database held before the batch. Records and tombstones
    # alike are rows: a key with a row is updated in place, a new key inserted; nothing is deleted.
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    count_delta: dict[str, int] = {}
    # Key order: concurrent writers then lock rows in the same order, and B-tree pages are hit in turn.
    for record_key, state in sorted(states.items()):
        if state.row is None:
            continue  # unchanged by this batch
        (updates if record_key in stored_keys else inserts).append(state.row)
        was_live = record_key in stored_live
        if state.present != was_live:
            _bump(count_delta, record_key[0], 1 if state.present else -1)

    if ledger_rows:
        # render_nulls: keep NULL columns in the statement so every row shares one executemany
        # (by default the ORM splits rows into groups by which values are None).
        session.execute(insert(ProcessedEvent).execution_options(render_nulls=True), ledger_rows)
    if inserts:
        session.execute(insert(Record).execution_options(render_nulls=True), inserts)
    if updates:
        # ORM bulk UPDATE by primary key: one executemany (pipelined by psycopg 3).
        session.execute(update(Record), updates)
    # Sorted: two consumers touching the same datasets lock their rows in the same order (no deadlock).
    for dataset_id in sorted(last_change.keys() | count_delta.keys()):
        values: dict[str, Any] = {}
        delta = count_delta.get(dataset_id, 0)
        if delta:
            # Relative update: a concurrent consumer of another partition may change the same row.
            values["record_count"] = Dataset.record_count + delta
        changed_at = last_change.get(dataset_id)
        if changed_at is not None:
            # Typed literal: bound through UTCDateTime like the column it is compared with and stored in.
            moment = literal(changed_at, UTCDateTime())
            values["last_record_at"] = case(
                (or_(Dataset.last_record_at.is_(None), Dataset.last_record_at < moment), moment),
                else_=Dataset.last_record_at,
            )
        if values:
            session.execute(
                update(Dataset).where(Dataset.id == dataset_id).values(**values),
                execution_options={"synchronize_session": "fetch"},
            )
    return result
