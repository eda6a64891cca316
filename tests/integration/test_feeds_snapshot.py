"""Snapshot-then-live: a subscription created mid-stream receives every record's latest state once,
then every later change, with no gap and no duplicate at the seam (checked partition by partition
against the validated topic itself and the start offsets the republisher committed)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import orjson
import pytest
from confluent_kafka import Message

from cityos.department.outbox import record_event
from cityos.kernel.events import TYPE_DELETED
from cityos.kernel.schemas import schema_uri
from services.feeds.state import parse_state
from tests.support.feeds import (
    admin,
    aed,
    catalog,
    phase,
    produce,
    read_settled,
    subscribe,
    validated_event,
)
from tests.support.stack import Stack, header

RECORDS = 400
ROUNDS = 30  # every record changes ROUNDS times (every 7th change of a record is a deletion)


# The hand-over between snapshot and stream is under test, not the database: one backend is enough.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def produce_stream(stack: Stack, progress: list[int]) -> None:
    producer = stack.producer()
    topic = stack.settings.validated_topic
    sent = 0
    for round_ in range(ROUNDS):
        for number in range(RECORDS):
            event_id = f"seam-{round_}-{number}"
            if (round_ + number) % 7 == 6:
                value = record_event(
                    record={"NO": f"F{number:05d}"},
                    dataschema=schema_uri("aed", 1),
                    source="/tests/feeds/seam",
                    event_id=event_id,
                    event_type=TYPE_DELETED,
                )
                produce(producer, topic, f"aed/F{number:05d}".encode(), value)
            else:
                key, value = validated_event("aed", aed(number, round_), "NO", event_id)
                produce(producer, topic, key, value)
            sent += 1
        producer.flush(30)
        progress[0] = sent
        time.sleep(0.15)
    producer.flush(30)


def source(message: Message) -> tuple[int, int]:
    return int(header(message, "cityos_source_partition") or -1), int(
        header(message, "cityos_source_offset") or -1
    )


@pytest.mark.timeout(300)
def test_subscription_created_mid_stream_gets_snapshot_then_every_change(stack: Stack) -> None:
    stack.start("catalog", "feeds")
    total = RECORDS * ROUNDS
    progress = [0]
    producer = threading.Thread(target=produce_stream, args=(stack, progress))
    producer.start()
    while progress[0] < total * 0.4:
        time.sleep(0.01)
    sub = subscribe(stack, "health-welfare", "aed", start="snapshot")
    producer.join()
    assert progress[0] == total

    validated = stack.read(stack.settings.validated_topic, until=lambda m: len(m) >= total, timeout_s=60)
    by_partition: dict[int, list[Message]] = defaultdict(list)
    for message in validated:
        by_partition[message.partition() or 0].append(message)

    states = stack.read(
        stack.settings.feeds_state_topic, until=lambda m: len(m) >= len(by_partition), timeout_s=60
    )
    starts: dict[int, int] = {}
    for message in states:
        parsed = parse_state(message.value())
        assert parsed is not None
        (subscription_id, partition), start = parsed
        if subscription_id == sub["id"]:
            starts[partition] = start
    assert set(starts) == set(by_partition), "the feed started on every partition"
    assert 0 < sum(starts.values()) < total, "the subscription really started mid-stream"

    def expected_count() -> int:
        count = 0
        for partition, messages in by_partition.items():
            latest: dict[bytes, Message] = {}
            for m in messages:
                if (m.offset() or 0) < starts[partition]:
                    latest[m.key() or b""] = m
                else:
                    count += 1
            count += sum(1 for m in latest.values() if orjson.loads(m.value() or b"")["type"] != TYPE_DELETED)
        return count

    wanted = expected_count()
    feed = read_settled(stack, sub["topic"], wanted, timeout_s=120)
    assert len(feed) == wanted, f"{len(feed)} feed events, expected {wanted}"

    for partition, messages in by_partition.items():
        start = starts[partition]
        latest: dict[bytes, Message] = {}
        for m in messages:
            if (m.offset() or 0) < start:
                latest[m.key() or b""] = m
        snapshot_expected = sorted(
            (m.offset() or 0)
            for m in latest.values()
            if orjson.loads(m.value() or b"")["type"] != TYPE_DELETED
        )
        live_expected = [m.offset() or 0 for m in messages if (m.offset() or 0) >= start]
        got = [m for m in feed if source(m)[0] == partition]
        snapshot_got = sorted(source(m)[1] for m in got if phase(m) == "snapshot")
        live_got = [source(m)[1] for m in got if phase(m) == "live"]
        assert snapshot_got == snapshot_expected, f"partition {partition}: snapshot differs"
        assert sorted(live_got) == live_expected, f"partition {partition}: live changes differ"
    snapshot_total = sum(1 for m in feed if phase(m) == "snapshot")
    assert 0 < snapshot_total < len(feed), "both a snapshot and live changes were delivered"
    print(f"feed: {snapshot_total} snapshot states, then {len(feed) - snapshot_total} live changes")
    # Per record, the snapshot state comes before that record's live changes.
    seen_live: set[bytes] = set()
    for message in feed:
        key = message.key() or b""
        if phase(message) == "live":
            seen_live.add(key)
        else:
            assert key not in seen_live, "a snapshot state arrived after a live change of its record"

    # Cancelling stops the feed: later changes are not delivered.
    cancelled = catalog(stack, "DELETE", f"/api/v1/subscriptions/{sub['id']}", auth=admin(stack))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    late = stack.producer()
    for number in range(50):
        key, value = validated_event("aed", aed(number, ROUNDS), "NO", f"after-cancel-{number}")
        produce(late, stack.settings.validated_topic, key, value)
    assert late.flush(30) == 0
    time.sleep(1.5)
    assert len(stack.read(sub["topic"], until=lambda m: len(m) > wanted, timeout_s=3)) == wanted
