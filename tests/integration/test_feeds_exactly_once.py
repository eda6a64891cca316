"""Exactly once under kill -9: 100,000 validated events flow to 3 subscriptions while the
republisher is killed at 20 %, 50 % and 80 % of the run; a read_committed consumer of each feed
sees every matching event exactly once, in per-record order, and never an ungranted field."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from cityos.kernel.kafka import VALIDATED_PARTITIONS
from tests.support.feeds import (
    aed,
    bodies,
    copier,
    grant,
    produce,
    read_settled,
    subscribe,
    validated_event,
)
from tests.support.stack import Stack

TOTAL = 100_000
RECORDS = 1_500  # per dataset: every record changes many times, so per-record order is tested
COPIER_FIELDS = ["ID", "部局コード", "枚数_モノクロ"]
AED_FIELDS = ["名称"]


# The transport is under test here, not the database: one backend keeps the run short.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def planned_events() -> list[tuple[str, bytes, bytes, dict[str, Any]]]:
    """(dataset, key, value, data) in production order: 3 of 5 events AED, 2 of 5 copier usage."""
    events = []
    for index in range(TOTAL):
        number = (index // 5) % RECORDS
        version = index // (5 * RECORDS)
        if index % 5 < 3:
            data = aed(number * 3 + index % 5, version)
            key, value = validated_event("aed", data, "NO", f"eo-{index}")
            events.append(("aed", key, value, data))
        else:
            data = copier(number * 2 + index % 5 - 3, version)
            key, value = validated_event("copier-usage", data, "ID", f"eo-{index}")
            events.append(("copier-usage", key, value, data))
    return events


def produce_all(stack: Stack, events: list[tuple[str, bytes, bytes, dict[str, Any]]]) -> None:
    """Every event onto the validated topic, as ingest would have written it."""
    producer = stack.producer()
    topic = stack.settings.validated_topic
    for index, (_dataset, key, value, _data) in enumerate(events):
        produce(producer, topic, key, value)
        if index % 5000 == 4999:
            producer.poll(0)
    assert producer.flush(60) == 0


def republished(progress: Consumer, stack: Stack) -> int:
    """Validated events the republisher has committed (its group's transactional offsets)."""
    partitions = [TopicPartition(stack.settings.validated_topic, p) for p in range(VALIDATED_PARTITIONS)]
    return sum(max(tp.offset, 0) for tp in progress.committed(partitions, timeout=10))


def wait_for(progress: Consumer, stack: Stack, fraction: float) -> None:
    deadline = time.monotonic() + 120
    while republished(progress, stack) < TOTAL * fraction:
        assert time.monotonic() < deadline, "the republisher made no progress"
        time.sleep(0.02)


@pytest.mark.timeout(420)
def test_kill_9_three_times_loses_and_doubles_no_feed_event(stack: Stack) -> None:
    stack.start("catalog")
    grant(stack, "copier-usage", "fire", COPIER_FIELDS)
    full = subscribe(stack, "health-welfare", "aed")
    partial = subscribe(stack, "fire", "copier-usage")
    filtered = subscribe(stack, "planning", "aed", filter={"設置位置": "1階"}, fields=AED_FIELDS)

    events = planned_events()
    expected: dict[str, list[str]] = {full["topic"]: [], partial["topic"]: [], filtered["topic"]: []}
    for index, (dataset, _key, _value, data) in enumerate(events):
        if dataset == "aed":
            expected[full["topic"]].append(f"eo-{index}")
            if data["設置位置"] == "1階":
                expected[filtered["topic"]].append(f"eo-{index}")
        else:
            expected[partial["topic"]].append(f"eo-{index}")

    # The input is on the validated topic before the republisher starts, so it works through a
    # backlog at full speed and every kill lands in the middle of its transactions; a producer
    # running alongside could not keep it busy on this machine, and kills would land while idle.
    produce_all(stack, events)
    stack.start("feeds")
    # Progress is the republisher's own: its committed offsets, read as its group (never joining it).
    progress = Consumer({**stack.kafka.client_config(), "group.id": f"{stack.prefix}feeds"})
    try:
        for fraction in (0.2, 0.5, 0.8):
            wait_for(progress, stack, fraction)
            # The threshold is crossed right at a commit; land somewhere inside a later transaction.
            time.sleep(random.uniform(0.05, 0.25))
            stack.kill("feeds")
            stack.start("feeds")
    finally:
        progress.close()

    aborted = 0
    for topic, ids in expected.items():
        messages = read_settled(stack, topic, len(ids))
        seen = bodies(messages)
        got = [body["id"] for body in seen]
        assert len(got) == len(ids), f"{topic}: {len(got)} feed events for {len(ids)} matching events"
        assert len(set(got)) == len(got), f"{topic}: duplicates"
        assert set(got) == set(ids), f"{topic}: lost {len(set(ids) - set(got))}"
        # Per-record order: each record's events arrive in the order they were produced.
        position = {event_id: i for i, event_id in enumerate(ids)}
        per_record: dict[bytes, list[int]] = defaultdict(list)
        for message, body in zip(messages, seen, strict=True):
            per_record[message.key() or b""].append(position[body["id"]])
        assert all(order == sorted(order) for order in per_record.values()), f"{topic}: out of order"
        if topic == partial["topic"]:
            assert all(set(body["data"]) <= set(COPIER_FIELDS) for body in seen)
            assert all(set(body["data"]) == set(COPIER_FIELDS) for body in seen)
        if topic == filtered["topic"]:
            assert all(set(body["data"]) == {"NO", "名称"} for body in seen)
        everything = uncommitted(stack, topic)
        aborted += everything - len(got)
        print(f"{topic}: {len(got)} events exactly once; read_uncommitted sees {everything}")
    # For the record: what the killed instances had written in transactions they never committed
    # (in the log, aborted, hidden from read_committed). Not asserted: whether a kill lands after
    # a transaction's first events reached the broker is a matter of timing (about two runs in three).
    print(f"aborted feed events left in the log by the kills: {aborted}")


def uncommitted(stack: Stack, topic: str) -> int:
    """Messages a read_uncommitted reader sees: the feed plus what the killed instances wrote in
    transactions that were then aborted -- what read_committed consumers are spared."""
    consumer = Consumer(
        {
            **stack.kafka.client_config(),
            "group.id": f"{stack.prefix}uncommitted",
            "isolation.level": "read_uncommitted",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        seen, finished = 0, set[int]()
        deadline = time.monotonic() + 60
        while len(finished) < len(partitions) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                error = message.error()
                if error is None:
                    seen += 1
                elif error.code() == KafkaError._PARTITION_EOF:
                    finished.add(message.partition() or 0)
        return seen
    finally:
        consumer.close()
