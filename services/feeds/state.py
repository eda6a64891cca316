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
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cityos.errors import KafkaUnavailable
from cityos.kafka import check_consume_error, error_code

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


def ensure_state_topic(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> None:
    """One partition, compacted: the latest start record per (subscription, partition) is kept."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=timeout_s).topics:
        return
    new = NewTopic(topic, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})
    for name, future in admin.create_topics([new], request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if error_code(exc) != KafkaError.TOPIC_ALREADY_EXISTS:  # another instance won the race
                raise KafkaUnavailable(f"cannot create topic {name}: {exc}") from exc


def load_activations(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> Activations:
    """Every committed activation (read_committed, from the beginning to the end)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"cityos-feeds-state-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    found: Activations = {}
    deadline = time.monotonic() + timeout_s
    try:
        partition = TopicPartition(topic, 0)
        high = _high_watermark(consumer, partition, deadline)
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


# A topic created a moment ago (first start on a new cluster) may not be in a new client's
# metadata yet: the broker answers "unknown partition" until it is, so ask again until the deadline.
_NOT_YET_KNOWN = frozenset({KafkaError._UNKNOWN_PARTITION, KafkaError.UNKNOWN_TOPIC_OR_PART})


def _high_watermark(consumer: Consumer, partition: TopicPartition, deadline: float) -> int:
    while True:
        try:
            _low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(high)
        except KafkaException as exc:
            if error_code(exc) not in _NOT_YET_KNOWN or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
