"""The feeds' state topic on the real broker, from its very first moment."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from cityos.kernel.kafka_access import KafkaAccess
from services.feeds.state import ensure_state_topic, load_activations, state_key, state_value


def test_a_state_topic_just_created_reads_as_empty_then_returns_what_was_written(
    kafka: KafkaAccess,
) -> None:
    # New topics read at once, as on a first start: ensure_topics returns only once the broker serves
    # them. (The metadata race it waits out shows on a brand-new cluster; `make up` on a fresh clone
    # exercises that.)
    for _ in range(5):
        topic = f"t{uuid.uuid4().hex[:10]}.cityos.feeds.state"
        ensure_state_topic(kafka, topic)
        assert load_activations(kafka, topic) == {}
    producer = Producer(kafka.client_config())
    producer.produce(topic, key=state_key(7, 2), value=state_value(7, 2, 41, "snapshot"))
    producer.produce(topic, key=state_key(7, 2), value=state_value(7, 2, 42, "snapshot"))
    assert producer.flush(30) == 0
    assert load_activations(kafka, topic) == {(7, 2): 42}
