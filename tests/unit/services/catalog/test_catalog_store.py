"""Catalog persistence: migrations, schema-set sync, idempotent event application, read queries.

Every test runs on SQLite (a new file per test) and on PostgreSQL (a new schema per test, dropped
afterwards; URL from ``CITYOS_TEST_PG_URL``, marked ``integration``), so the two backends are held to
the same behaviour.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, inspect, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from cityos.domain.readmodel import queries
from cityos.kernel.db.engine import alembic_config, make_engine, migrate, session_factory
from cityos.kernel.db.models import Base, Dataset, Department, ProcessedEvent, Record, SchemaVersionRow
from cityos.kernel.errors import SchemaError
from cityos.kernel.events import ValidatedEvent
from cityos.kernel.schemas import (
    schema_uri,
)
from cityos.kernel.settings import REPO_ROOT, Settings
from services.catalog.store import BatchResult, apply_batch, sync_schema_set
from services.publish.app import create_app
from tests.support.catalog_store import (
    COPIER,
    FACILITY,
    JST,
    NOW,
    SOURCE,
    T0,
    deletion,
    facility_schema,
    make_schema_set,
    pg_base_url,
    pg_schema_url,
    upsert,
)
from tests.support.fixtures_path import FIXTURES

# --- databases -------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        # A subfolder that does not exist yet: make_engine must create it.
        yield f"sqlite:///{tmp_path / 'var' / 'catalog.db'}"
    else:
        yield from pg_schema_url(pg_base_url())


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An empty, migrated catalog on each backend (in place of the shared one holding `schemas/`):
    these tests bring their own schema set."""
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


# --- schema set ------------------------------------------------------------------------------------


@pytest.fixture
def catalog(session: Session) -> Session:
    """A session on a migrated database that knows the test schema set."""
    sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    session.commit()
    return session


# --- events ----------------------------------------------------------------------------------------


def apply(session: Session, events: Sequence[ValidatedEvent]) -> BatchResult:
    result = apply_batch(session, events=events, now=NOW)
    session.commit()
    return result


def snapshot(session: Session) -> dict[str, Any]:
    """Everything apply_batch may change, in comparable form."""
    session.expire_all()
    records = session.execute(select(Record).order_by(Record.dataset_id, Record.record_key)).scalars()
    ledger = session.execute(select(ProcessedEvent).order_by(ProcessedEvent.source, ProcessedEvent.event_id))
    datasets = session.execute(
        select(Dataset.id, Dataset.record_count, Dataset.last_record_at).order_by(Dataset.id)
    )
    return {
        "records": [
            (r.dataset_id, r.record_key, r.data, r.event_id, r.kafka_offset, r.latitude, r.longitude)
            for r in records
        ],
        "ledger": [(p.source, p.event_id, p.outcome, p.note) for p in ledger.scalars()],
        "datasets": [tuple(row) for row in datasets],
    }


def record(session: Session, key: str, dataset: str = FACILITY) -> Record | None:
    """The live record, as every read sees it: None when absent or deleted."""
    session.expire_all()
    return queries.get_record(session, dataset_id=dataset, record_key=key)


def stored_row(session: Session, key: str, dataset: str = FACILITY) -> Record | None:
    """The row itself, a tombstone included."""
    session.expire_all()
    return session.get(Record, (dataset, key))


def live_rows(session: Session, dataset: str = FACILITY) -> int:
    count = select(func.count()).select_from(Record)
    return session.scalar(count.where(Record.dataset_id == dataset, Record.deleted_at.is_(None))) or 0


def dataset_row(session: Session, dataset_id: str = FACILITY) -> Dataset:
    session.expire_all()
    row = session.get(Dataset, dataset_id)
    assert row is not None
    return row


# --- migrations ------------------------------------------------------------------------------------


def head_revision() -> str | None:
    """The single head of the shipped migration chain (two heads would be a merge mistake)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migration_matches_models_and_is_repeatable(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)  # every service start calls it: the second run must be a no-op
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() == head_revision()
            if conn.dialect.name == "postgresql":
                columns = {c["name"]: c["type"] for c in inspect(conn).get_columns("records")}
                assert type(columns["data"]).__name__ == "JSONB"
            else:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_migration_column_types_and_live_record_index(engine: Engine) -> None:
    inspector = inspect(engine)
    columns = {c["name"]: c["type"] for c in inspector.get_columns("records")}
    # Kafka offsets are 64-bit: a 32-bit column overflows on PostgreSQL at 2^31.
    assert type(columns["kafka_offset"]).__name__ == "BIGINT"
    if engine.dialect.name == "postgresql":
        # UTCDateTime changes values in Python only: the DDL stays TIMESTAMP WITH TIME ZONE.
        stamps = {
            "records": ["event_time", "updated_at", "deleted_at"],
            "datasets": ["last_record_at"],
            "schema_versions": ["registered_at"],
            "processed_events": ["processed_at"],
        }
        for table, names in stamps.items():
            types = {c["name"]: c["type"] for c in inspector.get_columns(table)}
            for name in names:
                assert getattr(types[name], "timezone", False) is True, (table, name)
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("records")}
    assert indexes["ix_records_dataset_id_deleted_at_record_key"] == [
        "dataset_id",
        "deleted_at",
        "record_key",
    ]


def test_downgrade_to_base_and_back(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        migrate(db_url)
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_concurrent_migrations_from_several_processes(db_url: str) -> None:
    code = "import sys; from cityos.kernel.db.engine import migrate; migrate(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
    finally:
        engine.dispose()


# --- schema-set sync -------------------------------------------------------------------------------


def test_sync_inserts_everything(session: Session) -> None:
    sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    session.commit()
    assert {d.id: d.name_ja for d in session.scalars(select(Department))} == {
        "planning": "企画調整局",
        "citizens": "市民文化スポーツ局",
    }
    facility = session.get(Dataset, FACILITY)
    assert facility is not None
    assert (facility.department_id, facility.title_ja, facility.classification) == (
        "planning",
        "公共施設一覧",
        "public",
    )
    assert (facility.license, facility.record_key, facility.record_count) == ("CC-BY-4.0", "NO", 0)
    assert facility.meta["location"] == {"latitude": "緯度", "longitude": "経度"}
    assert facility.meta == make_schema_set().datasets[FACILITY].model_dump(mode="json")
    versions = session.scalars(select(SchemaVersionRow).order_by(SchemaVersionRow.uri)).all()
    assert [(v.dataset_id, v.version) for v in versions] == [(COPIER, 1), (FACILITY, 1)]
    assert versions[0].registered_at == NOW


def test_sync_is_idempotent(session: Session) -> None:
    sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    session.commit()
    statements: list[str] = []
    engine = session.get_bind()
    assert isinstance(engine, Engine)

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        sync_schema_set(session, schema_set=make_schema_set(), now=NOW + timedelta(days=1))
        session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    # Only reads: no row is rewritten, even where PostgreSQL's JSONB reordered the document's keys.
    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    versions = session.scalars(select(SchemaVersionRow)).all()
    assert len(versions) == 2
    assert all(v.registered_at == NOW for v in versions)


def test_sync_updates_metadata_and_adds_new_versions(session: Session) -> None:
    sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    session.commit()
    later = NOW + timedelta(days=30)
    sync_schema_set(
        session,
        schema_set=make_schema_set(facility_title="公共施設一覧（改訂）", versions=[facility_schema(2)]),
        now=later,
    )
    session.commit()
    assert dataset_row(session).title_ja == "公共施設一覧（改訂）"
    assert dataset_row(session).meta["title"]["ja"] == "公共施設一覧（改訂）"
    latest = queries.latest_schema(session, dataset_id=FACILITY)
    assert latest is not None
    assert (latest.version, latest.uri, latest.registered_at) == (2, schema_uri(FACILITY, 2), later)


def test_sync_rejects_a_changed_document_under_a_registered_uri(session: Session) -> None:
    sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    session.commit()
    changed = make_schema_set()
    changed.versions[schema_uri(FACILITY, 1)] = facility_schema(1, extra={"additionalProperties": False})
    with pytest.raises(SchemaError, match="changed after registration"):
        sync_schema_set(session, schema_set=changed, now=NOW)
    session.rollback()


def test_sync_rejects_a_version_number_registered_under_another_uri(session: Session) -> None:
    sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    session.commit()
    clash = make_schema_set()
    original = clash.versions.pop(schema_uri(FACILITY, 1))
    moved = original.model_copy(update={"uri": "https://cityos.example/schemas/public-facility/one"})
    clash.versions[moved.uri] = moved
    with pytest.raises(SchemaError, match="already registered"):
        sync_schema_set(session, schema_set=clash, now=NOW)
    session.rollback()


def test_sync_rejects_an_unknown_department(session: Session) -> None:
    broken = make_schema_set()
    broken.departments.pop("citizens")
    with pytest.raises(SchemaError, match="unknown department 'citizens'"):
        sync_schema_set(session, schema_set=broken, now=NOW)
    session.rollback()


def test_sync_of_the_repository_schemas_is_idempotent(session: Session) -> None:
    from cityos.kernel.schemas import default_schema_dir, load_schema_dir

    schema_set = load_schema_dir(default_schema_dir())
    sync_schema_set(session, schema_set=schema_set)
    session.commit()
    sync_schema_set(session, schema_set=schema_set)
    session.commit()
    assert session.scalar(select(func.count()).select_from(SchemaVersionRow)) == len(schema_set.versions)
    assert session.scalar(select(func.count()).select_from(Dataset)) == len(schema_set.datasets)


# --- apply_batch -----------------------------------------------------------------------------------


def test_apply_inserts_records_with_coordinates(catalog: Session) -> None:
    result = apply(
        catalog,
        [
            upsert("1", {"NO": "1", "名称": "焼津市役所", "緯度": 34.867221, "経度": 138.322876}),
            upsert("2", {"NO": "2", "名称": "座標が文字列", "緯度": "34.8", "経度": "138.3"}),
            upsert("3", {"NO": "3", "名称": "片方だけ", "緯度": 34.8}),
            upsert("4", {"NO": "4", "名称": "真偽値", "緯度": True, "経度": False}),
            upsert("5", {"NO": "5", "名称": "範囲外", "緯度": 134.8, "経度": 34.0}),
            upsert("c1", {"id": "c1", "枚数": 3}, dataset=COPIER),
        ],
    )
    assert (result.applied, result.deleted, result.stale, result.duplicate) == (6, 0, 0, 0)
    assert result.applied_by_dataset == {FACILITY: 5, COPIER: 1}
    first = record(catalog, "1")
    assert first is not None
    assert (first.latitude, first.longitude) == (34.867221, 138.322876)
    assert (first.schema_version, first.event_source, first.kafka_partition, first.kafka_offset) == (
        1,
        SOURCE,
        0,
        0,
    )
    assert first.event_time == T0
    assert first.updated_at == NOW
    for key in ("2", "3", "4", "5"):
        row = record(catalog, key)
        assert row is not None
        assert (row.latitude, row.longitude) == (None, None), key
    copier = record(catalog, "c1", COPIER)
    assert copier is not None
    assert (copier.latitude, copier.longitude) == (None, None)
    assert dataset_row(catalog).record_count == 5
    assert dataset_row(catalog).last_record_at == T0
    assert dataset_row(catalog, COPIER).record_count == 1


def test_same_batch_twice_changes_nothing(catalog: Session) -> None:
    batch = [upsert(str(n), offset=n) for n in range(10)] + [
        deletion("3", at=T0 + timedelta(hours=1), offset=10)
    ]
    first = apply(catalog, batch)
    assert (first.applied, first.deleted) == (10, 1)
    before = snapshot(catalog)
    second = apply_batch(catalog, events=batch, now=NOW + timedelta(hours=1))
    catalog.commit()
    assert (second.applied, second.deleted, second.stale, second.duplicate) == (0, 0, 0, 11)
    assert second.applied_by_dataset == {}
    assert snapshot(catalog) == before


def test_duplicates_within_one_batch(catalog: Session) -> None:
    original = upsert("1", {"NO": "1", "名称": "最初"}, offset=5)
    # Same CloudEvent (source, id) redelivered with other content and a later position: still a duplicate.
    redelivered = upsert("1", {"NO": "1", "名称": "再送"}, offset=9, event_id=original.id)
    result = apply(catalog, [original, redelivered, original])
    assert (result.applied, result.duplicate) == (1, 2)
    row = record(catalog, "1")
    assert row is not None
    assert row.data["名称"] == "最初"
    assert catalog.scalar(select(func.count()).select_from(ProcessedEvent)) == 1


def test_older_event_never_overwrites_newer(catalog: Session) -> None:
    newer = upsert("1", {"NO": "1", "名称": "新"}, at=T0 + timedelta(minutes=5), offset=1)
    older = upsert("1", {"NO": "1", "名称": "旧"}, at=T0, offset=2)
    # Across batches...
    apply(catalog, [newer])
    result = apply(catalog, [older])
    assert (result.applied, result.stale) == (0, 1)
    row = record(catalog, "1")
    assert row is not None
    assert (row.data["名称"], row.event_id) == ("新", newer.id)
    ledger = catalog.get(ProcessedEvent, (SOURCE, older.id))
    assert ledger is not None
    assert ledger.outcome == "stale"
    assert ledger.note == f"superseded by {SOURCE} {newer.id}"
    # ...and within one batch.
    newer2 = upsert("2", {"NO": "2", "名称": "新"}, at=T0 + timedelta(minutes=5), offset=3)
    older2 = upsert("2", {"NO": "2", "名称": "旧"}, at=T0, offset=4)
    result = apply(catalog, [newer2, older2])
    assert (result.applied, result.stale) == (1, 1)
    row = record(catalog, "2")
    assert row is not None
    assert row.data["名称"] == "新"
    assert dataset_row(catalog).last_record_at == T0 + timedelta(minutes=5)


def test_equal_time_is_decided_by_partition_then_offset(catalog: Session) -> None:
    apply(catalog, [upsert("1", {"NO": "1", "名称": "offset 7"}, offset=7)])
    lower = apply(catalog, [upsert("1", {"NO": "1", "名称": "offset 6"}, offset=6)])
    same = apply(catalog, [upsert("1", {"NO": "1", "名称": "offset 7 again"}, offset=7, event_id="other-id")])
    higher = apply(catalog, [upsert("1", {"NO": "1", "名称": "offset 8"}, offset=8)])
    assert (lower.stale, same.stale, higher.applied) == (1, 1, 1)
    row = record(catalog, "1")
    assert row is not None
    assert (row.data["名称"], row.kafka_offset) == ("offset 8", 8)
    other_partition = apply(catalog, [upsert("1", {"NO": "1", "名称": "p1"}, offset=0, partition=1)])
    assert other_partition.applied == 1


def test_times_in_other_offsets_compare_as_instants(catalog: Session) -> None:
    jst_morning = upsert(
        "1", {"NO": "1", "名称": "JST 10:00 = 01:00Z"}, at=datetime(2025, 4, 1, 10, tzinfo=JST)
    )
    utc_later = upsert("1", {"NO": "1", "名称": "02:00Z"}, at=datetime(2025, 4, 1, 2, tzinfo=UTC), offset=1)
    apply(catalog, [utc_later])
    assert apply(catalog, [jst_morning]).stale == 1
    row = record(catalog, "1")
    assert row is not None
    assert row.event_time == datetime(2025, 4, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        apply_batch(catalog, events=[upsert("2", at=datetime(2025, 4, 1, 2))], now=NOW)
    catalog.rollback()


def test_deletions(catalog: Session) -> None:
    apply(catalog, [upsert(str(n), offset=n) for n in range(1, 4)])
    assert dataset_row(catalog).record_count == 3

    removed = apply(catalog, [deletion("1", at=T0 + timedelta(minutes=1), offset=10)])
    assert (removed.deleted, removed.deleted_by_dataset) == (1, {FACILITY: 1})
    assert record(catalog, "1") is None
    assert dataset_row(catalog).record_count == 2
    assert dataset_row(catalog).last_record_at == T0 + timedelta(minutes=1)

    stale = apply(catalog, [deletion("2", at=T0 - timedelta(minutes=1), offset=11)])
    assert (stale.deleted, stale.stale) == (0, 1)
    assert record(catalog, "2") is not None
    assert dataset_row(catalog).record_count == 2

    absent = apply(catalog, [deletion("404", at=T0 + timedelta(minutes=2), offset=12)])
    assert absent.deleted == 1
    ledger = catalog.get(ProcessedEvent, (SOURCE, deletion("404", offset=12).id))
    assert ledger is not None
    assert (ledger.outcome, ledger.note) == ("deleted", "record absent")
    assert dataset_row(catalog).record_count == 2
    # Deleting nothing is no change to the dataset.
    assert dataset_row(catalog).last_record_at == T0 + timedelta(minutes=1)


def test_deletion_and_recreation_within_one_batch(catalog: Session) -> None:
    apply(catalog, [upsert("1", offset=1)])
    t = T0 + timedelta(minutes=1)
    result = apply(
        catalog,
        [
            deletion("1", at=t, offset=2),
            upsert("1", {"NO": "1", "名称": "older than the deletion"}, at=T0, offset=3),
            upsert("2", offset=4, at=t),
            deletion("2", at=t, offset=5),
            upsert("3", {"NO": "3", "名称": "再作成"}, at=t, offset=6),
        ],
    )
    assert (result.applied, result.deleted, result.stale) == (2, 2, 1)
    assert record(catalog, "1") is None
    assert record(catalog, "2") is None
    assert record(catalog, "3") is not None
    assert dataset_row(catalog).record_count == 1

    back = apply(catalog, [upsert("1", {"NO": "1", "名称": "戻った"}, at=t + timedelta(seconds=1), offset=7)])
    assert back.applied == 1
    assert dataset_row(catalog).record_count == 2


# --- tombstones ------------------------------------------------------------------------------------


def test_deletion_keeps_a_tombstone_without_the_data(catalog: Session) -> None:
    apply(catalog, [upsert("1", {"NO": "1", "名称": "個人宅", "緯度": 34.8, "経度": 138.3}, offset=1)])
    removal = deletion("1", at=T0 + timedelta(minutes=1), offset=2, partition=3)
    assert apply(catalog, [removal]).deleted == 1
    assert record(catalog, "1") is None
    tombstone = stored_row(catalog, "1")
    assert tombstone is not None
    assert tombstone.deleted_at == NOW
    assert tombstone.deleted_at.tzinfo is UTC
    assert (tombstone.event_time, tombstone.kafka_partition, tombstone.kafka_offset) == (
        T0 + timedelta(minutes=1),
        3,
        2,
    )
    assert (tombstone.event_source, tombstone.event_id) == (SOURCE, removal.id)
    assert (tombstone.data, tombstone.latitude, tombstone.longitude) == ({}, None, None)
    assert dataset_row(catalog).record_count == live_rows(catalog) == 0
    assert queries.list_records(catalog, dataset_id=FACILITY, filters={}, limit=10, offset=0) == ([], 0)


def test_older_upsert_in_a_later_batch_does_not_resurrect_a_deleted_record(catalog: Session) -> None:
    apply(catalog, [upsert("1", {"NO": "1", "名称": "元"}, offset=1), upsert("2", offset=2)])
    removal = deletion("1", at=T0 + timedelta(minutes=5), offset=3)
    apply(catalog, [removal])
    # A dead-letter replay: an upsert from before the deletion, fixed and re-sent under a new id.
    replayed = upsert(
        "1", {"NO": "1", "名称": "再送"}, at=T0 + timedelta(minutes=1), offset=40, event_id="dlq-1"
    )
    result = apply(catalog, [replayed])
    assert (result.applied, result.stale, result.deleted) == (0, 1, 0)
    assert record(catalog, "1") is None
    ledger = catalog.get(ProcessedEvent, (SOURCE, "dlq-1"))
    assert ledger is not None
    assert (ledger.outcome, ledger.note) == ("stale", f"superseded by {SOURCE} {removal.id}")
    assert dataset_row(catalog).record_count == live_rows(catalog) == 1
    assert dataset_row(catalog).last_record_at == T0 + timedelta(minutes=5)
    found, total = queries.list_records(catalog, dataset_id=FACILITY, filters={}, limit=10, offset=0)
    assert (_keys(found), total) == (["2"], 1)
    assert queries.list_records(
        catalog, dataset_id=FACILITY, filters={"名称": "再送"}, limit=10, offset=0
    ) == (
        [],
        0,
    )
    # An older deletion is stale too: the tombstone keeps the newest version.
    assert apply(catalog, [deletion("1", at=T0 + timedelta(minutes=2), offset=41)]).stale == 1
    tombstone = stored_row(catalog, "1")
    assert tombstone is not None
    assert (tombstone.event_time, tombstone.event_id) == (T0 + timedelta(minutes=5), removal.id)
    # A newer deletion of the deleted record moves the tombstone's version on, and changes no count.
    again = apply(catalog, [deletion("1", at=T0 + timedelta(minutes=9), offset=42)])
    assert again.deleted == 1
    assert apply(catalog, [upsert("1", at=T0 + timedelta(minutes=7), offset=43)]).stale == 1
    assert record(catalog, "1") is None
    assert dataset_row(catalog).record_count == live_rows(catalog) == 1


def test_deletion_of_an_unknown_record_blocks_an_older_late_upsert(catalog: Session) -> None:
    # The deletion overtakes the creation (dead-lettered, repaired and replayed afterwards).
    absent = apply(catalog, [deletion("9", at=T0 + timedelta(minutes=1), offset=1)])
    assert absent.deleted == 1
    assert stored_row(catalog, "9") is not None
    assert dataset_row(catalog).record_count == 0
    assert dataset_row(catalog).last_record_at is None  # deleting nothing changes nothing visible
    late = apply(catalog, [upsert("9", at=T0, offset=0)])
    assert (late.applied, late.stale) == (0, 1)
    assert record(catalog, "9") is None
    assert dataset_row(catalog).record_count == live_rows(catalog) == 0


def test_newer_upsert_after_a_deletion_recreates_the_record(catalog: Session) -> None:
    apply(catalog, [upsert("1", {"NO": "1", "名称": "初版"}, offset=1)])
    apply(catalog, [deletion("1", at=T0 + timedelta(minutes=1), offset=2)])
    assert dataset_row(catalog).record_count == 0
    newer = upsert(
        "1",
        {"NO": "1", "名称": "再作成", "緯度": 34.9, "経度": 138.4},
        at=T0 + timedelta(minutes=2),
        offset=3,
    )
    back = apply(catalog, [newer])
    assert (back.applied, back.stale) == (1, 0)
    row = record(catalog, "1")
    assert row is not None
    assert (row.data["名称"], row.deleted_at, row.latitude, row.longitude) == ("再作成", None, 34.9, 138.4)
    assert (row.event_time, row.event_id) == (T0 + timedelta(minutes=2), newer.id)
    assert dataset_row(catalog).record_count == live_rows(catalog) == 1
    assert dataset_row(catalog).last_record_at == T0 + timedelta(minutes=2)
    found, total = queries.list_records(
        catalog, dataset_id=FACILITY, filters={"名称": "再作成"}, limit=5, offset=0
    )
    assert (_keys(found), total) == (["1"], 1)

    # Deleted and re-created within one later batch, then deleted and re-created across batches again.
    t = T0 + timedelta(minutes=3)
    apply(catalog, [deletion("1", at=t, offset=4), upsert("1", at=t, offset=5)])
    assert record(catalog, "1") is not None
    apply(catalog, [upsert("1", at=t, offset=6), deletion("1", at=t, offset=7)])
    assert record(catalog, "1") is None
    assert dataset_row(catalog).record_count == live_rows(catalog) == 0
    apply(catalog, [upsert("1", at=t, offset=8)])
    assert dataset_row(catalog).record_count == live_rows(catalog) == 1


def test_publish_api_never_serves_tombstones(catalog: Session, engine: Engine) -> None:
    apply(catalog, [upsert(str(n), {"NO": str(n), "名称": "公園"}, offset=n) for n in range(1, 5)])
    apply(catalog, [deletion("2", at=T0 + timedelta(minutes=1), offset=10)])
    apply(catalog, [upsert("2", {"NO": "2", "名称": "公園"}, at=T0, offset=11, event_id="replayed")])
    with TestClient(create_app(Settings(), engine=engine)) as client:
        for query in ("", "?名称=公園", "?limit=2&offset=1"):
            response = client.get(f"/api/v1/datasets/{FACILITY}/records{query}")
            assert response.status_code == 200, response.text
            assert response.headers["X-Total-Count"] == "3"
            keys = [row["NO"] for row in response.json()["records"]]
            assert keys == (["3", "4"] if "offset" in query else ["1", "3", "4"])
        detail = client.get(f"/api/v1/datasets/{FACILITY}")
        assert detail.json()["record_count"] == 3


# --- 64-bit offsets and UTC timestamps -------------------------------------------------------------


def test_offsets_beyond_32_bits(catalog: Session) -> None:
    big = 2**31 + 10
    apply(catalog, [upsert("1", {"NO": "1", "名称": "2^31+10"}, offset=big)])
    assert apply(catalog, [upsert("1", {"NO": "1", "名称": "2^31+9"}, offset=big - 1)]).stale == 1
    assert apply(catalog, [upsert("1", {"NO": "1", "名称": "2^62"}, offset=2**62)]).applied == 1
    row = record(catalog, "1")
    assert row is not None
    assert (row.data["名称"], row.kafka_offset) == ("2^62", 2**62)
    apply(catalog, [deletion("1", offset=2**63 - 1)])
    tombstone = stored_row(catalog, "1")
    assert tombstone is not None
    assert (tombstone.deleted_at is not None, tombstone.kafka_offset) == (True, 2**63 - 1)


def test_timestamps_come_back_aware_in_utc(catalog: Session, engine: Engine) -> None:
    apply(
        catalog,
        [upsert("1", at=T0), upsert("2", offset=1), deletion("2", at=T0 + timedelta(minutes=1), offset=2)],
    )
    with session_factory(engine)() as fresh:
        moments: list[datetime | None] = [
            *fresh.scalars(select(SchemaVersionRow.registered_at)),
            *fresh.scalars(select(Record.event_time)),
            *fresh.scalars(select(Record.updated_at)),
            *fresh.scalars(select(Record.deleted_at).where(Record.deleted_at.is_not(None))),
            *fresh.scalars(select(Dataset.last_record_at).where(Dataset.id == FACILITY)),
            *fresh.scalars(select(ProcessedEvent.processed_at)),
        ]
        assert len(moments) == 2 + 2 + 2 + 1 + 1 + 3
        for moment in moments:
            assert moment is not None
            assert moment.tzinfo is UTC, moment
        row = fresh.get(Record, (FACILITY, "1"))
        assert row is not None
        # Stored as the instant: 09:00 JST reads back as 00:00 UTC.
        assert (row.event_time, row.event_time.hour, row.event_time.tzinfo) == (T0, 0, UTC)
        if engine.dialect.name == "sqlite":
            # SQLite keeps text: always UTC, so that text comparison orders instants.
            stored = (
                fresh.connection()
                .exec_driver_sql("SELECT event_time FROM records WHERE record_key = '1'")
                .scalar_one()
            )
            assert stored.startswith("2025-04-01 00:00:00")
    # SQL comparisons bind through the same type: a JST bound matches the UTC stored value.
    assert catalog.scalar(select(func.count()).select_from(Record).where(Record.event_time >= T0)) == 2
    assert catalog.scalar(select(func.count()).select_from(Record).where(Record.event_time > T0)) == 1


def test_naive_datetimes_are_refused(catalog: Session) -> None:
    row = dataset_row(catalog)
    row.last_record_at = datetime(2025, 4, 1, 9, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        catalog.flush()
    catalog.rollback()


def test_record_count_matches_rows_after_mixed_batches(catalog: Session) -> None:
    offset = 0
    for round_ in range(5):
        batch: list[ValidatedEvent] = []
        for n in range(40):
            offset += 1
            at = T0 + timedelta(seconds=offset)
            key = str((n * 7 + round_ * 3) % 50)
            batch.append(
                deletion(key, at=at, offset=offset) if n % 4 == 0 else upsert(key, at=at, offset=offset)
            )
        apply(catalog, batch)
        rows = live_rows(catalog)
        assert dataset_row(catalog).record_count == rows
        listed = queries.list_records(catalog, dataset_id=FACILITY, filters={}, limit=100, offset=0)
        assert listed[1] == len(listed[0]) == rows
        assert all(r.deleted_at is None for r in listed[0])


def test_concurrent_consumers_keep_counts_exact(catalog: Session, engine: Engine) -> None:
    # Consumers of different partitions write disjoint records but the same dataset row. SQLite
    # writers must begin IMMEDIATE (session_factory's sqlite_begin); PostgreSQL needs nothing.
    factory = session_factory(engine, sqlite_begin="IMMEDIATE")

    def consume(partition: int) -> None:
        for batch in range(5):
            numbers = range(batch * 40, batch * 40 + 40)
            events = [upsert(f"p{partition}-{n}", partition=partition, offset=n) for n in numbers]
            events.append(
                deletion(f"p{partition}-{batch * 40}", at=T0 + timedelta(hours=partition), offset=999)
            )
            with factory() as session:
                apply_batch(session, events=events, now=NOW)
                session.commit()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(consume, range(4)))
    assert live_rows(catalog) == dataset_row(catalog).record_count == 4 * (200 - 5)
    assert dataset_row(catalog).last_record_at == T0 + timedelta(hours=3)


def test_unknown_dataset_is_a_setup_error(catalog: Session) -> None:
    with pytest.raises(SchemaError, match="missing from the catalog"):
        apply_batch(catalog, events=[upsert("1", dataset="no-such-dataset")], now=NOW)
    catalog.rollback()


def test_large_batch_uses_few_statements(catalog: Session) -> None:
    engine = catalog.get_bind()
    assert isinstance(engine, Engine)
    apply(catalog, [upsert(str(n), offset=n) for n in range(0, 1000, 2)])  # half of them exist already
    statements: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    batch = [upsert(str(n), at=T0 + timedelta(minutes=1), offset=1000 + n) for n in range(500)]
    batch += [deletion(str(n), at=T0 + timedelta(minutes=2), offset=2000 + n) for n in range(0, 100, 3)]
    event.listen(engine, "before_cursor_execute", remember)
    try:
        result = apply(catalog, batch)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert (result.applied, result.deleted) == (500, 34)
    # Independent of the batch size: 2+2 IN-list reads, 1 dataset read, 3 bulk writes (ledger, inserts,
    # updates -- deletions write tombstones), the dataset update, the commit -- never one per event.
    assert len(statements) <= 15, statements
    assert live_rows(catalog) == dataset_row(catalog).record_count == 500 + 250 - 34


def test_empty_batch(catalog: Session) -> None:
    assert apply(catalog, []) == BatchResult()


# --- read queries ----------------------------------------------------------------------------------


def test_dataset_and_schema_queries(catalog: Session) -> None:
    assert [d.id for d in queries.list_datasets(catalog)] == [FACILITY]
    assert [d.id for d in queries.list_datasets(catalog, classification="internal")] == [COPIER]
    assert [d.id for d in queries.list_datasets(catalog, classification=None)] == [COPIER, FACILITY]
    facility = queries.get_dataset(catalog, dataset_id=FACILITY)
    assert facility is not None
    assert facility.title_en == "Public facilities"
    assert queries.get_dataset(catalog, dataset_id="nope") is None
    latest = queries.latest_schema(catalog, dataset_id=FACILITY)
    assert latest is not None
    assert latest.document == facility_schema(1).document
    assert queries.latest_schema(catalog, dataset_id="nope") is None


def _facilities() -> list[dict[str, Any]]:
    return [
        {"NO": "0001", "名称": "焼津市役所", "階数": 5, "面積": 1234.5, "バリアフリー": True},
        {"NO": "0002", "名称": "焼津市役所", "階数": 1, "面積": 80.0, "バリアフリー": False},
        {"NO": "0003", "名称": "大井川庁舎", "階数": 3, "面積": 3.0, "バリアフリー": True},
        {"NO": "0004", "名称": "5", "階数": 5.0, "面積": 1, "バリアフリー": 1},
        {"NO": "0005", "名称": "true", "階数": "5"},
    ]


def _keys(records: Sequence[Record]) -> list[str]:
    return [r.record_key for r in records]


def test_json_equality_filters(catalog: Session) -> None:
    apply(catalog, [upsert(d["NO"], d, offset=i) for i, d in enumerate(_facilities())])

    def find(**filters: str | int | float | bool) -> list[str]:
        found, total = queries.list_records(
            catalog, dataset_id=FACILITY, filters=filters, limit=100, offset=0
        )
        assert total == len(found)
        return _keys(found)

    assert find(名称="焼津市役所") == ["0001", "0002"]
    assert find(名称="焼津市役所", 階数=5) == ["0001"]
    # JSON typing: the string "5" is not the number 5, and 1 is not true. 5 == 5.0 as in JSON Schema.
    assert find(階数=5) == ["0001", "0004"]
    assert find(階数=5.0) == ["0001", "0004"]
    assert find(名称="5") == ["0004"]
    assert find(面積=1234.5) == ["0001"]
    assert find(面積=3) == ["0003"]
    assert find(バリアフリー=True) == ["0001", "0003"]
    assert find(バリアフリー=False) == ["0002"]
    assert find(名称="true") == ["0005"]
    assert find(名称="存在しない") == []
    assert find(未定義の項目="x") == []
    assert find() == ["0001", "0002", "0003", "0004", "0005"]
    # Filters never leak across datasets.
    apply(catalog, [upsert("c1", {"id": "c1", "名称": "焼津市役所"}, dataset=COPIER, offset=99)])
    assert find(名称="焼津市役所") == ["0001", "0002"]
    with pytest.raises(ValueError):
        queries.list_records(catalog, dataset_id=FACILITY, filters={'a"b': "x"}, limit=1, offset=0)
    with pytest.raises(ValueError):
        queries.list_records(catalog, dataset_id=FACILITY, filters={"面積": float("nan")}, limit=1, offset=0)


def test_pagination_is_stable(catalog: Session) -> None:
    keys = [f"{n:03d}" for n in range(47)]
    shuffled = keys[1::2] + keys[0::2]  # arrival order differs from key order
    apply(
        catalog,
        [upsert(k, {"NO": k, "名称": "公園", "番号": int(k)}, offset=i) for i, k in enumerate(shuffled)],
    )
    pages: list[str] = []
    for offset in range(0, 60, 10):
        page, total = queries.list_records(
            catalog, dataset_id=FACILITY, filters={"名称": "公園"}, limit=10, offset=offset
        )
        assert total == 47
        pages += _keys(page)
    assert pages == keys
    again, _ = queries.list_records(catalog, dataset_id=FACILITY, filters={}, limit=10, offset=20)
    assert _keys(again) == keys[20:30]
    empty, total = queries.list_records(catalog, dataset_id=FACILITY, filters={}, limit=0, offset=0)
    assert (empty, total) == ([], 47)


def test_unicode_round_trip(catalog: Session, engine: Engine) -> None:
    data: dict[str, Any] = {
        "NO": "ｱｲｳ-①",
        "名称": "焼津市役所　本庁舎（旧館）",
        "名称_カナ": "ヤイヅシヤクショ",
        "記号": "○ と 〇 は別の文字",
        "異体字": "髙橋・𠮷野家・葛󠄀城",
        "絵文字": "🏯🗾",
        "結合文字": "\u304b\u3099",  # か + combining dakuten: must not be normalised
        "改行": "一行目\r\n二行目",
        "入れ子": {"配列": ["ア", 1, 2.5, True, None], "空": {}},
        "大きな整数": 2**70 + 1,  # beyond 64 bits: must come back exact, not as a float
    }
    apply(catalog, [upsert(data["NO"], data)])
    with session_factory(engine)() as fresh:
        row = fresh.get(Record, (FACILITY, "ｱｲｳ-①"))
        assert row is not None
        assert row.data == data
        found, total = queries.list_records(
            fresh, dataset_id=FACILITY, filters={"異体字": data["異体字"]}, limit=5, offset=0
        )
        assert (total, _keys(found)) == (1, ["ｱｲｳ-①"])
        assert (
            queries.list_records(
                fresh, dataset_id=FACILITY, filters={"記号": "〇 と ○ は別の文字"}, limit=5, offset=0
            )[1]
            == 0
        )


def test_yaizu_public_facilities(catalog: Session) -> None:
    """The real Yaizu 公共施設一覧 (230 rows): stored, located and found by name."""
    source = FIXTURES / "opendata-jp" / "samples" / "yaizu-222127" / "222127_public_facility.csv"
    if not source.exists():
        pytest.skip(f"fixture {source} not found (set CITYOS_FIXTURES)")
    with source.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    events = []
    for offset, row in enumerate(rows):
        data: dict[str, Any] = {k: v for k, v in row.items() if v}
        for field in ("緯度", "経度"):
            if field in data:
                data[field] = float(data[field])
        events.append(upsert(data["NO"], data, offset=offset))
    result = apply(catalog, events)
    assert result.applied == len(rows) == 230
    found, total = queries.list_records(
        catalog, dataset_id=FACILITY, filters={"名称": "焼津市役所本庁舎"}, limit=10, offset=0
    )
    assert total == 1
    assert (found[0].latitude, found[0].longitude) == (34.867221, 138.322876)
    assert found[0].data["利用可能日時特記事項"] == "【開館時間】8:30～17:15 【休館日】土曜、日曜日、祝日"
    located = catalog.scalar(
        select(func.count())
        .select_from(Record)
        .where(Record.dataset_id == FACILITY, Record.latitude.is_not(None))
    )
    assert located == sum(1 for r in rows if r["緯度"] and r["経度"])
