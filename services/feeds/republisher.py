"""The feed republisher: validated topic -> per-subscription feed topics, exactly once.

One Kafka transaction per batch holds everything the batch causes: the feed events of every
subscription, the start records of feeds activated in it (with their snapshots), and the consumed
offsets (``send_offsets_to_transaction``). Consumers of the feeds read ``read_committed``, so after
a crash they see each batch's output whole or not at all, and the restarted instance (same
``transactional.id``) fences its predecessor and resumes from the offsets of the last committed
transaction: nothing lost, nothing doubled.

Access is decided per event by the policy loaded from the database. Before a transaction commits,
the policy is loaded again; if anything changed (a revoke, a new subscription), the transaction is
aborted and the batch redone under the new policy. So an event consumed after a revoke was
committed in the database can never reach the feed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cityos.domain.audit import record_audit
from cityos.kernel.consume import ConsumeLoop, Periodic
from cityos.kernel.errors import DeliveryFailed, KafkaUnavailable
from cityos.kernel.kafka import ensure_topics
from cityos.kernel.kafka_access import KafkaAccess
from services.feeds.metrics import FeedsMetrics
from services.feeds.policy import Policy, Route, load_policy
from services.feeds.snapshot import latest_states
from services.feeds.state import Activations, ensure_state_topic, load_activations, state_key, state_value
from services.feeds.transform import Outcome, dataset_of, decode, headers, render

log = logging.getLogger(__name__)

KAFKA_TIMEOUT_S = 30.0


class PolicyChanged(Exception):
    """Internal: grants or subscriptions changed while a transaction was open."""

    def __init__(self, policy: Policy) -> None:
        super().__init__("policy changed")
        self.policy = policy


class Republisher:
    def __init__(
        self,
        *,
        consumer: Consumer,
        producer: Producer,
        kafka: KafkaAccess,
        validated_topic: str,
        state_topic: str,
        sessions: sessionmaker[Session],
        metrics: FeedsMetrics,
        transactional: bool = True,
        batch_size: int = 2000,
        refresh_s: float = 0.2,
        feed_partitions: int = 3,
        audit: bool = True,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._kafka = kafka
        self._validated = validated_topic
        self._state_topic = state_topic
        self._sessions = sessions
        self._metrics = metrics
        self._transactional = transactional
        self._batch_size = batch_size
        self._refresh_s = refresh_s
        self._feed_partitions = feed_partitions
        self._audit = audit
        self.positions: dict[int, int] = {}  # validated partition -> next offset to republish
        self.activations: Activations = {}
        self.policy = Policy()
        self._routes: dict[str, list[Route]] = {}
        self._topics: set[str] = set()
        self._delivery_error: str | None = None
        self.ready = threading.Event()
        self.consumed = 0

    # --- set-up ----------------------------------------------------------------------------
    def start(self) -> None:
        """The state topic, the policy, the subscription. A transactional producer comes with its
        transactions initialised (services.feeds.main): a failed init is fatal to the client, so it
        is tried again with a fresh one there."""
        ensure_state_topic(self._kafka, self._state_topic)
        self._set_policy(self._load_policy())
        self._consumer.subscribe(
            [self._validated], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.activations = load_activations(self._kafka, self._state_topic)
        committed = consumer.committed(partitions, timeout=KAFKA_TIMEOUT_S)
        starts: list[TopicPartition] = []
        for tp in committed:
            offset = tp.offset
            if offset < 0:  # nothing committed yet: from the beginning of the topic
                offset, _high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=10
                )
            self.positions[tp.partition] = offset
            starts.append(TopicPartition(tp.topic, tp.partition, offset))
        consumer.assign(starts)
        log.info("assigned %s", {tp.partition: tp.offset for tp in starts})
        self.ready.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called from consume(), between transactions: nothing of these partitions is in flight.
        for tp in partitions:
            self.positions.pop(tp.partition, None)
        consumer.unassign()

    # --- policy ----------------------------------------------------------------------------
    def _load_policy(self) -> Policy:
        with self._sessions() as session:
            return load_policy(session)

    def _set_policy(self, policy: Policy) -> None:
        previous = {r.subscription_id: r for r in self.policy.routes}
        self.policy = policy
        self._routes = policy.by_dataset()
        self._metrics.subscriptions.set(len(policy.routes))
        self._metrics.grants.set(policy.active_grants)
        self._ensure_feed_topics()
        for route in policy.routes:
            self._metrics.start_series(route.label)
            before = previous.get(route.subscription_id)
            if before is not None and before.allowed != route.allowed:
                self._audit_feed(route, "feed.resumed" if route.allowed else "feed.denied", {})

    def _ensure_feed_topics(self) -> None:
        missing = {r.topic for r in self.policy.routes} - self._topics
        if not missing:
            return
        try:
            ensure_topics(self._kafka, dict.fromkeys(missing, self._feed_partitions))
            self._topics |= missing
        except KafkaUnavailable as exc:  # tried again at the next refresh
            log.warning("cannot create feed topics %s: %s", sorted(missing), exc)

    def _refresh_policy(self) -> None:
        try:
            fresh = self._load_policy()
        except SQLAlchemyError as exc:
            log.warning("cannot reload grants and subscriptions (keeping the last ones): %s", exc)
            return
        if fresh != self.policy:
            self._metrics.policy_changes.inc()
            self._set_policy(fresh)
        else:
            self._ensure_feed_topics()

    def _audit_feed(self, route: Route, action: str, detail: dict[str, object]) -> None:
        if not self._audit:
            return
        try:
            with self._sessions.begin() as session:
                record_audit(
                    session,
                    actor="system:feeds",
                    action=action,
                    subject_kind="dataset",
                    subject_id=route.dataset,
                    detail={
                        "subscription_id": route.subscription_id,
                        "department": route.department,
                        **detail,
                    },
                    at=datetime.now(UTC),
                )
        except SQLAlchemyError as exc:
            log.error("could not audit %s of subscription %s: %s", action, route.subscription_id, exc)

    # --- main loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Republish until ``stop`` is set. Every batch is committed or aborted within its turn,
        so there is nothing to drain."""
        ConsumeLoop(
            self._consumer,
            self._turn,
            report_lag=self._metrics.lag.set,
            batch_size=self._batch_size,
            poll_timeout_s=0.1,
            before_poll=Periodic(self._refresh_s, self._refresh_policy),
        ).run(stop)

    def _turn(self, batch: list[Message]) -> None:
        # Feeds activated while no events arrive still get their start records (and snapshots).
        pending = self._pending_activations()
        if batch or pending:
            self._process(batch, pending)

    def _pending_activations(self) -> list[tuple[Route, int]]:
        return [
            (route, partition)
            for route in self.policy.routes
            if route.allowed
            for partition in sorted(self.positions)
            if (route.subscription_id, partition) not in self.activations
        ]

    def _process(self, batch: list[Message], pending: list[tuple[Route, int]]) -> None:
        try:
            self._transact(batch, pending)
        except PolicyChanged as changed:
            self._abort("policy changed while the transaction was open")
            self._metrics.policy_changes.inc()
            self._set_policy(changed.policy)
        except (KafkaException, DeliveryFailed, KafkaUnavailable) as exc:
            # KafkaUnavailable here: a snapshot could not be read in time; retried like the rest.
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.fatal():
                raise KafkaUnavailable(f"fatal Kafka error (fenced or broken producer): {error}") from exc
            self._abort(f"Kafka error: {exc}")
            time.sleep(0.5)
        except SQLAlchemyError as exc:  # the pre-commit policy check could not run: do not commit
            self._abort(f"database unavailable for the policy check: {exc}")
            time.sleep(0.5)

    def _abort(self, why: str) -> None:
        """Drop the open transaction and go back to the last committed positions."""
        log.warning("aborting feed transaction: %s", why)
        if self._transactional:
            try:
                self._producer.abort_transaction(KAFKA_TIMEOUT_S)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.fatal():
                    raise KafkaUnavailable(f"cannot abort: {error}") from exc
                log.warning("abort failed (no transaction open?): %s", exc)
        self._metrics.transactions.labels("aborted").inc()
        self._rewind()

    def _rewind(self) -> None:
        offsets = [TopicPartition(self._validated, p, o) for p, o in self.positions.items()]
        try:
            for tp in offsets:
                self._consumer.seek(tp)
        except KafkaException:
            self._consumer.assign(offsets)  # not fetching yet: assigning sets the positions

    # --- one transaction -------------------------------------------------------------------
    def _transact(self, batch: list[Message], pending: list[tuple[Route, int]]) -> None:
        started = time.monotonic()
        policy = self.policy
        if self._transactional:
            self._producer.begin_transaction()
        counts: Counter[tuple[str, str]] = Counter()
        snapshots: Counter[str] = Counter()
        new_activations = self._activate(pending, snapshots)
        activations = {**self.activations, **new_activations}
        last = self._republish(batch, activations, counts)
        # The revoke guard: grants and subscriptions as the database has them now.
        fresh = self._load_policy()
        if fresh.routes != policy.routes:
            raise PolicyChanged(fresh)
        self._commit(last)
        self.positions.update(last)
        self.activations = activations
        self.consumed += len(batch)
        self._count_committed(started, counts, snapshots)
        self._audit_activations(new_activations)

    def _republish(
        self, batch: list[Message], activations: Activations, counts: Counter[tuple[str, str]]
    ) -> dict[int, int]:
        """Produce the live feed events of ``batch`` in the open transaction; the next offset to
        consume per validated partition once it commits."""
        last: dict[int, int] = {}
        for message in batch:
            partition, offset = message.partition() or 0, message.offset() or 0
            position = self.positions.get(partition)
            if position is None or offset < position:
                continue  # revoked meanwhile, or already republished
            last[partition] = offset + 1
            self._republish_message(message, partition, offset, activations, counts)
        return last

    def _republish_message(
        self,
        message: Message,
        partition: int,
        offset: int,
        activations: Activations,
        counts: Counter[tuple[str, str]],
    ) -> None:
        """One validated event to every feed of its dataset that has started at or before it."""
        routes = self._routes.get(dataset_of(message.key()))
        if not routes:
            return
        event = None
        for route in routes:
            if not route.allowed:
                counts[(route.label, Outcome.denied)] += 1
                continue
            start = activations.get((route.subscription_id, partition))
            if start is None or offset < start:
                continue
            if event is None:
                event = decode(message.value(), message.key(), partition, offset)
                if event is None:
                    return  # not a JSON object: the catalog dead-letters it
            outcome, value = render(route, event)
            counts[(route.label, outcome)] += 1
            if value is not None:
                self._produce(route.topic, event.key, value, headers(route, event, "live"))

    def _commit(self, last: dict[int, int]) -> None:
        """Commit the batch's output together with its consumed offsets (exactly once), or, without
        transactions, wait for every delivery before committing the offsets (at least once)."""
        offsets = [TopicPartition(self._validated, p, o) for p, o in last.items()]
        if self._transactional:
            if offsets:
                self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), KAFKA_TIMEOUT_S
                )
            self._producer.commit_transaction(KAFKA_TIMEOUT_S)
        else:
            self._flush()
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=False)

    def _count_committed(
        self, started: float, counts: Counter[tuple[str, str]], snapshots: Counter[str]
    ) -> None:
        self._metrics.transactions.labels("committed").inc()
        self._metrics.transaction_seconds.observe(time.monotonic() - started)
        for (label, kind), count in counts.items():
            self._metrics.events.labels(self._metrics.subscription(label), kind).inc(count)
        for label, count in snapshots.items():
            self._metrics.snapshot_records.labels(self._metrics.subscription(label)).inc(count)

    def _activate(self, pending: list[tuple[Route, int]], snapshots: Counter[str]) -> Activations:
        """Start feeds at the current positions: snapshot (if asked) and start record, in the
        open transaction, before any live event of the batch."""
        by_partition: dict[int, list[Route]] = defaultdict(list)
        for route, partition in pending:
            by_partition[partition].append(route)
        started: Activations = {}
        for partition, routes in sorted(by_partition.items()):
            start = self.positions[partition]
            wanted = [r for r in routes if r.start_mode == "snapshot"]
            if wanted:
                states = latest_states(
                    self._kafka, self._validated, partition, start, {r.dataset for r in wanted}
                )
                for route in wanted:
                    for event in states:
                        if dataset_of(event.key) != route.dataset:
                            continue
                        _outcome, value = render(route, event)
                        if value is not None:
                            self._produce(route.topic, event.key, value, headers(route, event, "snapshot"))
                            snapshots[route.label] += 1
            for route in routes:
                self._produce(
                    self._state_topic,
                    state_key(route.subscription_id, partition),
                    state_value(route.subscription_id, partition, start, route.start_mode),
                    [],
                )
                started[(route.subscription_id, partition)] = start
        return started

    def _audit_activations(self, started: Activations) -> None:
        by_subscription: dict[int, dict[str, int]] = defaultdict(dict)
        for (subscription_id, partition), start in started.items():
            by_subscription[subscription_id][str(partition)] = start
        routes = {r.subscription_id: r for r in self.policy.routes}
        for subscription_id, starts in by_subscription.items():
            route = routes.get(subscription_id)
            if route is not None:
                self._audit_feed(route, "feed.started", {"start": route.start_mode, "offsets": starts})

    # --- producing -------------------------------------------------------------------------
    def _produce(
        self, topic: str, key: bytes, value: bytes, message_headers: list[tuple[str, str | bytes]]
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=message_headers, on_delivery=self._delivered
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None and self._delivery_error is None:
            self._delivery_error = str(error)

    def _flush(self) -> None:
        remaining = self._producer.flush(KAFKA_TIMEOUT_S)
        failure, self._delivery_error = self._delivery_error, None
        if failure is not None or remaining:
            raise DeliveryFailed(failure or f"{remaining} feed events not acknowledged")

    def close(self) -> None:
        self._consumer.close()
