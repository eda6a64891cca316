"""The change-log rows a batch plans: one per event entering the ledger, applied and stale alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from services.catalog.batch_plan import BatchSnapshot, Outcome, StoredRecord, plan_batch

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SOURCE = "/departments/health"
META: dict[str, Any] = {"id": "aed", "location": {"latitude": "緯度", "longitude": "経度"}}


def event(key: str, event_id: str, *, at: datetime, offset: int, deleted: bool = False) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id="aed",
        record_key=key,
        schema_version=2,
        source=SOURCE,
        id=event_id,
        type=TYPE_DELETED if deleted else TYPE_UPSERTED,
        time=at,
        data=None if deleted else {"NO": key, "名称": f"施設{event_id}", "緯度": 33.9, "経度": 130.9},
        partition=1,
        offset=offset,
    )


def snapshot(processed: frozenset[tuple[str, str]] = frozenset(), **records: StoredRecord) -> BatchSnapshot:
    return BatchSnapshot(
        processed=processed,
        records={("aed", key): row for key, row in records.items()},
        datasets={"aed": META},
    )


def test_every_ledgered_event_has_its_change_and_duplicates_have_none() -> None:
    stored = StoredRecord((T0 + timedelta(hours=5), 1, 50), SOURCE, "e-stored", present=True)
    events = [
        event("A", "e1", at=T0, offset=1),  # older than the stored state: stale
        event("B", "e2", at=T0 + timedelta(hours=1), offset=2),  # new record
        event("B", "e2", at=T0 + timedelta(hours=1), offset=2),  # repeated in the batch: duplicate
        event("C", "e-old", at=T0, offset=3),  # already in the ledger: redelivery
        event("B", "e3", at=T0 + timedelta(hours=2), offset=4, deleted=True),
        event("A", "e4", at=T0 + timedelta(hours=6), offset=5),
    ]
    plan = plan_batch(events, snapshot(frozenset({(SOURCE, "e-old")}), A=stored), now=NOW)

    outcomes = [d.outcome for d in plan.decisions]
    assert outcomes == [
        Outcome.STALE,
        Outcome.APPLIED,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
        Outcome.DELETED,
        Outcome.APPLIED,
    ]
    ledgered = [(row["source"], row["event_id"]) for row in plan.ledger_rows]
    logged = [(row["event_source"], row["event_id"]) for row in plan.change_rows]
    assert logged == ledgered == [(SOURCE, "e1"), (SOURCE, "e2"), (SOURCE, "e3"), (SOURCE, "e4")]
    sent = {e.id: e for e in events}
    for row in plan.change_rows:
        source = sent[row["event_id"]]
        assert row["dataset_id"] == "aed"
        assert row["record_key"] == source.record_key
        assert row["event_time"] == source.time
        assert (row["kafka_partition"], row["kafka_offset"]) == (source.partition, source.offset)
        assert row["schema_version"] == 2
        assert row["applied_at"] == NOW
        assert row["deleted"] is source.is_deletion
        # The document as sent (coordinates not split off); a deletion keeps none.
        assert row["data"] == (None if source.is_deletion else source.data)


def test_a_stale_deletion_is_logged_as_a_deletion() -> None:
    stored = StoredRecord((T0 + timedelta(days=1), 0, 9), SOURCE, "e-new", present=True)
    plan = plan_batch([event("A", "late", at=T0, offset=1, deleted=True)], snapshot(A=stored), now=NOW)
    assert [d.outcome for d in plan.decisions] == [Outcome.STALE]
    assert plan.rows == []
    assert [(row["event_id"], row["deleted"], row["data"]) for row in plan.change_rows] == [
        ("late", True, None)
    ]
