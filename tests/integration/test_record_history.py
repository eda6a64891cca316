"""The catalog's change log and the as-of reader, on SQLite and PostgreSQL, driven through apply_batch.

Events are sent in batches whose order differs from their times (a late, older event; a redelivery;
a deletion of an unknown record; ties broken by topic position; changes at the stroke of midnight
in Japan). For every day, the dataset as of the end of that day in Japan is compared with the state
the test works out by itself from what it sent; the state now with the records API's answer.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session

from cityos.domain.analysis.history import current_records, end_of_day_jst, records_as_of
from cityos.kernel.db.bulk import insert_rows
from cityos.kernel.db.engine import alembic_config, make_engine, migrate, session_factory
from cityos.kernel.db.history_models import RecordChange
from cityos.kernel.db.models import Base, ProcessedEvent, Record
from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from cityos.kernel.settings import Settings
from services.catalog.store import apply_batch, sync_schema_set
from services.publish.app import create_app
from tests.support.catalog_store import COPIER, FACILITY, JST, NOW, SOURCE, make_schema_set, pg_schema_url

pytestmark = pytest.mark.integration

DAY1 = date(2025, 4, 1)
DAYS = [
    DAY1 + timedelta(days=n) for n in range(-1, 8)
]  # a day before the first event to a day after the last


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        yield from pg_schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    migrate(db_url)
    engine = make_engine(db_url)
    with session_factory(engine).begin() as session:
        sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
    try:
        yield engine
    finally:
        engine.dispose()


def at(day: int, hour: int, minute: int = 0, *, second: int = 0, micro: int = 0) -> datetime:
    """An instant in Japan on the ``day``-th day of the scenario (1 = DAY1)."""
    moment = datetime.combine(DAY1 + timedelta(days=day - 1), time(hour, minute, second, micro), tzinfo=JST)
    return moment


def change(
    key: str, event_id: str, when: datetime, *, offset: int, partition: int = 0, deleted: bool = False
) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id=FACILITY,
        record_key=key,
        schema_version=1,
        source=SOURCE,
        id=event_id,
        type=TYPE_DELETED if deleted else TYPE_UPSERTED,
        time=when,
        data=None if deleted else {"NO": key, "名称": f"施設{key} ({event_id})", "階数": offset % 9 + 1},
        partition=partition,
        offset=offset,
    )


def scenario() -> list[list[ValidatedEvent]]:
    """Batches as delivered, in delivery order."""
    first = [
        change("A01", "a-created", at(1, 9), offset=1),
        change("B02", "b-created", at(1, 10), offset=2),
        change("C03", "c-last-moment", at(1, 23, 59, second=59, micro=999_999), offset=3),
        change("D04", "d-at-midnight", at(2, 0), offset=4),
    ]
    second = [
        change("A01", "a-updated", at(2, 12), offset=5),
        change("B02", "b-deleted", at(3, 8), offset=6, deleted=True),
        # Same time: the higher partition wins, whatever the offsets.
        change("C03", "c-partition-1", at(3, 9), offset=0, partition=1),
        change("C03", "c-partition-0", at(3, 9), offset=100, partition=0),
        # Same time and partition: the higher offset wins.
        change("D04", "d-offset-7", at(3, 10), offset=7),
        change("D04", "d-offset-8", at(3, 10), offset=8),
    ]
    third = [
        # Late and older than A01's state: stale for the catalog, yet A01 as it stood that evening.
        change("A01", "a-late-evening", at(1, 18), offset=9),
        first[0],  # a redelivery
        second[0],  # and another
        change("B02", "b-recreated", at(5, 10), offset=10),
        change("E05", "e-deleted-unknown", at(4, 9), offset=11, deleted=True),
        change("E05", "e-late-create", at(3, 9), offset=12),  # older than its deletion: stale
    ]
    fourth = [
        change("D04", "d-deleted", at(4, 15), offset=13, deleted=True),
        change("D04", "d-recreated", at(4, 16), offset=14),
        change("F06", "f-at-midnight", at(6, 0), offset=15),
        change("A01", "a-deleted", at(6, 12), offset=16, deleted=True),
        change("C03", "c-stale-deletion", at(2, 1), offset=17, deleted=True),  # older than C03's state
        first[3],  # a redelivery
    ]
    return [first, second, third, fourth]


def apply(engine: Engine, batches: Sequence[Sequence[ValidatedEvent]]) -> None:
    sessions = session_factory(engine, sqlite_begin="IMMEDIATE")
    for number, batch in enumerate(batches):
        with sessions.begin() as session:
            apply_batch(session, events=batch, now=NOW + timedelta(minutes=number))


def first_deliveries(batches: Sequence[Sequence[ValidatedEvent]]) -> list[ValidatedEvent]:
    seen: dict[tuple[str, str], ValidatedEvent] = {}
    for batch in batches:
        for event in batch:
            seen.setdefault((event.source, event.id), event)
    return list(seen.values())


def state_at(sent: Sequence[ValidatedEvent], moment: datetime) -> list[dict[str, Any]]:
    """Worked out from what was sent: per record, the latest change by (time, partition, offset) at
    or before ``moment``; absent when that change is a deletion. Key order."""
    latest: dict[str, ValidatedEvent] = {}
    for event in sent:
        if event.time > moment:
            continue
        held = latest.get(event.record_key)
        if held is None or (event.time, event.partition, event.offset) > (
            held.time,
            held.partition,
            held.offset,
        ):
            latest[event.record_key] = event
    return [latest[key].data or {} for key in sorted(latest) if not latest[key].is_deletion]


def day_end(day: date) -> datetime:
    """The end of ``day`` in Japan, written out here: its last microsecond at UTC+9."""
    return datetime.combine(day, time(23, 59, 59, 999_999), tzinfo=JST)


def read_as_of(engine: Engine, moment: datetime, batch_size: int = 2) -> list[dict[str, Any]]:
    with Session(engine) as session:
        batches = list(records_as_of(session, dataset_id=FACILITY, at=moment, batch_size=batch_size))
    assert all(0 < len(batch) <= batch_size for batch in batches)
    return [document for batch in batches for document in batch]


def read_current(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [
            document
            for batch in current_records(session, dataset_id=FACILITY, batch_size=2)
            for document in batch
        ]


def test_every_day_as_of_its_end_equals_the_state_worked_out_from_what_was_sent(engine: Engine) -> None:
    batches = scenario()
    apply(engine, batches)
    sent = first_deliveries(batches)

    for day in DAYS:
        assert end_of_day_jst(day) == day_end(day)
        assert read_as_of(engine, end_of_day_jst(day)) == state_at(sent, day_end(day)), day
    # The day boundaries are where the scenario put changes: C03 at the last microsecond of day 1
    # belongs to day 1, D04 at the stroke of midnight to day 2.
    day1 = [doc["NO"] for doc in read_as_of(engine, end_of_day_jst(DAY1))]
    assert day1 == ["A01", "B02", "C03"]
    # The late evening event, stale for the catalog, is what A01 was at the end of day 1.
    assert read_as_of(engine, end_of_day_jst(DAY1))[0]["名称"] == "施設A01 (a-late-evening)"

    # One change per event accepted, stale ones included; redeliveries wrote nothing.
    with Session(engine) as session:
        logged = set(session.execute(select(RecordChange.event_source, RecordChange.event_id)).tuples())
        ledger = set(session.execute(select(ProcessedEvent.source, ProcessedEvent.event_id)).tuples())
        deletions = session.execute(
            select(RecordChange.event_id, RecordChange.data).where(RecordChange.deleted.is_(True))
        ).all()
    assert logged == ledger == {(e.source, e.id) for e in sent}
    assert sum(len(batch) for batch in batches) - len(sent) == 3
    assert sorted(deletions) == sorted((e.id, None) for e in sent if e.is_deletion)


def test_the_state_now_equals_the_records_api_and_the_latest_as_of(engine: Engine, db_url: str) -> None:
    batches = scenario()
    apply(engine, batches)
    sent = first_deliveries(batches)
    now = read_current(engine)

    with TestClient(create_app(Settings(database_url=db_url), engine=engine)) as client:
        response = client.get(f"/api/v1/datasets/{FACILITY}/records", params={"limit": 1000})
    assert response.status_code == 200
    assert now == response.json()["records"]
    assert now == state_at(sent, datetime.max.replace(tzinfo=UTC))
    assert now == read_as_of(engine, datetime.now(UTC), batch_size=5000)
    assert [doc["NO"] for doc in now] == ["B02", "C03", "D04", "F06"]


def test_a_catalog_with_records_before_the_log_existed_starts_it_from_them(
    engine: Engine, db_url: str
) -> None:
    batches = scenario()
    apply(engine, batches)
    sent = first_deliveries(batches)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0008")
    assert not inspect(engine).has_table("record_changes")

    migrate(db_url)  # the catalog upgraded: the log is created and filled from the records

    # Worked out from what was sent: only each record's winning event survives in `records`.
    winners: dict[str, ValidatedEvent] = {}
    for event in sent:
        held = winners.get(event.record_key)
        if held is None or (event.time, event.partition, event.offset) > (
            held.time,
            held.partition,
            held.offset,
        ):
            winners[event.record_key] = event
    with Session(engine) as session:
        rows = session.execute(
            select(
                RecordChange.record_key,
                RecordChange.event_id,
                RecordChange.event_time,
                RecordChange.kafka_partition,
                RecordChange.kafka_offset,
                RecordChange.deleted,
                RecordChange.data,
                RecordChange.applied_at,
            ).order_by(RecordChange.record_key)
        ).all()
        applied = {
            key: moment for key, moment in session.execute(select(Record.record_key, Record.updated_at))
        }
    assert [tuple(row) for row in rows] == [
        (
            key,
            event.id,
            event.time.astimezone(UTC),
            event.partition,
            event.offset,
            event.is_deletion,
            None if event.is_deletion else event.data,
            applied[key],
        )
        for key, event in sorted(winners.items())
    ]
    survivors = list(winners.values())
    for day in DAYS:
        assert read_as_of(engine, end_of_day_jst(day)) == state_at(survivors, day_end(day)), day
    assert read_as_of(engine, datetime.now(UTC)) == read_current(engine)

    # The catalog goes on logging after the upgrade.
    later = [
        change("G07", "g-created", at(8, 9), offset=18),
        change("B02", "b-updated", at(8, 10), offset=19),
    ]
    apply(engine, [later])
    assert read_as_of(engine, end_of_day_jst(DAY1 + timedelta(days=7))) == state_at(
        [*survivors, *later], day_end(DAY1 + timedelta(days=7))
    )


def _fill(engine: Engine, dataset_id: str, records: int, superseded: int) -> None:
    """``records`` live records of ``dataset_id`` in the log, the first ``superseded`` of them with an
    older change too. Written in bulk: what is measured is the reader."""
    applied = datetime(2025, 4, 2, tzinfo=UTC)
    chunk = 20_000
    with engine.begin() as connection:
        for start in range(0, records + superseded, chunk):
            rows = []
            for n in range(start, min(start + chunk, records + superseded)):
                number, older = (n, False) if n < records else (n - records, True)
                key = f"K{number:07d}"
                rows.append(
                    {
                        "event_source": SOURCE,
                        "event_id": f"{dataset_id}-{n}",
                        "dataset_id": dataset_id,
                        "record_key": key,
                        "event_time": datetime(2025, 4, 1, tzinfo=UTC)
                        - (timedelta(days=1) if older else timedelta()),
                        "kafka_partition": 0,
                        "kafka_offset": n,
                        "schema_version": 1,
                        "deleted": False,
                        "data": {"NO": key, "名称": f"公共施設{number}", "版": "旧" if older else "新"},
                        "applied_at": applied,
                    }
                )
            insert_rows(connection, Base.metadata.tables[RecordChange.__tablename__], rows)


def _peak_while_reading(engine: Engine, dataset_id: str) -> tuple[int, int]:
    """(records read, peak bytes Python allocated meanwhile) of an as-of read of ``dataset_id``."""
    count = 0
    with Session(engine) as session:
        tracemalloc.start()
        try:
            for batch in records_as_of(
                session, dataset_id=dataset_id, at=datetime(2025, 4, 2, tzinfo=UTC), batch_size=2000
            ):
                count += len(batch)
                assert batch[0]["版"] == "新"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return count, peak


def test_a_large_as_of_read_holds_a_batch_not_the_dataset(engine: Engine) -> None:
    _fill(engine, COPIER, 20_000, 2_000)
    _fill(engine, FACILITY, 200_000, 20_000)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(RecordChange)) == 242_000

    small, small_peak = _peak_while_reading(engine, COPIER)
    large, large_peak = _peak_while_reading(engine, FACILITY)
    assert (small, large) == (20_000, 200_000)
    # Ten times the records, about the same memory: a batch at a time. Held whole, 200,000
    # documents take well over 50 MB of Python objects.
    assert large_peak < small_peak * 1.5 + 1_000_000, (small_peak, large_peak)
    assert large_peak < 8_000_000, large_peak
