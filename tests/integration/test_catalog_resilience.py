"""The catalog never stalls a partition and never loses a batch: an event the database refuses is
dead-lettered while the events behind it are stored; a database outage is waited out."""

from __future__ import annotations

import re
import time

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, func, select

from cityos.department.outbox import record_event
from cityos.kernel.db.engine import normalize_url
from cityos.kernel.db.models import Record
from cityos.kernel.schemas import schema_uri
from tests.support.feeds import as_ingest
from tests.support.stack import Stack, header


def aed_event(key: str, event_id: str, *, location: str = "1階") -> bytes:
    record = {
        "NO": key,
        "名称": "耐障害試験",
        "名称_カナ": "タイショウガイ",
        "住所": "北九州市",
        "設置位置": location,
    }
    return record_event(
        record=record, dataschema=schema_uri("aed", 1), source="/departments/fire/r", event_id=event_id
    )


def live_records(url: str) -> int:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(Record).where(Record.deleted_at.is_(None))
            return int(conn.scalar(query) or 0)
    finally:
        engine.dispose()


def wait_records(url: str, expected: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        count = live_records(url)
        if count >= expected:
            return count
        time.sleep(0.3)
    return count


def metric(stack: Stack, name: str) -> float:
    text = httpx.get(stack.url("catalog", "/metrics"), timeout=5).text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_refused_event_is_dead_lettered_and_an_outage_is_waited_out(stack: Stack, pg_url: str) -> None:
    stack.start("catalog")
    producer = stack.producer()
    topic = stack.settings.validated_topic
    # PostgreSQL refuses a NUL character inside a JSON document, which the AED schema allows (ingest's
    # strict decoding refuses it first): the catalog must survive the database's refusal anyway.
    poison = "poison"
    producer.produce(
        topic,
        key=f"aed/{poison}".encode(),
        value=aed_event(poison, "poison", location="1\u0000階"),
        partition=0,
        headers=as_ingest(b"aed/"),
    )
    producer.produce(
        topic, key=b"aed/after", value=aed_event("after", "after"), partition=0, headers=as_ingest(b"aed/")
    )
    assert producer.flush(30) == 0
    assert wait_records(stack.database_url, 1) == 1, stack.log_tail("catalog")
    letters = stack.read(stack.settings.deadletter_topic, until=lambda m: len(m) >= 1)
    assert [header(m, "cityos_reason") for m in letters] == ["catalog_rejected"]
    assert header(letters[0], "cityos_source_offset") is not None

    # Outage: the catalog's database stops accepting connections for a few seconds.
    database = stack.database_url.rsplit("/", 1)[1]
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
    producer.produce(
        topic, key=b"aed/during", value=aed_event("during", "during"), partition=0, headers=as_ingest(b"aed/")
    )
    assert producer.flush(30) == 0
    deadline = time.monotonic() + 30
    while metric(stack, "cityos_catalog_db_retries_total") == 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert metric(stack, "cityos_catalog_db_retries_total") > 0, stack.log_tail("catalog")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert wait_records(stack.database_url, 2) == 2, stack.log_tail("catalog")
    assert stack.processes["catalog"].poll() is None, "the catalog kept running through the outage"
