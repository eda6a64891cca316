"""Catalog consumer: validated topic -> one database transaction per batch -> commit offsets.

The transaction commits before the offsets do; a crash between the two re-delivers the batch,
and the processed-events ledger turns the replay into a no-op.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cityos.kernel.consume import ConsumeLoop
from cityos.kernel.db.engine import refusal_text
from cityos.kernel.deadletter import DEPARTMENT, Origin, Reason, Verdict, deadletter_headers
from cityos.kernel.events import ValidatedEvent, header_text, parse_event_time
from cityos.kernel.kafka import headers_list
from cityos.kernel.validation import parse_schema_uri
from services.catalog.admission import DataValidators, admit
from services.catalog.metrics import CatalogMetrics
from services.catalog.store import BatchResult, admission_facts, apply_batch

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class CatalogStopping(Exception):
    """Internal: stop requested while waiting for the database; the batch stays uncommitted."""


class UndecodableEvent(ValueError):
    """A message on the validated topic that ingest could not have produced."""


def decode_validated(
    value: bytes | None, key: bytes | None, timestamp_ms: int | None, partition: int, offset: int
) -> ValidatedEvent:
    """Parse one validated-topic message (written by ingest). Raises UndecodableEvent.

    The key is ``<dataset>/<record key>``; the value a structured CloudEvent whose ``dataschema``
    names the schema version; a missing ``time`` falls back to the Kafka timestamp.
    """
    try:
        dataset_id, _, record_key = (key or b"").decode("utf-8").partition("/")
        body = orjson.loads(value or b"")
        schema = parse_schema_uri(body["dataschema"])
        if not record_key or schema is None or schema[0] != dataset_id:
            raise ValueError(f"key {key!r} does not match dataschema {body.get('dataschema')!r}")
        if body.get("time"):
            time = parse_event_time(body["time"])
        elif timestamp_ms:
            time = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        else:
            raise ValueError("event has neither time nor a Kafka timestamp")
        data = body.get("data")
        return ValidatedEvent(
            dataset_id=dataset_id,
            record_key=record_key,
            schema_version=schema[1],
            source=body["source"],
            id=body["id"],
            type=body["type"],
            time=time,
            data=data if isinstance(data, dict) else None,
            partition=partition,
            offset=offset,
        )
    except (
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        UnicodeDecodeError,
    ) as exc:
        raise UndecodableEvent(f"{type(exc).__name__}: {exc}") from exc


class CatalogConsumer:
    """Applies validated events to the catalog database in batches."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        deadletter: Producer,
        deadletter_topic: str,
        sessions: sessionmaker[Session],
        metrics: CatalogMetrics,
        batch_size: int = 500,
        batch_timeout_s: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        schema_bundle: Mapping[str, Any] | None = None,
    ) -> None:
        self._consumer = consumer
        self._deadletter = deadletter
        self._deadletter_topic = deadletter_topic
        self._sessions = sessions
        self._metrics = metrics
        self._batch_size = batch_size
        self._batch_timeout_s = batch_timeout_s
        self._clock = clock
        # Every upsert is checked against its registered schema again before it is stored.
        self._validators = DataValidators(schema_bundle or {})
        self.applied = 0
        self._stop = threading.Event()

    def subscribe(self, topic: str) -> None:
        self._consumer.subscribe([topic])

    def run(self, stop: threading.Event) -> None:
        """Apply batches until ``stop`` is set, then make the dead-lettered originals durable."""
        self._stop = stop
        ConsumeLoop(
            self._consumer,
            self._turn,
            report_lag=self._metrics.lag.set,
            batch_size=self._batch_size,
            poll_timeout_s=self._batch_timeout_s,
            drain=self._drain,
        ).run(stop)

    def _turn(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        try:
            self.process(messages)
        except CatalogStopping:
            # Raised only once the stop event is set: the loop ends after this turn.
            log.warning("stopped while the database was unavailable; the batch will be re-delivered")

    def _drain(self) -> None:
        self._deadletter.flush(30)

    def close(self) -> None:
        self._consumer.close()

    def process(self, messages: Sequence[Message]) -> None:
        """Apply one batch of data messages (the consume loop has dealt with errors), then commit
        its offsets."""
        pairs: list[tuple[ValidatedEvent, Message]] = []
        positions: dict[tuple[str, int], int] = {}
        for message in messages:
            partition, offset = message.partition() or 0, message.offset() or 0
            positions[(message.topic() or "", partition)] = offset + 1
            try:
                kind, stamp = message.timestamp()
                stamp_ms = stamp if kind != 0 else None  # 0 = TIMESTAMP_NOT_AVAILABLE
                pairs.append(
                    (decode_validated(message.value(), message.key(), stamp_ms, partition, offset), message)
                )
            except UndecodableEvent as exc:
                self._reject(
                    message, str(exc), reason=Reason.UNDECODABLE_VALIDATED_EVENT, outcome="undecodable"
                )
        pairs = self._admitted(pairs)
        if pairs:
            self._store(pairs)
            self.applied += len(pairs)
        if positions:
            self._deadletter.flush(30)  # dead-lettered originals are durable before we move on
            offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                # The batch is durable in the DB; a failed commit only means a harmless replay.
                log.warning("offset commit failed, batch will be re-delivered: %s", exc)

    def _admitted(self, pairs: list[tuple[ValidatedEvent, Message]]) -> list[tuple[ValidatedEvent, Message]]:
        """The events the catalog may store; the others are dead-lettered with the reason."""
        if not pairs:
            return pairs
        datasets = {event.dataset_id for event, _ in pairs}
        facts = self._retrying(lambda session: admission_facts(session, datasets, self._validators))
        departments = [header_text(headers_list(message.headers()), DEPARTMENT) for _, message in pairs]
        admitted, refused = admit(
            [(event, dep) for (event, _), dep in zip(pairs, departments, strict=True)],
            facts,
            self._validators,
        )
        for position, why in refused.items():
            self._reject(pairs[position][1], why.detail, reason=why.reason, outcome="refused")
        return [pairs[position] for position in admitted]

    def _retrying(self, read: Callable[[Session], _T]) -> _T:
        """``read`` in a session, retried with backoff while the database is unavailable."""
        delay = 0.5
        while True:
            try:
                with self._sessions() as session:
                    return read(session)
            except OperationalError as exc:
                delay = self._wait_for_database(exc, delay)

    def _wait_for_database(self, exc: OperationalError, delay: float) -> float:
        """Back off ``delay`` seconds while the database is unavailable (or stop); the next delay."""
        if self._stop.is_set():
            raise CatalogStopping from exc
        self._metrics.db_retries.inc()
        log.warning("database unavailable, retrying in %.1f s: %s", delay, exc.orig)
        time.sleep(delay)
        return min(delay * 2, 30.0)

    def _store(self, pairs: list[tuple[ValidatedEvent, Message]]) -> None:
        """Apply events in one transaction. A database that is unavailable is retried with backoff
        (offsets stay uncommitted: nothing is lost, the partition waits). An event the database
        refuses is isolated by splitting the batch and dead-lettered, so it cannot stall its
        partition."""
        delay = 0.5
        attempts = 0
        while True:
            try:
                with self._metrics.batch_seconds.time(), self._sessions.begin() as session:
                    result = apply_batch(session, events=[event for event, _ in pairs], now=self._clock())
                self._count(result)
                return
            except OperationalError as exc:  # connection lost, server restarting, locked, deadlock
                delay = self._wait_for_database(exc, delay)
            except SQLAlchemyError as exc:
                attempts += 1
                if len(pairs) > 1:
                    middle = len(pairs) // 2
                    self._store(pairs[:middle])
                    self._store(pairs[middle:])
                    return
                if attempts < 2:
                    continue  # a concurrent writer may have raced us once; the ledger settles it
                _, message = pairs[0]
                # Never the error's own text: a driver quotes the refused row (a resident's record).
                why = refusal_text(exc)
                self._reject(message, why, reason=Reason.CATALOG_REJECTED, outcome="rejected")
                return

    def _reject(self, message: Message, why: str, *, reason: Reason, outcome: str) -> None:
        """Dead-letter one validated-topic message with the original bytes and headers."""
        log.error("%s: %s[%s]@%s: %s", reason, message.topic(), message.partition(), message.offset(), why)
        self._metrics.events.labels(outcome).inc()
        # The catalog knows the validated message and the department ingest read it from (its
        # header), not the department's event: no pointer, schema, dataset or event id headers. The
        # department lets a repair send the event back through ingest.
        headers = headers_list(message.headers())
        origin = Origin(message.topic() or "", message.partition(), message.offset())
        verdict = Verdict(reason, why, origin, department=header_text(headers, DEPARTMENT))
        out = deadletter_headers(headers, verdict)
        self._deadletter.produce(
            self._deadletter_topic, value=message.value() or b"", key=message.key(), headers=out
        )

    def _count(self, result: BatchResult) -> None:
        for outcome, count in (
            ("applied", result.applied),
            ("stale", result.stale),
            ("duplicate", result.duplicate),
            ("deleted", result.deleted),
        ):
            if count:
                self._metrics.events.labels(outcome).inc(count)
        for dataset, count in result.applied_by_dataset.items():
            self._metrics.upserted.labels(dataset).inc(count)
