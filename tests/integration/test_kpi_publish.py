"""`cityos kpi publish` through the real broker: the demo's KPI series reach the open-data records API
of dx-kpi as the domain computes them from the catalog, and publishing again changes nothing."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import select

from cityos.cli.records import send_events
from cityos.department.outbox import upsert_events
from cityos.domain.kpi.definitions import load_kpis, today_in_japan
from cityos.domain.kpi.publication import DATASET_ID, kpi_records
from cityos.domain.kpi.reading import kpi_progress
from cityos.kernel.db.engine import make_engine, session_factory
from cityos.kernel.db.models import Record
from cityos.kernel.kafka import reader_config
from cityos.kernel.schemas import load_schema_dir
from tests.support.stack import Stack


def _eventually(check: Any, what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _catalog_caught_up(stack: Stack) -> bool:
    """The catalog has committed every message of the validated topic written so far."""
    topic = stack.settings.validated_topic
    consumer = Consumer(reader_config(stack.kafka, f"{stack.prefix}catalog"))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p) for p in metadata.partitions]
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    finally:
        consumer.close()
    return all(ends[p] == 0 or committed[p] >= ends[p] for p in ends)


def _published(stack: Stack) -> dict[str, dict[str, Any]]:
    response = httpx.get(
        stack.url("publish", f"/api/v1/datasets/{DATASET_ID}/records"), params={"limit": 10000}
    )
    assert response.status_code == 200, response.text
    return {record["ID"]: record for record in response.json()["records"]}


def _stored(stack: Stack) -> dict[str, tuple[str, str]]:
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(Record.record_key, Record.event_id, Record.updated_at).where(
                    Record.dataset_id == DATASET_ID
                )
            )
            return {row.record_key: (row.event_id, str(row.updated_at)) for row in rows}
    finally:
        engine.dispose()


def _expected(stack: Stack) -> dict[str, dict[str, Any]]:
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session:
            progress = kpi_progress(session, load_kpis(stack.settings.kpi_dir), today=today_in_japan())
    finally:
        engine.dispose()
    return {record["ID"]: record for row in progress for record in kpi_records(row)}


@pytest.mark.timeout(600)
def test_kpi_publish_reaches_the_records_api_once(stack: Stack) -> None:
    stack.start("catalog")
    stack.start("ingest", "publish")
    demo = stack.cli("demo", "--per-dataset", "1", "--wait", "180", timeout_s=300)
    assert demo.returncode == 0, demo.stderr.decode(errors="replace")

    first = stack.cli("kpi", "publish", "--settle", "120", "--wait", "120", timeout_s=300)
    assert first.returncode == 0, first.stderr.decode(errors="replace")
    expected = _expected(stack)
    today = today_in_japan()
    months = (today.year - 2021) * 12 + today.month - 4 + 1
    years = today.year - (today.month < 4) - 2021 + 1
    assert len(expected) == len(load_kpis(stack.settings.kpi_dir)) * (months + years)
    _eventually(lambda: len(_published(stack)) == len(expected), "the KPI series in the records API")
    assert _published(stack) == expected
    listing = httpx.get(stack.url("publish", "/api/v1/datasets")).json()
    assert DATASET_ID in {d["id"] for d in listing["datasets"]}

    # Publishing again: nothing differs, nothing is sent, no record written twice or anew.
    _eventually(lambda: _catalog_caught_up(stack), "the catalog to apply the first publication")
    before = _stored(stack)
    second = stack.cli("kpi", "publish", "--wait", "120", timeout_s=300)
    assert second.returncode == 0, second.stderr.decode(errors="replace")
    assert "sent 0 KPI events" in second.stderr.decode(errors="replace")
    _eventually(lambda: _catalog_caught_up(stack), "the catalog to read the second publication")
    assert _stored(stack) == before
    assert _published(stack) == expected

    # A record deleted by hand comes back with the next publication, as it was.
    key = sorted(expected)[0]
    deleted = stack.cli("records", "delete", DATASET_ID, key, "--wait", "60")
    assert deleted.returncode == 0, deleted.stderr.decode(errors="replace")
    _eventually(lambda: key not in _published(stack), "the record deleted")
    restored = stack.cli("kpi", "publish", "--wait", "120", timeout_s=300)
    assert restored.returncode == 0, restored.stderr.decode(errors="replace")
    assert "sent 1 KPI events" in restored.stderr.decode(errors="replace")
    _eventually(lambda: key in _published(stack), "the record published again")
    assert _published(stack) == expected

    # A record of a KPI that no longer exists is deleted by the next publication.
    stale_key = f"gone-{uuid.uuid4().hex[:6]}-fy2021-city"
    stale = {**next(iter(expected.values())), "ID": stale_key}
    schema_set = load_schema_dir(stack.settings.schemas_dir)
    events = upsert_events(schema_set, stack.settings, DATASET_ID, [stale], origin="test", id_prefix="stale")
    assert send_events(events, stack.settings, wait_s=60).accepted == 1
    _eventually(lambda: stale_key in _published(stack), "the stale record")
    third = stack.cli("kpi", "publish", "--wait", "120", timeout_s=300)
    assert third.returncode == 0, third.stderr.decode(errors="replace")
    _eventually(lambda: stale_key not in _published(stack), "the stale record deleted")
    assert _published(stack) == expected
