"""Where each subscription's feed started, per validated-topic partition, kept in a compacted
Kafka topic that only the republisher writes, inside its transactions.

Why Kafka and not the database: the start of a feed (its snapshot and the offset where live
delivery begins) must commit atomically with the feed events and the consumed offsets. Written in
the same Kafka transaction, "snapshot sent" and "live from offset N" can never disagree after a
crash: either all of it is visible to read_committed readers, or none of it.
"""

from __future__ import annotations

import time
import uuid

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.kafka import check_consume_error, ensure_topics
from cityos.kernel.kafka_access import KafkaAccess

Activations = dict[tuple[int, int], int]  # (subscription id, partition) -> first live offset


def state_key(subscription_id: int, partition: int) -> bytes:
    return f"{subscription_id}/{partition}".encode()


def state_value(subscription_id: int, partition: int, start: int, mode: str) -> bytes:
    return orjson.dumps(
        {"subscription": subscription_id, "partition": partition, "start": start, "mode": mode}
    )


def parse_state(value: bytes | None) -> tuple[tuple[int, int], int] | None:
    try:
        body = orjson.loads(value or b"")
        return (int(body["subscription"]), int(body["partition"])), int(body["start"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def ensure_state_topic(kafka: KafkaAccess, topic: str) -> None:
    """One partition, compacted: the latest start record per (subscription, partition) is kept."""
    ensure_topics(kafka, {topic: 1}, compacted=True)


def load_activations(kafka: KafkaAccess, topic: str, *, timeout_s: float = 30.0) -> Activations:
    """Every committed activation (read_committed, from the beginning to the end)."""
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": kafka.reader_group(f"feeds-state-{uuid.uuid4().hex[:8]}"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    found: Activations = {}
    deadline = time.monotonic() + timeout_s
    try:
        partition = TopicPartition(topic, 0)
        _low, high = consumer.get_watermark_offsets(partition, timeout=10)
        if high <= 0:
            return found
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        while True:
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    check_consume_error(error)
                    continue
                parsed = parse_state(message.value())
                if parsed is not None:
                    found[parsed[0]] = parsed[1]
            position = consumer.position([partition])[0].offset
            if position >= high:
                return found
            if time.monotonic() > deadline:
                # An open transaction of another live instance holds the stable offset back.
                raise KafkaUnavailable(f"state topic {topic} not readable to offset {high} in {timeout_s} s")
    finally:
        consumer.close()
