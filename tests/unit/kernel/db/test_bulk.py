"""Bulk writes (COPY on PostgreSQL, executemany on SQLite) store what the ORM stores and fail as it fails.

Every test runs on SQLite and on PostgreSQL (marked ``integration``; ``CITYOS_TEST_PG_URL``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from cityos.kernel.db.bulk import insert_rows, pipelined, upsert_rows
from cityos.kernel.db.engine import make_engine, migrate
from cityos.kernel.db.models import Base, ProcessedEvent
from tests.support.catalog_store import pg_base_url, pg_schema_url

LEDGER = Base.metadata.tables["processed_events"]
JST = timezone(timedelta(hours=9))
AT = datetime(2026, 4, 1, 9, 0, tzinfo=JST)


def _migrated(urls: Iterator[str]) -> Iterator[Engine]:
    url = next(urls)
    migrate(url)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        next(urls, None)  # drops the PostgreSQL schema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        yield from _migrated(iter([f"sqlite:///{tmp_path / 'bulk.db'}"]))
    else:
        yield from _migrated(pg_schema_url(pg_base_url()))


@pytest.fixture()
def pg_engine() -> Iterator[Engine]:
    """PostgreSQL only: pipelining is a PostgreSQL protocol feature."""
    yield from _migrated(pg_schema_url(pg_base_url()))


def ledger_row(event_id: str, note: str | None = None, at: datetime = AT) -> dict[str, Any]:
    return {
        "source": "/departments/fire/台帳",
        "event_id": event_id,
        "dataset_id": "aed",
        "outcome": "applied",
        "processed_at": at,
        "note": note,
    }


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    with Session(engine) as session:
        rows = session.execute(
            select(ProcessedEvent.event_id, ProcessedEvent.note, ProcessedEvent.processed_at).order_by(
                ProcessedEvent.event_id
            )
        )
        return [tuple(row) for row in rows]


def test_inserted_rows_read_back_as_the_orm_wrote_them(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, LEDGER, [ledger_row("1", "最初"), ledger_row("2")])
    assert stored(engine) == [("1", "最初", AT), ("2", None, AT)]
    # An instant: 09:00 JST is 00:00 UTC, read back aware in UTC on both backends.
    assert stored(engine)[0][2].tzinfo is UTC


def test_a_duplicate_key_is_an_integrity_error_and_nothing_is_written(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, LEDGER, [ledger_row("1")])
    with pytest.raises(IntegrityError), engine.begin() as connection:
        insert_rows(connection, LEDGER, [ledger_row("2"), ledger_row("1")])
    assert [row[0] for row in stored(engine)] == ["1"]


def test_upsert_replaces_every_other_column(engine: Engine) -> None:
    later = AT + timedelta(minutes=5)
    with engine.begin() as connection:
        upsert_rows(connection, LEDGER, [ledger_row("1", "old")], key=("source", "event_id"))
    with engine.begin() as connection:
        upsert_rows(
            connection,
            LEDGER,
            [ledger_row("1", None, later), ledger_row("2", "new")],
            key=("source", "event_id"),
        )
        # Twice in one transaction: the second upsert starts from an empty staging table.
        upsert_rows(connection, LEDGER, [ledger_row("3")], key=("source", "event_id"))
    assert stored(engine) == [("1", None, later), ("2", "new", AT), ("3", None, AT)]


def test_a_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises((StatementError, ValueError), match="naive"), engine.begin() as connection:
        insert_rows(connection, LEDGER, [ledger_row("1", at=datetime(2026, 4, 1, 9, 0))])
    assert stored(engine) == []


def test_no_rows_no_statement(engine: Engine) -> None:
    with engine.begin() as connection:
        insert_rows(connection, LEDGER, [])
        upsert_rows(connection, LEDGER, [], key=("source", "event_id"))
    assert stored(engine) == []


def _note_update(engine: Engine) -> str:
    mark = "%s" if engine.dialect.name == "postgresql" else "?"
    return f"UPDATE processed_events SET note = {mark} WHERE event_id = {mark}"


def test_statements_after_an_upsert_see_its_rows(engine: Engine) -> None:
    with engine.begin() as connection:
        upsert_rows(
            connection,
            LEDGER,
            [ledger_row("1", "old")],
            key=("source", "event_id"),
            then=[(_note_update(engine), ("更新", "1"))],
        )
    assert stored(engine) == [("1", "更新", AT)]
    # Without rows to upsert, the statements still run.
    with engine.begin() as connection:
        upsert_rows(
            connection, LEDGER, [], key=("source", "event_id"), then=[(_note_update(engine), ("2nd", "1"))]
        )
    assert stored(engine) == [("1", "2nd", AT)]


@pytest.mark.integration
def test_pipelined_statements_return_their_rows_in_order(pg_engine: Engine) -> None:
    engine = pg_engine
    with engine.begin() as connection:
        insert_rows(connection, LEDGER, [ledger_row("1", "最初"), ledger_row("2")])
        results = pipelined(
            connection,
            [
                ("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)", ()),
                (
                    "SELECT event_id, note FROM processed_events WHERE event_id = ANY(%s) ORDER BY 1",
                    (["1", "2"],),
                ),
                (_note_update(engine), ("更新", "2")),
                ("SELECT note FROM processed_events WHERE event_id = %s", ("2",)),
            ],
        )
    assert results == [[("force_custom_plan",)], [("1", "最初"), ("2", None)], [], [("更新",)]]


@pytest.mark.integration
def test_a_failing_pipelined_statement_is_sqlalchemys_error(pg_engine: Engine) -> None:
    engine = pg_engine
    with engine.begin() as connection:
        insert_rows(connection, LEDGER, [ledger_row("1")])
    insert = "INSERT INTO processed_events SELECT * FROM processed_events"
    with pytest.raises(IntegrityError), engine.begin() as connection:
        pipelined(connection, [("SELECT 1", ()), (insert, ())])
    assert [row[0] for row in stored(engine)] == ["1"]
