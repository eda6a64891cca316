"""More ingest processes in one consumer group share the load; a clean stop (SIGTERM) flushes and
commits, and the survivor takes over the stopped process's partitions without loss."""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest
from confluent_kafka import Message

from cityos.outbox import record_event
from cityos.schemas import schema_uri
from tests.integration.stack import Stack, free_port

EVENTS = 3000


def consumed(stack: Stack, port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(v)
        for v in re.findall(r"^cityos_ingest_events_consumed_total\{[^}]*\} ([0-9.e+]+)$", text, re.M)
    )


def assigned(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    match = re.search(r"^cityos_ingest_assigned_partitions ([0-9.e+]+)$", text, re.M)
    return float(match[1]) if match else 0.0


def wait_until_balanced(*ports: int, partitions: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = [assigned(port) for port in ports]
        if sum(counts) == partitions and min(counts) > 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"partitions not shared within {timeout_s} s: {counts}")


def send(stack: Stack, start: int, count: int) -> None:
    producer = stack.producer()
    topic = stack.settings.department_topic("fire")
    for index in range(start, start + count):
        record = {
            "NO": f"S{index}",
            "名称": "分散試験",
            "名称_カナ": "ブンサン",
            "住所": "北九州市",
            "設置位置": "1階",
        }
        value = record_event(
            record=record,
            dataschema=schema_uri("aed", 1),
            source="/departments/fire/scale",
            event_id=f"s-{index}",
        )
        producer.produce(topic, value=value, key=f"aed/S{index}".encode())
    assert producer.flush(30) == 0


def ids(messages: list[Message]) -> list[str]:
    return [orjson.loads(m.value() or b"")["id"] for m in messages]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_two_ingest_processes_share_partitions_and_survive_a_clean_stop(stack: Stack) -> None:
    stack.create_department_topics("fire", partitions=6)
    first_port = stack.ports["ingest"]
    stack.start("ingest")
    stack.processes["ingest-1"] = stack.processes.pop("ingest")
    stack.ports["ingest"] = second_port = free_port()
    stack.start("ingest")
    wait_until_balanced(first_port, second_port, partitions=6)
    send(stack, 0, EVENTS)
    validated = stack.read(stack.settings.validated_topic, until=lambda m: len(set(ids(m))) >= EVENTS)
    assert set(ids(validated)) == {f"s-{i}" for i in range(EVENTS)}
    shares = consumed(stack, first_port), consumed(stack, second_port)
    assert sum(shares) == EVENTS, "each event consumed once by the group while nobody failed"
    assert min(shares) > 0, f"both processes must get partitions: {shares}"

    # A clean stop flushes and commits; the survivor takes over and nothing is lost.
    assert stack.stop("ingest") == 0, "SIGTERM ends ingest cleanly"
    send(stack, EVENTS, EVENTS)
    validated = stack.read(stack.settings.validated_topic, until=lambda m: len(set(ids(m))) >= 2 * EVENTS)
    assert set(ids(validated)) == {f"s-{i}" for i in range(2 * EVENTS)}
    assert len(validated) == 2 * EVENTS, "a clean hand-over re-processes nothing"
