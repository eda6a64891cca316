"""The current state of records as of a position in the validated topic: re-read one partition
from its beginning up to (not including) ``end`` and keep the last change of every record.

The republisher takes a subscription's snapshot at exactly the offset where its live delivery
starts, in the same transaction, so there is no gap and no duplicate at the seam. Records live on
one partition each (keyed by record), so per-partition snapshots add up to the whole dataset.
Requires the validated topic to keep the history (retention, or ``cleanup.policy=compact``, which
keeps exactly the latest change per record key); see docs/feeds.md.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.kafka import check_consume_error
from cityos.kernel.kafka_access import KafkaAccess
from services.feeds.transform import Event, dataset_of, decode


def latest_states(
    kafka: KafkaAccess,
    topic: str,
    partition: int,
    end: int,
    datasets: Collection[str],
    *,
    timeout_s: float = 120.0,
) -> list[Event]:
    """The latest change of every record of ``datasets`` before ``end``, deletions dropped,
    in the order of those changes' offsets."""
    if end <= 0:
        return []
    wanted = {d.encode() for d in datasets}
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": kafka.reader_group(f"feeds-snapshot-{uuid.uuid4().hex[:8]}"),
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 16 * 1024 * 1024,
        }
    )
    latest: dict[bytes, Event] = {}
    try:
        tp = TopicPartition(topic, partition)
        low, _high = consumer.get_watermark_offsets(tp, timeout=10)
        if low >= end:
            return []
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        while True:
            for message in consumer.consume(num_messages=5000, timeout=0.2):
                error = message.error()
                if error is not None:
                    check_consume_error(error)
                    continue
                offset = message.offset() or 0
                if offset >= end:
                    continue
                key = message.key() or b""
                if key.split(b"/", 1)[0] not in wanted or dataset_of(key) not in datasets:
                    continue
                event = decode(message.value(), key, partition, offset)
                if event is not None:
                    latest[key] = event
            if consumer.position([tp])[0].offset >= end:
                break
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"snapshot of {topic}[{partition}] not read to {end} in {timeout_s} s")
    finally:
        consumer.close()
    return sorted((e for e in latest.values() if not e.is_deletion), key=lambda e: e.offset)
