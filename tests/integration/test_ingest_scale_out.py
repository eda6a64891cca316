"""More ingest processes in one consumer group share the load; a clean stop (SIGTERM) flushes and
commits, and the survivor takes over the stopped process's partitions without loss."""

from __future__ import annotations

import re
import time

import httpx
import orjson
import pytest
from confluent_kafka import Message
from confluent_kafka.admin import AdminClient

from cityos.department.demo import demo_records
from cityos.department.outbox import record_event
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import Settings
from tests.support.stack import Stack, free_port

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


def department_partitions(stack: Stack) -> int:
    """Partitions of every department topic of this stack, as the broker reports them."""
    topics = AdminClient(stack.kafka.client_config()).list_topics(timeout=10).topics
    pattern = re.compile(stack.settings.department_topic_pattern)
    return sum(len(meta.partitions) for name, meta in topics.items() if pattern.match(name))


def wait_until_balanced(*ports: int, partitions: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = [assigned(port) for port in ports]
        if sum(counts) == partitions and min(counts) > 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"partitions not shared within {timeout_s} s: {counts}")


SCHEMAS = load_schema_dir(Settings().schemas_dir)
DATASETS = sorted(SCHEMAS.datasets)
# Valid records of every dataset: the events spread over every department's topic, so both
# processes get some whatever way the group splits the topics' partitions between them.
RECORDS = {
    dataset: demo_records(
        dataset, SCHEMAS.latest(dataset).document, count=2 * EVENTS // len(DATASETS) + 1, seed=9
    )
    for dataset in DATASETS
}


def send(stack: Stack, start: int, count: int) -> None:
    producer = stack.producer()
    for index in range(start, start + count):
        dataset = DATASETS[index % len(DATASETS)]
        meta = SCHEMAS.datasets[dataset]
        record = RECORDS[dataset][index // len(DATASETS)]
        value = record_event(
            record=record,
            dataschema=SCHEMAS.latest(dataset).uri,
            source=f"/departments/{meta.department}/scale",
            event_id=f"s-{index}",
        )
        key = f"{dataset}/{record[meta.record_key]}".encode()
        producer.produce(stack.settings.department_topic(meta.department), value=value, key=key)
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
    # Ingest also subscribes to the other departments' topics (it creates them at start-up).
    wait_until_balanced(first_port, second_port, partitions=department_partitions(stack))
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
