"""Catalog persistence on PostgreSQL only: what SQLite cannot show (row locks, advisory locks).

Behaviour shared by both backends is tested in ``tests/unit/services/catalog/test_catalog_store.py``, which runs every
test on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from cityos.kernel.db.engine import MIGRATION_LOCK_KEY, make_engine, migrate, session_factory
from cityos.kernel.db.models import ProcessedEvent, Record
from services.catalog.store import apply_batch, sync_schema_set
from tests.support.catalog_store import NOW, make_schema_set, pg_schema_url, upsert

pytestmark = pytest.mark.integration


@pytest.fixture
def schema_url(pg_url: str) -> Iterator[str]:
    """An empty schema of its own on the test server (``pg_url`` fails in CI when unset)."""
    yield from pg_schema_url(pg_url)


@pytest.fixture
def engine(schema_url: str) -> Iterator[Engine]:
    migrate(schema_url)
    engine = make_engine(schema_url)
    with session_factory(engine)() as session:
        sync_schema_set(session, schema_set=make_schema_set(), now=NOW)
        session.commit()
    try:
        yield engine
    finally:
        engine.dispose()


def _wait_until_blocked(engine: Engine, application: str) -> None:
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app AND wait_event_type = 'Lock'"
                ),
                {"app": application},
            ).scalar_one()
            conn.rollback()  # a fresh snapshot of pg_stat_activity on the next poll
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail(f"{application} never waited on a lock")


def test_migration_waits_for_the_advisory_lock(schema_url: str) -> None:
    holder = make_engine(schema_url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(schema_url)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    try:
        with holder.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(MIGRATION_LOCK_KEY)))
            worker = threading.Thread(target=run)
            worker.start()
            worker.join(timeout=1.0)
            assert worker.is_alive(), "migrate did not wait for the migration lock"
            assert "alembic_version" not in inspect(conn).get_table_names()
            conn.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK_KEY)))
            conn.commit()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert errors == []
        assert "records" in inspect(holder).get_table_names()
    finally:
        holder.dispose()


def test_concurrent_apply_of_the_same_events_fails_then_retries_as_duplicates(engine: Engine) -> None:
    # Two consumers briefly own one partition during a rebalance: both read an empty ledger, the
    # second blocks on the first's uncommitted ledger rows, then fails; its retry sees duplicates.
    batch = [upsert(str(n), offset=n) for n in range(20)]
    first_factory = session_factory(engine)
    second_engine = make_engine(
        engine.url.update_query_dict({"application_name": "cityos-second-consumer"}).render_as_string(
            hide_password=False
        )
    )
    second_factory = session_factory(second_engine)
    outcome: list[BaseException | None] = []

    def second() -> None:
        with second_factory() as session:
            try:
                apply_batch(session, events=batch, now=NOW)
                session.commit()
                outcome.append(None)
            except BaseException as exc:  # handed to the main thread
                session.rollback()
                outcome.append(exc)

    try:
        with first_factory() as first:
            assert apply_batch(first, events=batch, now=NOW).applied == 20
            worker = threading.Thread(target=second)
            worker.start()
            _wait_until_blocked(engine, "cityos-second-consumer")
            first.commit()
        worker.join(timeout=30)
        assert len(outcome) == 1
        assert isinstance(outcome[0], IntegrityError)

        with second_factory() as retry:
            result = apply_batch(retry, events=batch, now=NOW)
            retry.commit()
        assert (result.applied, result.duplicate) == (0, 20)
        with first_factory() as check:
            assert check.scalar(select(func.count()).select_from(ProcessedEvent)) == 20
            assert check.scalar(select(func.count()).select_from(Record)) == 20
    finally:
        second_engine.dispose()
