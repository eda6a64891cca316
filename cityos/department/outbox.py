"""Department side: turn records into CloudEvents and send them to the department's topic.

Used by ``cityos import-csv``, ``cityos demo`` and ``cityos records delete``; a departmental system
would do the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from cityos.kernel.errors import DeliveryFailed
from cityos.kernel.events import STRUCTURED_CONTENT_TYPE, TYPE_DELETED, TYPE_UPSERTED
from cityos.kernel.kafka_access import KafkaAccess

if TYPE_CHECKING:
    from cityos.kernel.schemas import SchemaSet
    from cityos.kernel.settings import Settings

# Structured mode, said explicitly: consumers need not guess from the absence of ce_* headers.
STRUCTURED_HEADERS: list[tuple[str, str | bytes]] = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def record_event(
    *,
    record: dict[str, Any],
    dataschema: str,
    source: str,
    event_id: str,
    subject: str | None = None,
    time: datetime | None = None,
    event_type: str = TYPE_UPSERTED,
) -> bytes:
    """A structured-mode CloudEvent (JSON) carrying one record."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": (time or datetime.now(UTC)).isoformat(),
        "dataschema": dataschema,
        "datacontenttype": "application/json",
        "data": record,
    }
    if subject is not None:
        body["subject"] = subject
    return orjson.dumps(body)


def upsert_events(
    schema_set: SchemaSet,
    settings: Settings,
    dataset_id: str,
    records: Iterable[dict[str, Any]],
    *,
    origin: str,
    id_prefix: str,
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one upsert per record, as the owning department sends it: on its topic,
    keyed ``<dataset>/<record key>``, from ``/departments/<department>/<origin>``, with the event id
    ``<id_prefix>-<record key>`` (the same record gets the same id when sent again)."""
    meta = schema_set.datasets[dataset_id]
    version = schema_set.latest(dataset_id)
    topic = settings.department_topic(meta.department)
    source = f"/departments/{meta.department}/{origin}"
    for record in records:
        key = str(record[meta.record_key])
        value = record_event(
            record=record,
            dataschema=version.uri,
            source=source,
            event_id=f"{id_prefix}-{key}",
            subject=key,
        )
        yield topic, f"{dataset_id}/{key}".encode(), value


def deletion_events(
    schema_set: SchemaSet,
    settings: Settings,
    dataset_id: str,
    keys: Iterable[str],
    *,
    origin: str,
    id_prefix: str,
) -> Iterator[tuple[str, bytes, bytes]]:
    """(topic, key, value) of one deletion per record key, sent like ``upsert_events`` sends upserts:
    the data names the record only, the event id is ``<id_prefix>-<record key>``."""
    meta = schema_set.datasets[dataset_id]
    version = schema_set.latest(dataset_id)
    topic = settings.department_topic(meta.department)
    source = f"/departments/{meta.department}/{origin}"
    for key in keys:
        value = record_event(
            record={meta.record_key: key},
            dataschema=version.uri,
            source=source,
            event_id=f"{id_prefix}-{key}",
            subject=key,
            event_type=TYPE_DELETED,
        )
        yield topic, f"{dataset_id}/{key}".encode(), value


class EventSender:
    """Idempotent producer that remembers the first delivery failure and raises it on flush."""

    def __init__(self, kafka: KafkaAccess, **overrides: Any) -> None:
        from cityos.kernel.kafka import producer_config

        self._producer = Producer(producer_config(kafka, **overrides))
        self._failure: str | None = None
        self.acknowledged = 0
        # Where each tracked message landed: (topic, partition) -> {offset: tag}. The import asks
        # ingest's committed position about these offsets to learn which rows it has handled.
        self.positions: dict[tuple[str, int], dict[int, str]] = {}

    def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes]] | None = None,
        track: str | None = None,
    ) -> None:
        """Queue one message; with ``track``, remember its partition and offset under that tag."""
        on_delivery = partial(self._delivered, track)
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers or [], on_delivery=on_delivery
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if self._failure is not None:
            raise DeliveryFailed(self._failure)
        if remaining:
            raise DeliveryFailed(f"{remaining} messages not acknowledged within {timeout_s} s")

    def _delivered(self, track: str | None, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            if self._failure is None:
                self._failure = str(err)
            return
        self.acknowledged += 1
        partition, offset = msg.partition(), msg.offset()
        if track is not None and partition is not None and offset is not None:
            self.positions.setdefault((msg.topic() or "", partition), {})[offset] = track
