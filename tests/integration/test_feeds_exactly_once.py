"""Exactly once under kill -9: 100,000 validated events flow to 3 subscriptions while the
republisher is killed at 20 %, 50 % and 80 % of the run; a read_committed consumer of each feed
sees every matching event exactly once, in per-record order, and never an ungranted field."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.feeds_helpers import (
    aed,
    bodies,
    copier,
    grant,
    produce,
    read_settled,
    subscribe,
    validated_event,
)
from tests.integration.stack import Stack

TOTAL = 100_000
RECORDS = 1_500  # per dataset: every record changes many times, so per-record order is tested
COPIER_FIELDS = ["ID", "部局コード", "枚数_モノクロ"]
AED_FIELDS = ["名称"]


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    # The transport is under test here, not the database: one backend keeps the run short.
    yield f"sqlite:///{tmp_path / 'catalog.db'}"


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


def produce_paced(
    stack: Stack, events: list[tuple[str, bytes, bytes, dict[str, Any]]], progress: list[int]
) -> None:
    producer = stack.producer()
    topic = stack.settings.validated_topic
    for index, (_dataset, key, value, _data) in enumerate(events):
        produce(producer, topic, key, value)
        if index % 2000 == 1999:
            producer.flush(30)
            progress[0] = index + 1
            time.sleep(0.2)  # ~10k events/s: the run lasts long enough for three kills
    assert producer.flush(30) == 0
    progress[0] = TOTAL


def wait_for(progress: list[int], fraction: float) -> None:
    while progress[0] < TOTAL * fraction:
        time.sleep(0.01)


@pytest.mark.timeout(420)
def test_kill_9_three_times_loses_and_doubles_no_feed_event(stack: Stack) -> None:
    stack.start("catalog")
    grant(stack, "copier-usage", "fire", COPIER_FIELDS)
    full = subscribe(stack, "health-welfare", "aed")
    partial = subscribe(stack, "fire", "copier-usage")
    filtered = subscribe(stack, "planning", "aed", filter={"設置位置": "1階"}, fields=AED_FIELDS)
    stack.start("feeds")

    events = planned_events()
    expected: dict[str, list[str]] = {full["topic"]: [], partial["topic"]: [], filtered["topic"]: []}
    for index, (dataset, _key, _value, data) in enumerate(events):
        if dataset == "aed":
            expected[full["topic"]].append(f"eo-{index}")
            if data["設置位置"] == "1階":
                expected[filtered["topic"]].append(f"eo-{index}")
        else:
            expected[partial["topic"]].append(f"eo-{index}")

    progress = [0]
    producer = threading.Thread(target=produce_paced, args=(stack, events, progress))
    producer.start()
    for fraction in (0.2, 0.5, 0.8):
        wait_for(progress, fraction)
        stack.kill("feeds")
        stack.start("feeds")
    producer.join()

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
        print(f"{topic}: {len(got)} events exactly once")
