"""The same refused event is dead-lettered once, through the real ingest process: sent three times,
and again after ingest restarts, it leaves one dead letter; changed bytes are a new dead letter; an
operator's replay is re-produced and dead-lettered again while still wrong; every input offset,
duplicates included, is committed."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from cityos.kernel.deadletter import FINGERPRINT, REPLAY_OF
from cityos.kernel.schemas import schema_uri
from tests.support.stack import Stack, header

AED = {
    "NO": "1",
    "名称": "焼津市役所",
    "名称_カナ": "ヤイヅシヤクショ",
    "住所": "静岡県焼津市本町2-16-32",
    "設置位置": "1階",
}
WHEN = datetime(2026, 11, 1, 9, 0, tzinfo=UTC).isoformat()  # fixed: a re-sent row has equal bytes


def event(event_id: str, **data: object) -> bytes:
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/departments/fire/import",
        "type": "jp.cityos.record.upserted",
        "time": WHEN,
        "dataschema": schema_uri("aed", 1),
        "data": {**AED, **data},
    }
    return json.dumps(body, ensure_ascii=False).encode()


def bad_events(run: str) -> dict[str, bytes]:
    """Rows of a file that ingest refuses, each for another reason (event id -> bytes)."""
    return {
        f"{run}-2": event(f"{run}-2", 緯度="北緯34度"),  # schema_violation
        f"{run}-3": event(f"{run}-3", NO=None),  # schema_violation: no key
        f"{run}-4": b'{"specversion": "1.0", "id": "' + f"{run}-4".encode() + b'",',  # malformed_json
    }


def metric(stack: Stack, name: str, labels: str = "") -> float:
    text = httpx.get(stack.url("ingest", "/metrics")).text
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for found, value in pattern.findall(text) if labels in found)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def send(stack: Stack, events: dict[str, bytes]) -> None:
    producer = stack.producer()
    topic = stack.settings.department_topic("fire")
    for event_id, value in events.items():
        producer.produce(topic, key=f"aed/{event_id}".encode(), value=value, headers=[("x-row", b"1")])
    assert producer.flush(30) == 0


def consumed(stack: Stack) -> float:
    return metric(stack, "cityos_ingest_events_consumed_total", 'department="fire"')


def deadletters(stack: Stack, expected: int) -> list[Message]:
    """Everything on the dead-letter topic, once ``expected`` are there and nothing more arrives."""
    found = stack.read(stack.settings.deadletter_topic, until=lambda m: len(m) >= expected, timeout_s=30)
    time.sleep(1.0)  # anything extra would have been written along with them
    return stack.read(stack.settings.deadletter_topic, until=lambda m: len(m) > len(found), timeout_s=2)


def committed_to_end(stack: Stack) -> bool:
    """Ingest's committed offsets on the department topic have reached its end."""
    topic = stack.settings.department_topic("fire")
    group = Consumer({**stack.kafka.client_config(), "group.id": f"{stack.prefix}ingest"})
    try:
        partitions = list(group.list_topics(topic, timeout=10).topics[topic].partitions)
        positions = group.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        ends = {p: group.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        group.close()
    return all(tp.offset == ends[tp.partition] for tp in positions if ends[tp.partition] > 0)


def ids(letters: list[Message]) -> list[str]:
    return sorted(header(m, "cityos_event_id") or "" for m in letters)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the database is not the point
@pytest.mark.timeout(300)
def test_same_bad_events_are_deadlettered_once(stack: Stack) -> None:
    stack.start("catalog", "ingest")
    run = f"f{uuid.uuid4().hex[:8]}"
    bad = bad_events(run)

    for round_ in range(1, 4):  # the same file imported three times
        send(stack, bad)
        expected = 3 * round_
        wait_until(f"import {round_} read by ingest", lambda: consumed(stack) >= expected)  # noqa: B023
    letters = deadletters(stack, 3)
    assert ids(letters) == sorted({f"{run}-2", f"{run}-3", ""}), "one dead letter per bad row"
    assert all(len(header(m, FINGERPRINT) or "") == 64 for m in letters)
    assert metric(stack, "cityos_ingest_deadletter_duplicates_total") == 6
    for letter in letters:  # counted by the reason of the dead letter they repeat
        reason = f'reason="{header(letter, "cityos_reason")}"'
        assert metric(stack, "cityos_ingest_deadletter_duplicates_total", reason) == 2 * sum(
            header(m, "cityos_reason") == header(letter, "cityos_reason") for m in letters
        )
    assert metric(stack, "cityos_ingest_events_deadlettered_total") == 3
    wait_until("every offset committed, duplicates' too", lambda: committed_to_end(stack), 30)

    # A restarted ingest reads what it dead-lettered back from the dead-letter topic.
    assert stack.stop("ingest") == 0
    stack.start("ingest")
    wait_until("fingerprints read back", lambda: metric(stack, "cityos_ingest_deadletter_fingerprints") >= 3)
    send(stack, bad)
    wait_until("the fourth import read", lambda: consumed(stack) >= 3)
    assert metric(stack, "cityos_ingest_deadletter_duplicates_total") == 3
    wait_until("committed after restart", lambda: committed_to_end(stack), 30)

    # A corrected file: one row changes its bytes (still wrong) -> one new dead letter, only that.
    changed = {f"{run}-2": event(f"{run}-2", 緯度="北緯34.8度")}
    send(stack, changed)
    letters = deadletters(stack, 4)
    assert len(letters) == 4
    assert ids(letters).count(f"{run}-2") == 2

    # The operator replays a dead letter unchanged: re-produced, refused again, dead-lettered again.
    [first] = [m for m in letters if header(m, "cityos_event_id") == f"{run}-3"]
    replayed = stack.cli("dlq", "replay", f"{first.partition()}-{first.offset()}")
    assert replayed.returncode == 0, replayed.stderr.decode()
    assert json.loads(replayed.stdout)["counts"]["replayed"] == 1
    letters = deadletters(stack, 5)
    assert len(letters) == 5
    [again] = [m for m in letters if header(m, REPLAY_OF)]
    assert header(again, "cityos_event_id") == f"{run}-3"
    assert header(again, FINGERPRINT) == header(first, FINGERPRINT), "the same event, replayed"
