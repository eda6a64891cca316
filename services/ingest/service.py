"""The ingest loop: consume department topics, route each message, produce, store offsets.

Offsets are stored only after the broker acknowledged every output produced before them
(``Checkpoint``), so a crash at any point re-delivers rather than loses; downstream is idempotent
by event id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from cityos.domain.metric_labels import dataset_label
from cityos.domain.registry.topic import SchemaChange, SchemaFollower
from cityos.kernel.consume import ConsumeLoop, Periodic
from cityos.kernel.deadletter import Reason
from cityos.kernel.kafka import error_code, headers_list
from cityos.kernel.schemas import DatasetMeta
from cityos.kernel.validation import ValidatorRegistry
from services.ingest.checkpoint import Checkpoint
from services.ingest.dedup import DeadLetterFollower, RecentDeadLetters
from services.ingest.metrics import IngestMetrics
from services.ingest.routing import (
    UNKNOWN,
    InboundMessage,
    OutboundMessage,
    Routed,
    Topics,
    accept_fast,
    department_of,
    route,
    validated_headers,
)

log = logging.getLogger(__name__)

# How often the schema topic is polled between batches: new versions are in use within about this.
SCHEMA_POLL_S = 0.25
# How often other processes' dead letters are taken into the memory: often enough that a resend a
# moment later is recognised, without a broker call on every batch of the hot loop.
DEADLETTER_FOLLOW_S = 0.25
# The validation-latency histogram samples one event in this many: a histogram observation
# takes a lock and costs about as much as validating a small event.
VALIDATION_SAMPLE_EVERY = 16
# How often input offsets are released for commit: each release waits for every output produced so
# far (a few milliseconds), and the client commits released offsets every second anyway.
CHECKPOINT_S = 0.25
# Longest wait at a checkpoint for the broker's acknowledgements before trying again later.
CHECKPOINT_WAIT_S = 10.0


def inbound(message: Message) -> InboundMessage:
    """Copy the fields routing needs out of a confluent-kafka message."""
    kind, stamp = message.timestamp()
    return InboundMessage(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        headers=headers_list(message.headers()),
        timestamp_ms=stamp if kind != 0 else None,  # 0 = TIMESTAMP_NOT_AVAILABLE
    )


class IngestService:
    """Wires a consumer and a producer to the pure ``route`` function."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        registry: ValidatorRegistry,
        topics: Topics,
        metrics: IngestMetrics,
        known_departments: frozenset[str],
        max_future: timedelta = timedelta(minutes=5),
        batch_size: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema_follower: SchemaFollower | None = None,
        on_schemas_changed: Callable[[int], None] | None = None,
        recent_deadletters: RecentDeadLetters | None = None,
        deadletter_follower: DeadLetterFollower | None = None,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._registry = registry
        self._topics = topics
        self._metrics = metrics
        self._departments = known_departments
        self._max_future = max_future
        self._batch_size = batch_size
        self._clock = clock
        self._checkpoint = Checkpoint(producer, interval_s=CHECKPOINT_S)
        self._children: dict[tuple[str, ...], Any] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._follower = schema_follower
        self._on_schemas_changed = on_schemas_changed
        self._schema_poll = Periodic(SCHEMA_POLL_S, self._apply_schema_changes)
        # Not ``or``: an empty memory is falsy (it has a length) yet must be the one used.
        self._recent = RecentDeadLetters(0) if recent_deadletters is None else recent_deadletters
        self._deadletter_follower = deadletter_follower
        self._deadletter_poll = Periodic(DEADLETTER_FOLLOW_S, self._take_deadletters)
        self._by_topic: dict[str, tuple[str, list[tuple[str, str | bytes]]]] = {}
        self._sample = VALIDATION_SAMPLE_EVERY  # events until the next latency sample
        self.processed = 0

    def subscribe(self, pattern: str) -> None:
        self._consumer.subscribe(
            [pattern], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set, then flush output and commit what is durable."""
        ConsumeLoop(
            self._consumer,
            self._turn,
            report_lag=self._metrics.lag.set,
            batch_size=self._batch_size,
            poll_timeout_s=0.5,
            before_poll=self._before_poll,
            drain=self.drain,
        ).run(stop)

    def _turn(self, messages: Sequence[Message]) -> None:
        # Delivery reports are served every turn; offsets are released at each checkpoint and on
        # idle turns, so the last batch before a quiet spell is committed without more input.
        if messages:
            self.process(messages)
        self._producer.poll(0)
        if not messages or self._checkpoint.due():
            self._store_ready(CHECKPOINT_WAIT_S)

    def process(self, messages: Sequence[Message]) -> None:
        """Route and produce one batch of data messages (the consume loop has dealt with errors).

        Good structured upserts go straight from one strict parse and one compiled validation to
        the producer (``accept_fast``); everything else takes ``route``, which names the reason
        for a refusal. Bookkeeping is per batch: one clock reading, one metrics update, and the
        input positions recorded as it goes (released at the next checkpoint, once every output
        produced before it is acknowledged).
        """
        now = self._clock()
        outcomes: dict[tuple[str, str, Reason | None, bool], int] = {}
        valid: dict[tuple[str, str], int] = {}
        # Names are bound once: this loop runs for every event.
        registry, max_future, validated = self._registry, self._max_future, self._topics.validated
        produce, failed, positions = (
            self._producer.produce,
            self._checkpoint.on_delivery,
            self._checkpoint.positions,
        )
        sample, observe = self._sample, self._metrics.validation_seconds.observe
        by_topic = self._by_topic
        for message in messages:
            topic, value, raw_headers = message.topic() or "", message.value(), message.headers()
            department, out_headers = by_topic.get(topic) or self._topic_route(topic)
            headers = headers_list(raw_headers) if raw_headers else []
            # One event in VALIDATION_SAMPLE_EVERY is timed (see there).
            sample -= 1
            started = time.perf_counter() if sample == 0 else None
            if sample == 0:
                sample = VALIDATION_SAMPLE_EVERY
            fast = accept_fast(value, headers, department, registry=registry, now=now, max_future=max_future)
            if fast is None or value is None:
                self._route_one(message, now, outcomes, started)
                continue
            if started is not None:
                observe(time.perf_counter() - started)
            key, dataset = fast
            kind, stamp = message.timestamp()
            try:
                # Timestamp 0 lets the client stamp it (the record had none).
                produce(
                    validated,
                    value,
                    key,
                    headers=out_headers,
                    timestamp=stamp if kind else 0,
                    on_delivery=failed,
                )
            except BufferError:
                out = OutboundMessage(validated, key, value, out_headers, stamp if kind else None)
                self._produce_when_room(out, failed)
            positions[(topic, message.partition() or 0)] = (message.offset() or 0) + 1
            label = (department, dataset)
            valid[label] = valid.get(label, 0) + 1
        self._sample = sample
        for (department, dataset), count in valid.items():
            outcomes[(department, dataset, None, False)] = (
                outcomes.get((department, dataset, None, False), 0) + count
            )
        self._count(outcomes)
        self.processed += len(messages)

    def _route_one(
        self,
        message: Message,
        now: datetime,
        outcomes: dict[tuple[str, str, Reason | None, bool], int],
        started: float | None,
    ) -> None:
        """The explaining path for one message: route it, dead-letter once, produce. ``started``:
        when this event's latency is sampled, the clock reading before its fast attempt."""
        incoming = inbound(message)
        routed = route(
            incoming, registry=self._registry, topics=self._topics, now=now, max_future=self._max_future
        )
        if started is not None:
            self._metrics.validation_seconds.observe(time.perf_counter() - started)
        duplicate = routed.fingerprint is not None and self._repeated(routed)
        label = (routed.department, routed.dataset, routed.reason, duplicate)
        outcomes[label] = outcomes.get(label, 0) + 1
        # Committed with the next checkpoint, after every output produced before it: a duplicate
        # (a dead letter written before) needs no output of its own.
        self._checkpoint.positions[(incoming.topic, incoming.partition)] = incoming.offset + 1
        if duplicate:
            return
        out = routed.outbound
        try:
            self._producer.produce(
                out.topic,
                value=out.value,
                key=out.key,
                headers=out.headers,
                timestamp=out.timestamp_ms or 0,  # 0: let the client stamp it
                on_delivery=self._checkpoint.on_delivery,
            )
        except BufferError:
            self._produce_when_room(out, self._checkpoint.on_delivery)

    def _topic_route(self, topic: str) -> tuple[str, list[tuple[str, str | bytes]]]:
        """The department of an input topic and the headers of its validated events, worked out
        once per topic: the producer copies the headers for every message."""
        department = department_of(topic) or UNKNOWN
        self._by_topic[topic] = (department, validated_headers(department))
        return self._by_topic[topic]

    def drain(self) -> None:
        """Wait for every produce acknowledgement and commit the final positions."""
        self._store_ready(30)
        self._metrics.deadletter_memory.set(len(self._recent))
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            # Nothing stored yet is a normal case (a quiet stop, a fresh assignment), not a failure.
            if error_code(exc) != KafkaError._NO_OFFSET:
                raise

    def close(self) -> None:
        """Leave the group cleanly (stored offsets are committed by close)."""
        self._consumer.close()
        if self._deadletter_follower is not None:
            self._deadletter_follower.close()

    def _repeated(self, routed: Routed) -> bool:
        # A replay is an operator's explicit request: it is dead-lettered again if still refused.
        known = self._recent.remember(routed.fingerprint or "")
        return known and not routed.replay

    def _produce_when_room(
        self, out: OutboundMessage, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
        while True:
            # Local queue full: serve delivery reports until there is room (back-pressure).
            self._producer.poll(0.1)
            try:
                self._producer.produce(
                    out.topic,
                    value=out.value,
                    key=out.key,
                    headers=out.headers,
                    timestamp=out.timestamp_ms or 0,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                continue

    def _store_ready(self, wait_s: float) -> None:
        offsets = self._checkpoint.release(wait_s)
        self._metrics.in_flight.set(self._checkpoint.in_flight)
        if offsets:
            self._consumer.store_offsets(offsets=offsets)

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Cooperative rebalancing hands out increments, not the whole assignment.
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._metrics.assigned.set(len(self._assigned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Before giving partitions away, make their output durable and commit their positions,
        # so the next owner starts exactly where our acknowledged output ends.
        try:
            self.drain()
        except KafkaException as exc:
            log.warning("commit on revoke failed: %s", exc)  # never raise out of a rebalance callback
        self._checkpoint.forget(partitions)
        self._unassign(partitions)

    def _unassign(self, partitions: list[TopicPartition]) -> None:
        self._assigned.difference_update((tp.topic, tp.partition) for tp in partitions)
        self._metrics.assigned.set(len(self._assigned))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("partitions lost without revoke: %s", [(p.topic, p.partition) for p in partitions])
        self._checkpoint.forget(partitions)
        self._unassign(partitions)

    def _count(self, outcomes: dict[tuple[str, str, Reason | None, bool], int]) -> None:
        for (department, dataset_id, reason, duplicate), count in outcomes.items():
            department = department if department in self._departments else UNKNOWN
            dataset = self._dataset_label(dataset_id)
            self._child(self._metrics.consumed, department).inc(count)
            if reason is None:
                self._child(self._metrics.valid, department, dataset).inc(count)
            else:
                metric = self._metrics.deadletter_duplicates if duplicate else self._metrics.deadlettered
                self._child(metric, department, dataset, reason.value).inc(count)

    def _dataset_label(self, dataset_id: str) -> str:
        """/metrics is unauthenticated: a dataset that is not public is counted as ``non-public``."""
        meta = self._registry.dataset(dataset_id)
        return dataset_label(dataset_id, meta.classification if meta is not None else None)

    def _child(self, metric: Any, *labels: str) -> Any:
        # labels() takes a lock and builds a tuple each call; cache the children on the hot path.
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            self._children[key] = child
        return child

    def _before_poll(self) -> None:
        if self._follower is not None:
            self._schema_poll()
        if self._deadletter_follower is not None:
            self._deadletter_poll()

    def _apply_schema_changes(self) -> None:
        assert self._follower is not None
        if apply_schema_changes(self._registry, self._follower.poll()) and self._on_schemas_changed:
            self._on_schemas_changed(self._registry.version_count)

    def _take_deadletters(self) -> None:
        assert self._deadletter_follower is not None
        self._deadletter_follower.poll()
        self._metrics.deadletter_memory.set(len(self._recent))


def apply_schema_changes(registry: ValidatorRegistry, changes: Sequence[SchemaChange]) -> int:
    """Add every version not known yet to ``registry``; a change that cannot be used (bad metadata,
    a schema that does not compile) is logged and skipped: events naming it keep being dead-lettered
    as ``unknown_schema_version`` rather than the consumer stopping. Returns how many were added."""
    added = 0
    for change in changes:
        if registry.knows(change.uri):
            continue  # versions are immutable: the start-up schema set or an earlier message has it
        try:
            meta = DatasetMeta.model_validate(change.dataset)
            registry.add(meta, change.version, change.uri, change.document)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            log.error("schema %s not usable, ignored: %s", change.uri, exc)
            continue
        log.info("schema %s registered live", change.uri)
        added += 1
    return added
