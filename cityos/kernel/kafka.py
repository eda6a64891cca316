"""Thin wrappers over confluent-kafka: configuration, topic set-up, offset bookkeeping.

Composition over subclassing: services hold a Producer and a Consumer and use the helpers here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from cityos.kernel.errors import KafkaUnavailable
from cityos.kernel.kafka_access import KafkaAccess

log = logging.getLogger(__name__)

# Dead-lettered originals may be larger than the 1 MiB event limit (that is why they were
# refused), so the producer and broker must accept somewhat more than the limit.
MAX_PRODUCE_BYTES = 4 * 1024 * 1024


def producer_config(kafka: KafkaAccess, **overrides: Any) -> dict[str, Any]:
    """Idempotent, fully acknowledged producer: no loss, no duplicates from retries."""
    config: dict[str, Any] = {
        **kafka.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        "message.max.bytes": MAX_PRODUCE_BYTES + 64 * 1024,
        "queue.buffering.max.messages": 200_000,
    }
    config.update(overrides)
    return config


def consumer_config(kafka: KafkaAccess, group_id: str, **overrides: Any) -> dict[str, Any]:
    """Offsets are stored by the application only once its output is durable; the client then
    commits stored offsets in the background and on close."""
    config: dict[str, Any] = {
        **kafka.client_config(),
        "group.id": group_id,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": 1000,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.max.bytes": 16 * 1024 * 1024,
        "topic.metadata.refresh.interval.ms": 5000,  # pattern subscriptions see new topics soon
    }
    config.update(overrides)
    return config


def reader_config(kafka: KafkaAccess, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that reads (assigned partitions, from where it is told) and never commits."""
    config: dict[str, Any] = {
        **kafka.client_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config


def admin_client(kafka: KafkaAccess) -> AdminClient:
    return AdminClient(kafka.client_config())


# Replication factor -1 in a CreateTopics request: the brokers' default.replication.factor.
CLUSTER_DEFAULT = -1


def ensure_topics(
    kafka: KafkaAccess,
    topics: Mapping[str, int],
    *,
    compacted: bool = False,
    timeout_s: float = 30.0,
) -> None:
    """Create the topics that do not exist yet (name -> partitions) and return once the broker
    serves every partition of them.

    Replication is the cluster's: each topic takes the brokers' ``default.replication.factor`` and
    ``min.insync.replicas`` (1 and 1 on the local single broker; 3 and 2 on a cluster, so one broker
    may fail without losing an acknowledged event). Every creator — the operator's set-up, the feeds
    republisher, the schema registry — thereby agrees without a setting of its own.

    ``compacted``: keep the latest message per key (state and schema topics) instead of deleting by age.
    """
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot reach Kafka at {kafka.bootstrap} as {kafka.username}: {exc}") from exc
    config = {"max.message.bytes": str(MAX_PRODUCE_BYTES + 64 * 1024)}
    if compacted:
        config["cleanup.policy"] = "compact"
    missing = {
        name: NewTopic(name, num_partitions=partitions, replication_factor=CLUSTER_DEFAULT, config=config)
        for name, partitions in topics.items()
        if name not in existing
    }
    if not missing:
        return
    for name, future in admin.create_topics(list(missing.values()), request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            if error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another process won the race
            if error_code(exc) == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise KafkaUnavailable(
                    f"topic {name} does not exist and {kafka.username} may not create it: "
                    "the operator creates the platform's topics with `cityos kafka setup`"
                ) from exc
            raise KafkaUnavailable(f"cannot create topic {name}: {exc}") from exc
    _wait_until_served(admin, {name: topics[name] for name in missing}, timeout_s)


def _wait_until_served(admin: AdminClient, topics: Mapping[str, int], timeout_s: float) -> None:
    """A topic just created is not in the broker's metadata at once (first start of a new KRaft
    cluster especially): a client asking for its offsets meanwhile gets "unknown partition". Wait
    until every partition has a leader, so every caller may use its topics right away."""
    deadline = time.monotonic() + timeout_s
    waiting = dict(topics)
    while waiting:
        for name in list(waiting):
            topic = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) >= waiting[name]
                and all(partition.leader >= 0 for partition in topic.partitions.values())
            ):
                del waiting[name]
        if waiting:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"topics {sorted(waiting)} not served {timeout_s} s after creation")
            time.sleep(0.1)


# Partitions of the pipeline's own topics. Validated events are keyed by record, so more
# partitions mean more catalog (and later feed) processes can share the work.
VALIDATED_PARTITIONS = 6
DEADLETTER_PARTITIONS = 3
DEPARTMENT_PARTITIONS = 3


def ensure_pipeline_topics(
    kafka: KafkaAccess, *, validated: str, deadletter: str, department_topics: Iterable[str] = ()
) -> None:
    """The validated and dead-letter topics exist before anyone produces or consumes them; so do
    the known departments' topics, which ingest's pattern subscription then sees at its first
    metadata fetch instead of one refresh interval after a department's first event."""
    topics = {validated: VALIDATED_PARTITIONS, deadletter: DEADLETTER_PARTITIONS}
    topics.update({topic: DEPARTMENT_PARTITIONS for topic in department_topics})
    ensure_topics(kafka, topics)


def consumer_lag(consumer: Consumer) -> int | None:
    """Messages between the consumer's positions and the ends of its assigned partitions, from
    the client's cached watermarks (no broker round trip); None when it cannot be known now."""
    try:
        assigned = consumer.assignment()
        positions = consumer.position(assigned) if assigned else []
    except KafkaException:
        return None
    lag = 0
    for tp in positions:
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if tp.offset >= 0 and high >= 0:
            lag += max(high - tp.offset, 0)
    return lag


def error_code(exc: KafkaException) -> int | None:
    """The KafkaError code carried by an exception, if any."""
    error = exc.args[0] if exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def check_consume_error(error: KafkaError) -> None:
    """End-of-partition is not an error; fatal errors stop the process (KafkaUnavailable); the
    client retries everything else by itself, so it is only logged."""
    if error.code() == KafkaError._PARTITION_EOF:
        return
    if error.fatal():
        raise KafkaUnavailable(f"fatal consumer error: {error}")
    log.warning("consumer error (retried by the client): %s", error)


def headers_list(raw: Any) -> list[tuple[str, bytes | None]]:
    """confluent-kafka returns None or a list of (str, bytes) tuples; normalise to a list."""
    if not raw:
        return []
    return [(str(key), value) for key, value in raw]
