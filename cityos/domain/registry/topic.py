"""The compacted schema topic: the registry publishes every registered version, ingest follows it.

Key: the schema URI (compaction keeps one message per version). Value: JSON with the dataset
metadata, the version number, the URI and the document. Each ingest process reads the topic from
the beginning with ``assign`` (no consumer group: every process needs every version), then keeps
polling it between batches, so a new version is in use within a second or two of registration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from cityos.kernel.errors import DeliveryFailed
from cityos.kernel.kafka import ensure_topics
from cityos.kernel.kafka_access import KafkaAccess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchemaChange:
    """One registered version as carried on the topic."""

    dataset: dict[str, Any]  # DatasetMeta as JSON
    version: int
    uri: str
    document: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(
            {"dataset": self.dataset, "version": self.version, "uri": self.uri, "document": self.document}
        )

    @classmethod
    def decode(cls, value: bytes) -> SchemaChange:
        body = orjson.loads(value)
        if not isinstance(body, dict):
            raise ValueError("a schema change is a JSON object")
        return cls(
            dataset=dict(body["dataset"]),
            version=int(body["version"]),
            uri=str(body["uri"]),
            document=dict(body["document"]),
        )


def ensure_schema_topic(kafka: KafkaAccess, topic: str) -> None:
    """One partition (one total order of versions), compacted (the latest message per URI stays)."""
    ensure_topics(kafka, {topic: 1}, compacted=True)


def publish_changes(
    producer: Producer, topic: str, changes: list[SchemaChange], *, timeout_s: float = 30
) -> None:
    """Produce ``changes`` and wait until the broker has every one (raises ``DeliveryFailed``)."""
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for change in changes:
        producer.produce(topic, key=change.uri.encode(), value=change.encode(), on_delivery=delivered)
    remaining = producer.flush(timeout_s)
    if failures or remaining:
        raise DeliveryFailed(f"schema change not acknowledged: {failures[:1] or f'{remaining} pending'}")


class SchemaFollower:
    """Reads the schema topic from the beginning, then whatever arrives; never blocks the caller."""

    def __init__(self, kafka: KafkaAccess, topic: str) -> None:
        self._consumer = Consumer(
            {
                **kafka.client_config(),
                "group.id": kafka.reader_group(
                    "schema-follower"
                ),  # required by the client; never used (assign only)
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def poll(self, *, timeout_s: float = 0.0, max_messages: int = 500) -> list[SchemaChange]:
        """The changes that arrived since the last call (undecodable messages are logged, skipped)."""
        changes: list[SchemaChange] = []
        for message in self._consumer.consume(num_messages=max_messages, timeout=timeout_s):
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("schema topic: %s", error)
                continue
            value = message.value()
            if value is None:
                continue  # a tombstone: versions are never withdrawn, nothing to do
            try:
                changes.append(SchemaChange.decode(value))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("schema topic: undecodable message at offset %s: %s", message.offset(), exc)
        return changes

    def close(self) -> None:
        self._consumer.close()
