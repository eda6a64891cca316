"""Catalog writes: schema-set synchronisation and idempotent application of validated record events.

Service functions take keyword-only arguments and never commit: the caller owns the transaction, so
the consumer commits Kafka offsets only after the transaction holding these writes has committed.
Portable across SQLite and PostgreSQL: the bulk writes go through ``cityos.kernel.db.bulk`` (COPY on
PostgreSQL, executemany on SQLite), which picks each driver's path; a batch's reads are SQLAlchemy Core
on SQLite and, on PostgreSQL, driver statements sent together in one round trip.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from cityos.kernel.db.bulk import Query, insert_rows, pipelined, upsert_rows
from cityos.kernel.db.history_models import RecordChange
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
from services.catalog.admission import AdmissionFacts, DataValidators
from services.catalog.batch_plan import (
    BatchPlan,
    BatchResult,
    BatchSnapshot,
    DatasetChange,
    StoredRecord,
    plan_batch,
)

if TYPE_CHECKING:
    from cityos.kernel.schemas import SchemaSet, SchemaVersion

# Keys per IN list. A chunk of composite keys binds at most twice that many values, which stays under
# the 999 variables of SQLite builds older than 3.32; a batch of 500 events needs two queries.
IN_CHUNK: Final = 400

# Key of the PostgreSQL advisory lock that serialises schema-set synchronisation: the ASCII bytes
# "cityossy" read as a big-endian integer, recognisable in pg_locks beside the migrations' lock.
SCHEMA_SYNC_LOCK_KEY: Final = int.from_bytes(b"cityossy", "big")

__all__ = ["IN_CHUNK", "BatchResult", "apply_batch", "sync_schema_set"]

_T = TypeVar("_T")
_M = TypeVar("_M", bound=Base)

_Key = tuple[str, str]  # (source, event id) of the ledger; (dataset, record key) of a record
_KeyColumns = tuple[InstrumentedAttribute[str], InstrumentedAttribute[str]]
_Columns = tuple[InstrumentedAttribute[Any] | ColumnElement[Any], ...]
_RECORD_COLUMNS: Final = ("dataset_id", "record_key")


def _chunks(items: Sequence[_T], size: int = IN_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    if session.get_bind().dialect.name == "postgresql":
        # Catalog processes started together (a scaled-out deployment) would each insert the rows
        # a fresh catalog lacks, and all but one fail on their keys: they take turns instead, and
        # the later ones find the rows in place. Released with the transaction. (SQLite writers
        # already take turns: they begin IMMEDIATE.)
        session.execute(select(func.pg_advisory_xact_lock(SCHEMA_SYNC_LOCK_KEY)))
    # Flush table by table: referenced rows exist before the rows that reference them without relying
    # on the unit of work (the models declare no relationships), and errors surface at their stage.
    departments = _sync_departments(session, schema_set)
    session.flush()
    datasets = _sync_datasets(session, schema_set, departments)
    session.flush()
    _sync_schema_versions(session, schema_set, datasets, registered_at)
    session.flush()


def _sync_departments(session: Session, schema_set: SchemaSet) -> set[str]:
    """Upsert the set's departments; their ids."""
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
    return set(departments)


def _sync_datasets(session: Session, schema_set: SchemaSet, departments: set[str]) -> set[str]:
    """Upsert the set's datasets, each of a department of the set or already in the catalog; their
    ids."""
    datasets = {meta.id: _dump(meta) for meta in schema_set.datasets.values()}
    referenced = {dumped["department"] for dumped in datasets.values()}
    known_departments = departments | {
        row.id for row in _by_ids(session, Department, Department.id, referenced - departments)
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
    return set(datasets)


def _sync_schema_versions(
    session: Session, schema_set: SchemaSet, datasets: set[str], registered_at: datetime
) -> None:
    """Register the set's schema versions not registered yet; each must belong to a dataset of the
    set or already in the catalog, and must not contradict a registered version."""
    versions = list(schema_set.versions.values())
    version_datasets = {v.dataset_id for v in versions}
    known_datasets = datasets | {
        row.id for row in _by_ids(session, Dataset, Dataset.id, version_datasets - datasets)
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
            _check_unchanged(existing, version)
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


def _check_unchanged(existing: SchemaVersionRow, version: SchemaVersion) -> None:
    """A registered URI names the same dataset, version number and document forever."""
    if (existing.dataset_id, existing.version) != (version.dataset_id, version.version):
        raise SchemaError(
            f"schema {version.uri} is registered as {existing.dataset_id} v{existing.version}, "
            f"not {version.dataset_id} v{version.version}"
        )
    if not json_equal(existing.document, version.document):
        raise SchemaError(f"schema {version.uri} changed after registration; publish a new version instead")


def _pair_chunks(pairs: Collection[_Key]) -> Iterator[tuple[list[str], list[str]]]:
    """Each column's values for chunks of composite keys, to query as ``a IN (...) AND b IN (...)``.

    Not a row-value ``(a, b) IN ((..), ..)``: SQLite then scans. Two IN lists give one scan of the
    composite primary key; the cross product may return a few extra rows, which callers drop.
    """
    for chunk in _chunks(sorted(pairs)):
        yield sorted({first for first, _ in chunk}), [second for _, second in chunk]


_LEDGER_TABLE: Final = Base.metadata.tables[ProcessedEvent.__tablename__]
_RECORDS_TABLE: Final = Base.metadata.tables[Record.__tablename__]
_CHANGES_TABLE: Final = Base.metadata.tables[RecordChange.__tablename__]
_LEDGER_KEY: Final = (ProcessedEvent.source, ProcessedEvent.event_id)
_RECORD_KEY: Final = (Record.dataset_id, Record.record_key)
# Only the ordering columns: the documents are not needed to decide. Tombstones included: their
# version is what keeps an older upsert from resurrecting the record.
_RECORD_STATE: Final = (
    *_RECORD_KEY,
    Record.event_time,
    Record.kafka_partition,
    Record.kafka_offset,
    Record.event_source,
    Record.event_id,
    Record.deleted_at.is_(None),
)


@cache
def _lookup(columns: _Columns, key: _KeyColumns) -> Select[Any]:
    """``columns`` of the rows whose composite ``key`` is among the pairs bound as ``firsts`` and
    ``seconds`` (SQLite); built once, so a batch pays neither construction nor compilation."""
    return select(*columns).where(
        key[0].in_(bindparam("firsts", expanding=True)), key[1].in_(bindparam("seconds", expanding=True))
    )


def _matching(
    session: Session, columns: _Columns, key: _KeyColumns, keys: Collection[_Key]
) -> Iterator[Row[Any]]:
    """``columns`` (the key's first) of the rows whose composite ``key`` is one of ``keys``."""
    wanted = set(keys)
    connection = session.connection()  # Core: plain rows, no ORM layer on the hot path
    statement = _lookup(columns, key)
    for firsts, seconds in _pair_chunks(wanted):
        for row in connection.execute(statement, {"firsts": firsts, "seconds": seconds}):
            if (row[0], row[1]) in wanted:
                yield row


def _existing_ledger(session: Session, keys: Collection[_Key]) -> frozenset[_Key]:
    return frozenset((row[0], row[1]) for row in _matching(session, _LEDGER_KEY, _LEDGER_KEY, keys))


def _stored_records(session: Session, keys: Collection[_Key]) -> dict[_Key, StoredRecord]:
    return {
        (dataset_id, record_key): StoredRecord((event_time, partition, offset), source, event_id, bool(live))
        for dataset_id, record_key, event_time, partition, offset, source, event_id, live in _matching(
            session, _RECORD_STATE, _RECORD_KEY, keys
        )
    }


def _dataset_metas(session: Session, dataset_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    metas: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(dataset_ids)):
        rows = session.connection().execute(select(Dataset.id, Dataset.meta).where(Dataset.id.in_(chunk)))
        for dataset_id, meta in rows:
            metas[dataset_id] = meta
    return metas


def admission_facts(
    session: Session, dataset_ids: Collection[str], validators: DataValidators
) -> AdmissionFacts:
    """Owners, releases, record-key fields and registered schema versions of ``dataset_ids``; versions
    ``validators`` has not compiled yet are compiled from their registered documents."""
    from cityos.kernel.db.release_models import Release

    owners: dict[str, str] = {}
    record_keys: dict[str, str] = {}
    releases: set[str] = set()
    versions: set[tuple[str, int]] = set()
    for chunk in _chunks(sorted(dataset_ids)):
        rows = session.execute(
            select(Dataset.id, Dataset.department_id, Dataset.record_key, Release.id)
            .outerjoin(Release, Release.dataset_id == Dataset.id)
            .where(Dataset.id.in_(chunk))
        )
        for dataset_id, department_id, key_field, release_id in rows:
            owners[dataset_id] = department_id
            record_keys[dataset_id] = key_field
            if release_id is not None:
                releases.add(dataset_id)
        registered = session.execute(
            select(SchemaVersionRow.dataset_id, SchemaVersionRow.version).where(
                SchemaVersionRow.dataset_id.in_(chunk)
            )
        )
        versions.update((dataset_id, version) for dataset_id, version in registered)
    for dataset_id, version in sorted(validators.missing(versions)):
        row = session.execute(
            select(SchemaVersionRow.uri, SchemaVersionRow.document).where(
                SchemaVersionRow.dataset_id == dataset_id, SchemaVersionRow.version == version
            )
        ).one()
        wanted = validators.needed_refs(row.uri, row.document)
        referenced = (
            dict(
                session.execute(
                    select(SchemaVersionRow.uri, SchemaVersionRow.document).where(
                        SchemaVersionRow.uri.in_(wanted)
                    )
                ).tuples()
            )
            if wanted
            else {}
        )
        validators.add((dataset_id, version), row.uri, row.document, referenced)
    return AdmissionFacts(
        owners=owners, releases=frozenset(releases), versions=frozenset(versions), record_keys=record_keys
    )


# The snapshot's reads on PostgreSQL, in the driver's syntax: each batch's keys unnested from two
# arrays (fixed text whatever the batch size, the exact pairs joined).
# Plan the look-ups for their actual keys and the tables' current size: psycopg prepares a statement
# after a few executions and PostgreSQL may then keep a generic plan; made while the tables were
# small (a fresh catalog), that plan scans them whole and stays until the next ANALYZE -- 20,000
# events loaded into an empty catalog ran at a third of the speed. Transaction-local, so nothing
# leaks to the pooled connection; the batch's other statements have no parameters worth a generic plan.
_PG_CUSTOM_PLANS: Final = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"
_PG_LEDGER: Final = (
    f"SELECT l.source, l.event_id FROM {ProcessedEvent.__tablename__} l "
    "JOIN unnest(%s::text[], %s::text[]) AS k(s, i) ON l.source = k.s AND l.event_id = k.i"
)
# Only the ordering columns: the documents are not needed to decide. Tombstones included.
_PG_RECORDS: Final = (
    "SELECT r.dataset_id, r.record_key, r.event_time, r.kafka_partition, r.kafka_offset, "
    f"r.event_source, r.event_id, r.deleted_at IS NULL FROM {Record.__tablename__} r "
    "JOIN unnest(%s::text[], %s::text[]) AS k(d, r) ON r.dataset_id = k.d AND r.record_key = k.r"
)
_PG_DATASETS: Final = f"SELECT id, meta FROM {Dataset.__tablename__} WHERE id = ANY(%s::text[])"


def _unzipped(keys: Collection[_Key]) -> tuple[list[str], list[str]]:
    ordered = sorted(keys)
    return [first for first, _ in ordered], [second for _, second in ordered]


def _pg_snapshot(session: Session, events: Sequence[ValidatedEvent]) -> BatchSnapshot:
    """The snapshot in one round trip on the driver: a batch's reads wait on the server once, and
    only the columns the plan needs become Python values (the instants come back aware)."""
    _, ledger, records, datasets = pipelined(
        session.connection(),
        [
            (_PG_CUSTOM_PLANS, ()),
            (_PG_LEDGER, _unzipped({(e.source, e.id) for e in events})),
            (_PG_RECORDS, _unzipped({(e.dataset_id, e.record_key) for e in events})),
            (_PG_DATASETS, (sorted({e.dataset_id for e in events}),)),
        ],
    )
    return BatchSnapshot(
        processed=frozenset((source, event_id) for source, event_id in ledger),
        records={
            (dataset_id, key): StoredRecord((at, partition, offset), source, event_id, live)
            for dataset_id, key, at, partition, offset, source, event_id, live in records
        },
        datasets=dict(datasets),
    )


def _read_snapshot(session: Session, events: Sequence[ValidatedEvent]) -> BatchSnapshot:
    """What the database holds for the batch: its ledger entries, records and datasets."""
    if session.connection().dialect.name == "postgresql":
        return _pg_snapshot(session, events)
    processed = _existing_ledger(session, {(e.source, e.id) for e in events})
    records = _stored_records(session, {(e.dataset_id, e.record_key) for e in events})
    datasets = _dataset_metas(session, {e.dataset_id for e in events})
    return BatchSnapshot(processed=processed, records=records, datasets=datasets)


def _dataset_values(change: DatasetChange) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if change.record_delta:
        # Relative update: a concurrent consumer of another partition may change the same row.
        values["record_count"] = Dataset.record_count + change.record_delta
    if change.last_change is not None:
        # Typed literal: bound through UTCDateTime like the column it is compared with and stored in.
        moment = literal(change.last_change, UTCDateTime())
        values["last_record_at"] = case(
            (or_(Dataset.last_record_at.is_(None), Dataset.last_record_at < moment), moment),
            else_=Dataset.last_record_at,
        )
    return values


# A dataset's counters, relative (a concurrent consumer of another partition may change the same
# row): live records gained or lost, and the newest change unless an older one is given (or none).
_PG_DATASET_CHANGE: Final = (
    f"UPDATE {Dataset.__tablename__} SET record_count = record_count + %s, last_record_at = CASE "
    "WHEN %s::timestamptz IS NULL THEN last_record_at "
    "WHEN last_record_at IS NULL OR last_record_at < %s::timestamptz THEN %s::timestamptz "
    "ELSE last_record_at END WHERE id = %s"
)


def _pg_dataset_changes(session: Session, plan: BatchPlan) -> list[Query]:
    """The plan's dataset updates as driver statements (the rows the ORM may hold are expired)."""
    queries: list[Query] = []
    for change in plan.datasets:
        if change.record_delta or change.last_change is not None:
            # Bound as UTCDateTime binds it on PostgreSQL: the aware instant itself.
            at = require_aware(change.last_change) if change.last_change is not None else None
            queries.append((_PG_DATASET_CHANGE, (change.record_delta, at, at, at, change.dataset_id)))
    changed = {change.dataset_id for change in plan.datasets}
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Dataset) and obj.id in changed:
            session.expire(obj, ["record_count", "last_record_at"])
    return queries


def _write_plan(session: Session, plan: BatchPlan) -> None:
    """The plan's rows in bulk statements: ledger, change log, records (new and replaced alike), then
    datasets."""
    connection = session.connection()
    # The ledger is inserted, never upserted: a concurrent apply of the same events fails on its
    # primary key (IntegrityError) and is retried, when it finds them duplicates.
    insert_rows(connection, _LEDGER_TABLE, plan.ledger_rows)
    # The change log is keyed like the ledger and holds exactly its new events: a redelivery, a
    # duplicate in the ledger, writes nothing here either.
    insert_rows(connection, _CHANGES_TABLE, plan.change_rows)
    # Key order (the plan's): concurrent writers lock rows in the same order, B-tree pages in turn.
    # In dataset order (the plan's): two consumers touching the same datasets lock their rows in the
    # same order, so they cannot deadlock.
    if connection.dialect.name == "postgresql":
        # The counters travel with the records' upsert: one round trip for both.
        then = _pg_dataset_changes(session, plan)
        upsert_rows(connection, _RECORDS_TABLE, plan.rows, key=_RECORD_COLUMNS, then=then)
        return
    upsert_rows(connection, _RECORDS_TABLE, plan.rows, key=_RECORD_COLUMNS)
    for change in plan.datasets:
        values = _dataset_values(change)
        if values:
            session.execute(
                update(Dataset).where(Dataset.id == change.dataset_id).values(**values),
                execution_options={"synchronize_session": "fetch"},
            )


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
    arrives after it cannot create the record either. Tombstones are never counted or read. The
    decisions are ``services.catalog.batch_plan.plan_batch``'s; this reads and writes around them.

    Every ledgered event, stale ones included, is also appended to the change log
    (``record_changes``), from which ``cityos.domain.analysis.history`` rebuilds past states.

    Three reads per batch (ledger, records, datasets; one round trip on PostgreSQL), then one bulk
    write per table: the ledger and the change log inserted, the records upserted (new, replaced and tombstones in one
    statement), the datasets' counters updated (with the upsert's round trip on PostgreSQL). On a concurrent
    apply of the same events the ledger's primary key raises ``IntegrityError``: roll back and retry
    the batch.
    """
    if not events:
        return BatchResult()
    processed_at = require_aware(now)
    plan = plan_batch(events, _read_snapshot(session, events), now=processed_at)
    if plan.rejected:
        # Validated events name datasets from the schema set; the catalog has not been synced with it.
        raise SchemaError(f"events for datasets missing from the catalog: {plan.unknown_datasets}")
    _write_plan(session, plan)
    return plan.result
