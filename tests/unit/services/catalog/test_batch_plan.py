"""The catalog's decisions for a batch of record events, planned against a snapshot: no database."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cityos.kernel.events import TYPE_DELETED, TYPE_UPSERTED, ValidatedEvent
from services.catalog.batch_plan import (
    BatchPlan,
    BatchSnapshot,
    DatasetChange,
    Outcome,
    StoredRecord,
    plan_batch,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SOURCE = "/departments/health"
AED_META: dict[str, Any] = {"id": "aed", "location": {"latitude": "緯度", "longitude": "経度"}}
PLAIN_META: dict[str, Any] = {"id": "notes"}


def upsert(
    key: str,
    event_id: str,
    *,
    at: datetime = T0,
    partition: int = 0,
    offset: int = 0,
    data: dict[str, Any] | None = None,
    dataset: str = "aed",
    source: str = SOURCE,
) -> ValidatedEvent:
    document = data if data is not None else {"NO": key, "緯度": 33.88, "経度": 130.87}
    return ValidatedEvent(
        dataset_id=dataset,
        record_key=key,
        schema_version=1,
        source=source,
        id=event_id,
        type=TYPE_UPSERTED,
        time=at,
        data=document,
        partition=partition,
        offset=offset,
    )


def deletion(
    key: str,
    event_id: str,
    *,
    at: datetime = T0,
    partition: int = 0,
    offset: int = 0,
    dataset: str = "aed",
) -> ValidatedEvent:
    return ValidatedEvent(
        dataset_id=dataset,
        record_key=key,
        schema_version=1,
        source=SOURCE,
        id=event_id,
        type=TYPE_DELETED,
        time=at,
        data=None,
        partition=partition,
        offset=offset,
    )


def stored(
    *,
    at: datetime = T0,
    partition: int = 0,
    offset: int = 0,
    event_id: str = "e-stored",
    present: bool = True,
) -> StoredRecord:
    return StoredRecord(version=(at, partition, offset), source=SOURCE, event_id=event_id, present=present)


def snapshot(
    *,
    processed: frozenset[tuple[str, str]] = frozenset(),
    records: Mapping[tuple[str, str], StoredRecord] | None = None,
    datasets: Mapping[str, Mapping[str, Any]] | None = None,
) -> BatchSnapshot:
    return BatchSnapshot(
        processed=processed,
        records=records or {},
        datasets=datasets if datasets is not None else {"aed": AED_META, "notes": PLAIN_META},
    )


def record_row(event: ValidatedEvent, *, latitude: float | None, longitude: float | None) -> dict[str, Any]:
    return {
        "dataset_id": event.dataset_id,
        "record_key": event.record_key,
        "data": event.data,
        "schema_version": 1,
        "event_source": event.source,
        "event_id": event.id,
        "event_time": event.time.astimezone(UTC),
        "kafka_partition": event.partition,
        "kafka_offset": event.offset,
        "latitude": latitude,
        "longitude": longitude,
        "updated_at": NOW,
        "deleted_at": None,
    }


def tombstone_row(event: ValidatedEvent) -> dict[str, Any]:
    row = record_row(event, latitude=None, longitude=None)
    row.update(data={}, deleted_at=NOW)
    return row


def ledger_row(event: ValidatedEvent, outcome: str, note: str | None = None) -> dict[str, Any]:
    return {
        "source": event.source,
        "event_id": event.id,
        "dataset_id": event.dataset_id,
        "outcome": outcome,
        "processed_at": NOW,
        "note": note,
    }


def outcomes(plan: BatchPlan) -> list[tuple[str, Outcome, str | None]]:
    return [(d.event.id, d.outcome, d.note) for d in plan.decisions]


def nothing_written(plan: BatchPlan) -> bool:
    return not (plan.inserts or plan.updates or plan.datasets)


# --- new records and updates ------------------------------------------------------------------


def test_a_new_record_is_inserted_with_its_coordinates() -> None:
    event = upsert("A1", "e1", offset=7)
    plan = plan_batch([event], snapshot(), now=NOW)

    assert plan.inserts == [record_row(event, latitude=33.88, longitude=130.87)]
    assert plan.updates == []
    assert plan.ledger_rows == [ledger_row(event, "applied")]
    assert plan.datasets == [DatasetChange("aed", record_delta=1, last_change=T0)]
    assert outcomes(plan) == [("e1", Outcome.APPLIED, None)]
    assert (plan.result.applied, plan.result.total) == (1, 1)
    assert plan.result.applied_by_dataset == {"aed": 1}
    assert plan.rejected == [] and plan.unknown_datasets == []


def test_a_newer_event_updates_the_stored_record_without_changing_the_count() -> None:
    later = T0 + timedelta(minutes=5)
    event = upsert("A1", "e2", at=later, data={"NO": "A1", "緯度": 34.0, "経度": 131.0})
    plan = plan_batch([event], snapshot(records={("aed", "A1"): stored()}), now=NOW)

    assert plan.inserts == []
    assert plan.updates == [record_row(event, latitude=34.0, longitude=131.0)]
    assert plan.datasets == [DatasetChange("aed", record_delta=0, last_change=later)]
    assert outcomes(plan) == [("e2", Outcome.APPLIED, None)]


@pytest.mark.parametrize(
    ("data", "meta"),
    [
        ({"NO": "A1", "緯度": 33.88}, AED_META),  # half a pair
        ({"NO": "A1", "緯度": True, "経度": 130.87}, AED_META),  # a flag is no coordinate
        ({"NO": "A1", "緯度": 91.0, "経度": 130.87}, AED_META),  # out of range
        ({"NO": "A1", "緯度": float("nan"), "経度": 130.87}, AED_META),
        ({"NO": "A1", "緯度": "33.88", "経度": "130.87"}, AED_META),  # text is not a number
        ({"NO": "A1", "緯度": 33.88, "経度": 130.87}, PLAIN_META),  # the dataset declares no location
    ],
)
def test_coordinates_are_planned_only_as_a_valid_pair(data: dict[str, Any], meta: dict[str, Any]) -> None:
    event = upsert("A1", "e1", data=data)
    plan = plan_batch([event], snapshot(datasets={"aed": meta}), now=NOW)
    assert plan.inserts == [record_row(event, latitude=None, longitude=None)]


def test_integer_coordinates_become_floats() -> None:
    event = upsert("A1", "e1", data={"NO": "A1", "緯度": 34, "経度": -180})
    plan = plan_batch([event], snapshot(), now=NOW)
    assert plan.inserts[0]["latitude"] == 34.0 and isinstance(plan.inserts[0]["latitude"], float)
    assert plan.inserts[0]["longitude"] == -180.0


# --- duplicates -------------------------------------------------------------------------------


def test_an_event_already_in_the_ledger_is_a_duplicate_and_changes_nothing() -> None:
    event = upsert("A1", "e1")
    plan = plan_batch([event], snapshot(processed=frozenset({(SOURCE, "e1")})), now=NOW)

    assert outcomes(plan) == [("e1", Outcome.DUPLICATE, None)]
    assert plan.ledger_rows == []
    assert nothing_written(plan)
    assert (plan.result.duplicate, plan.result.total) == (1, 1)


def test_the_same_source_and_id_twice_in_a_batch_counts_once() -> None:
    first = upsert("A1", "e1")
    again = upsert("A2", "e1", at=T0 + timedelta(hours=1), offset=1)  # other content, same identity
    other_source = upsert("A3", "e1", source="/departments/parks", offset=2)
    plan = plan_batch([first, again, other_source], snapshot(), now=NOW)

    assert [d.outcome for d in plan.decisions] == [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.APPLIED]
    assert [row["record_key"] for row in plan.inserts] == ["A1", "A3"]
    assert plan.ledger_rows == [ledger_row(first, "applied"), ledger_row(other_source, "applied")]
    assert (plan.result.applied, plan.result.duplicate) == (2, 1)


# --- stale events: (time, partition, offset) ordering -------------------------------------------


@pytest.mark.parametrize(
    ("at", "partition", "offset"),
    [
        (T0 - timedelta(seconds=1), 5, 999),  # older time wins over any position
        (T0, 0, 9),  # same time, lower partition
        (T0, 1, 4),  # same time and partition, lower offset
        (T0, 1, 5),  # the very version stored: a replay
    ],
)
def test_an_event_not_newer_than_the_stored_state_is_stale(at: datetime, partition: int, offset: int) -> None:
    stale = upsert("A1", "e-old", at=at, partition=partition, offset=offset)
    records = {("aed", "A1"): stored(at=T0, partition=1, offset=5)}
    plan = plan_batch([stale], snapshot(records=records), now=NOW)

    assert outcomes(plan) == [("e-old", Outcome.STALE, f"superseded by {SOURCE} e-stored")]
    assert plan.ledger_rows == [ledger_row(stale, "stale", f"superseded by {SOURCE} e-stored")]
    assert nothing_written(plan)
    assert (plan.result.stale, plan.result.total) == (1, 1)


@pytest.mark.parametrize(
    ("at", "partition", "offset"),
    [(T0 + timedelta(microseconds=1), 0, 0), (T0, 2, 0), (T0, 1, 6)],
)
def test_time_then_partition_then_offset_decide_newer(at: datetime, partition: int, offset: int) -> None:
    event = upsert("A1", "e-new", at=at, partition=partition, offset=offset)
    records = {("aed", "A1"): stored(at=T0, partition=1, offset=5)}
    plan = plan_batch([event], snapshot(records=records), now=NOW)
    assert outcomes(plan) == [("e-new", Outcome.APPLIED, None)]
    assert plan.updates == [record_row(event, latitude=33.88, longitude=130.87)]


def test_times_in_other_offsets_compare_as_instants() -> None:
    jst = timezone(timedelta(hours=9))
    earlier_in_jst = upsert("A1", "e-jst", at=datetime(2026, 3, 1, 17, 59, tzinfo=jst))  # 08:59 UTC
    plan = plan_batch([earlier_in_jst], snapshot(records={("aed", "A1"): stored()}), now=NOW)
    assert [d.outcome for d in plan.decisions] == [Outcome.STALE]

    later_in_jst = upsert("A1", "e-jst2", at=datetime(2026, 3, 1, 18, 1, tzinfo=jst))
    plan = plan_batch([later_in_jst], snapshot(records={("aed", "A1"): stored()}), now=NOW)
    assert plan.updates[0]["event_time"] == datetime(2026, 3, 1, 9, 1, tzinfo=UTC)
    assert plan.updates[0]["event_time"].tzinfo is UTC


# --- deletions --------------------------------------------------------------------------------


def test_deleting_a_live_record_replaces_it_by_a_tombstone() -> None:
    at = T0 + timedelta(minutes=1)
    event = deletion("A1", "d1", at=at)
    plan = plan_batch([event], snapshot(records={("aed", "A1"): stored()}), now=NOW)

    assert plan.inserts == []
    assert plan.updates == [tombstone_row(event)]
    assert plan.ledger_rows == [ledger_row(event, "deleted")]
    assert plan.datasets == [DatasetChange("aed", record_delta=-1, last_change=at)]
    assert (plan.result.deleted, plan.result.deleted_by_dataset) == (1, {"aed": 1})


def test_deleting_an_unknown_record_leaves_a_tombstone_and_no_dataset_change() -> None:
    event = deletion("A9", "d1")
    plan = plan_batch([event], snapshot(), now=NOW)

    assert plan.inserts == [tombstone_row(event)]
    assert outcomes(plan) == [("d1", Outcome.DELETED, "record absent")]
    assert plan.ledger_rows == [ledger_row(event, "deleted", "record absent")]
    assert plan.datasets == []
    assert plan.result.deleted == 1


def test_deleting_a_tombstone_again_moves_its_version_only() -> None:
    at = T0 + timedelta(minutes=1)
    event = deletion("A1", "d2", at=at)
    plan = plan_batch([event], snapshot(records={("aed", "A1"): stored(present=False)}), now=NOW)

    assert plan.updates == [tombstone_row(event)]
    assert outcomes(plan) == [("d2", Outcome.DELETED, "record absent")]
    assert plan.datasets == []


def test_an_older_upsert_never_resurrects_a_tombstone() -> None:
    late = upsert("A1", "e-late", at=T0 - timedelta(minutes=1))
    records = {("aed", "A1"): stored(present=False, event_id="d-stored")}
    plan = plan_batch([late], snapshot(records=records), now=NOW)

    assert outcomes(plan) == [("e-late", Outcome.STALE, f"superseded by {SOURCE} d-stored")]
    assert nothing_written(plan)


def test_a_newer_upsert_recreates_a_deleted_record() -> None:
    at = T0 + timedelta(minutes=1)
    event = upsert("A1", "e-new", at=at)
    plan = plan_batch([event], snapshot(records={("aed", "A1"): stored(present=False)}), now=NOW)

    assert plan.updates == [record_row(event, latitude=33.88, longitude=130.87)]
    assert plan.datasets == [DatasetChange("aed", record_delta=1, last_change=at)]


def test_an_older_deletion_is_stale() -> None:
    event = deletion("A1", "d-old", at=T0 - timedelta(seconds=1))
    plan = plan_batch([event], snapshot(records={("aed", "A1"): stored()}), now=NOW)
    assert outcomes(plan) == [("d-old", Outcome.STALE, f"superseded by {SOURCE} e-stored")]
    assert nothing_written(plan)


# --- one record several times in a batch --------------------------------------------------------


def test_the_last_of_several_upserts_of_a_record_is_the_row_written() -> None:
    first = upsert("A1", "e1", offset=1)
    second = upsert("A1", "e2", at=T0 + timedelta(seconds=1), offset=2, data={"NO": "A1"})
    plan = plan_batch([first, second], snapshot(), now=NOW)

    assert plan.inserts == [record_row(second, latitude=None, longitude=None)]
    assert plan.ledger_rows == [ledger_row(first, "applied"), ledger_row(second, "applied")]
    assert plan.datasets == [DatasetChange("aed", record_delta=1, last_change=T0 + timedelta(seconds=1))]
    assert plan.result.applied == 2


def test_an_older_event_later_in_the_batch_is_stale_against_the_batch() -> None:
    newer = upsert("A1", "e-new", offset=9)
    older = upsert("A1", "e-old", offset=3)
    plan = plan_batch([newer, older], snapshot(), now=NOW)

    assert outcomes(plan) == [
        ("e-new", Outcome.APPLIED, None),
        ("e-old", Outcome.STALE, f"superseded by {SOURCE} e-new"),
    ]
    assert plan.inserts == [record_row(newer, latitude=33.88, longitude=130.87)]


def test_create_then_delete_in_one_batch_inserts_a_tombstone_and_keeps_the_count() -> None:
    created = upsert("A1", "e1", offset=1)
    deleted_at = T0 + timedelta(seconds=5)
    removed = deletion("A1", "d1", at=deleted_at, offset=2)
    plan = plan_batch([created, removed], snapshot(), now=NOW)

    assert outcomes(plan) == [("e1", Outcome.APPLIED, None), ("d1", Outcome.DELETED, None)]
    assert plan.inserts == [tombstone_row(removed)]
    assert plan.datasets == [DatasetChange("aed", record_delta=0, last_change=deleted_at)]


def test_delete_then_recreate_in_one_batch_updates_the_live_record() -> None:
    removed = deletion("A1", "d1", at=T0 + timedelta(seconds=1))
    recreated_at = T0 + timedelta(seconds=2)
    recreated = upsert("A1", "e2", at=recreated_at)
    plan = plan_batch([removed, recreated], snapshot(records={("aed", "A1"): stored()}), now=NOW)

    assert plan.updates == [record_row(recreated, latitude=33.88, longitude=130.87)]
    assert plan.datasets == [DatasetChange("aed", record_delta=0, last_change=recreated_at)]
    assert (plan.result.applied, plan.result.deleted) == (1, 1)


# --- ordering of the writes ---------------------------------------------------------------------


def test_rows_are_ordered_by_key_and_datasets_by_id_whatever_the_batch_order() -> None:
    events = [
        upsert("B", "e1", dataset="notes", data={"x": 1}),
        upsert("C", "e2"),
        upsert("A", "e3"),
        upsert("A", "e4", dataset="notes", data={"x": 2}),
    ]
    plan = plan_batch(events, snapshot(records={("aed", "C"): stored(at=T0 - timedelta(days=1))}), now=NOW)

    assert [(r["dataset_id"], r["record_key"]) for r in plan.inserts] == [
        ("aed", "A"),
        ("notes", "A"),
        ("notes", "B"),
    ]
    assert [(r["dataset_id"], r["record_key"]) for r in plan.updates] == [("aed", "C")]
    # One upsert writes both, in key order: new and replaced rows interleaved.
    assert [(r["dataset_id"], r["record_key"]) for r in plan.rows] == [
        ("aed", "A"),
        ("aed", "C"),
        ("notes", "A"),
        ("notes", "B"),
    ]
    assert [row["event_id"] for row in plan.ledger_rows] == ["e1", "e2", "e3", "e4"]
    assert plan.datasets == [
        DatasetChange("aed", record_delta=1, last_change=T0),
        DatasetChange("notes", record_delta=2, last_change=T0),
    ]
    assert plan.result.applied_by_dataset == {"notes": 2, "aed": 2}


def test_the_newest_change_of_a_dataset_is_its_last_change() -> None:
    events = [upsert("A", "e1", at=T0 + timedelta(hours=2)), upsert("B", "e2", at=T0 + timedelta(hours=1))]
    plan = plan_batch(events, snapshot(), now=NOW)
    assert plan.datasets == [DatasetChange("aed", record_delta=2, last_change=T0 + timedelta(hours=2))]


# --- rejections and guards ------------------------------------------------------------------------


def test_events_of_datasets_unknown_to_the_catalog_are_rejected() -> None:
    known = upsert("A1", "e1")
    unknown = upsert("X1", "e2", dataset="zoo")
    also_unknown = deletion("X2", "e3", dataset="bus")
    already_seen = upsert("X3", "e4", dataset="zoo")  # rejected even though it is a duplicate
    plan = plan_batch(
        [known, unknown, also_unknown, already_seen],
        snapshot(processed=frozenset({(SOURCE, "e4")})),
        now=NOW,
    )

    assert outcomes(plan) == [
        ("e1", Outcome.APPLIED, None),
        ("e2", Outcome.UNKNOWN_DATASET, None),
        ("e3", Outcome.UNKNOWN_DATASET, None),
        ("e4", Outcome.UNKNOWN_DATASET, None),
    ]
    assert [d.event.id for d in plan.rejected] == ["e2", "e3", "e4"]
    assert plan.unknown_datasets == ["bus", "zoo"]
    assert plan.ledger_rows == [ledger_row(known, "applied")]
    assert [row["record_key"] for row in plan.inserts] == ["A1"]
    assert plan.result.total == 1


def test_an_empty_batch_plans_nothing() -> None:
    plan = plan_batch([], snapshot(), now=NOW)
    assert plan.decisions == [] and plan.ledger_rows == [] and nothing_written(plan)
    assert plan.result.total == 0


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        plan_batch([upsert("A1", "e1")], snapshot(), now=datetime(2026, 3, 2, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        plan_batch([upsert("A1", "e1", at=datetime(2026, 3, 1, 9, 0))], snapshot(), now=NOW)


def test_planning_leaves_the_snapshot_untouched() -> None:
    records = {("aed", "A1"): stored()}
    before = snapshot(records=dict(records), processed=frozenset({(SOURCE, "old")}))
    plan_batch([deletion("A1", "d1", at=T0 + timedelta(seconds=1)), upsert("A2", "e2")], before, now=NOW)
    assert before.records == records
    assert before.processed == frozenset({(SOURCE, "old")})
