"""The ingest decision as a pure function: one inbound Kafka message -> one outbound message.

Valid events go to the validated topic, normalised to structured-mode CloudEvents and keyed by
``<dataset>/<record key>`` so every change of a record lands on one partition, in order.
Everything else goes to the dead-letter topic with the original bytes and headers untouched
plus ``cityos_*`` headers that say why and where it came from.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from cityos.kernel.deadletter import (
    DEPARTMENT,
    REPLAY_OF,
    Origin,
    Reason,
    Verdict,
    deadletter_headers,
    fingerprint,
)
from cityos.kernel.events import Decoded, Header, Rejected, decode_event, parse_structured
from cityos.kernel.validation import ValidatorRegistry, ValidRecord, parse_schema_uri

_DEPARTMENT_TOPIC = re.compile(r"dept\.(?P<department>[a-z0-9-]+)\.events$")
UNKNOWN = "unknown"  # label value for anything outside the bounded sets


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class InboundMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]
    timestamp_ms: int | None  # Kafka record timestamp, used when the event has no time


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class OutboundMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes]]
    timestamp_ms: int | None = None  # None: the producer stamps the current time


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Routed:
    """Where a message goes and the bounded labels to count it by."""

    outbound: OutboundMessage
    department: str
    dataset: str
    reason: Reason | None  # None when valid
    # A dead letter's identity (``cityos.kernel.deadletter.fingerprint``): ingest writes a second
    # one with the same fingerprint only for a replay, which an operator asked for explicitly.
    fingerprint: str | None = None
    replay: bool = False


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Topics:
    validated: str
    deadletter: str


@functools.lru_cache(maxsize=1024)
def department_of(topic: str) -> str | None:
    """The department a topic belongs to (any environment prefix before ``dept.`` is ignored).
    Cached: a process sees a handful of topics, and this runs for every message."""
    match = _DEPARTMENT_TOPIC.search(topic)
    if match is None or (match.start() > 0 and topic[match.start() - 1] != "."):
        return None
    return match["department"]


def accept_fast(
    value: bytes | None,
    headers: list[Header],
    department: str,
    *,
    registry: ValidatorRegistry,
    now: datetime,
    max_future: timedelta,
) -> tuple[bytes, str] | None:
    """The validated-topic key and dataset of a good structured upsert sent by the department that
    publishes its dataset, found by one strict parse and one compiled validation; None when
    ``route``'s explaining path must decide (it may still accept). Pure, never raises for bad input.
    """
    document = parse_structured(value, headers)
    record = registry.accept(document, now, max_future) if document is not None else None
    if record is None:
        return None
    owner = registry.dataset(record.dataset_id)
    if owner is not None and owner.department != department:
        return None
    return f"{record.dataset_id}/{record.record_key}".encode(), record.dataset_id


def validated_headers(department: str) -> list[tuple[str, str | bytes]]:
    """Headers of a validated event: the department ingest read it from (its topic, which only
    that department may write), so the catalog can check the owner again before storing."""
    return [(DEPARTMENT, department.encode())]


def route(
    message: InboundMessage,
    *,
    registry: ValidatorRegistry,
    topics: Topics,
    now: datetime,
    max_future: timedelta,
) -> Routed:
    """Decide the fate of one message. Pure: no I/O, never raises for bad input."""
    department = department_of(message.topic) or UNKNOWN
    # Fast path: a well-formed structured upsert is accepted by one compiled validation and
    # forwarded byte for byte. The Kafka timestamp is carried over: it stands in for a missing
    # ``time``.
    fast = accept_fast(
        message.value, message.headers, department, registry=registry, now=now, max_future=max_future
    )
    if fast is not None and message.value is not None:
        key, dataset = fast
        out = OutboundMessage(
            topics.validated, key, message.value, validated_headers(department), message.timestamp_ms
        )
        return Routed(out, department, dataset, None)
    return _explained(message, department, registry=registry, topics=topics, now=now, max_future=max_future)


def _explained(
    message: InboundMessage,
    department: str,
    *,
    registry: ValidatorRegistry,
    topics: Topics,
    now: datetime,
    max_future: timedelta,
) -> Routed:
    """The explaining path: decodes again and names the precise reason for any refusal."""
    decoded = decode_event(message.value, message.headers, now=now, max_future=max_future)
    if isinstance(decoded, Rejected):
        return _deadletter(message, decoded, department, UNKNOWN, "", topics)
    schema = decoded.envelope.dataschema or ""
    record = registry.validate(decoded)
    if isinstance(record, Rejected):
        return _deadletter(message, record, department, _dataset_label(registry, schema), schema, topics)
    owner = registry.dataset(record.dataset_id)
    if owner is not None and owner.department != department:
        refusal = Rejected(
            Reason.WRONG_DEPARTMENT,
            f"dataset {record.dataset_id!r} is published by {owner.department!r}, not {department!r}",
            "/dataschema",
            decoded.envelope.id,
        )
        return _deadletter(message, refusal, department, record.dataset_id, schema, topics)
    key = f"{record.dataset_id}/{record.record_key}".encode()
    value = _structured_value(message, decoded, record)
    out = OutboundMessage(topics.validated, key, value, validated_headers(department), message.timestamp_ms)
    return Routed(out, department, record.dataset_id, None)


def _dataset_label(registry: ValidatorRegistry, schema: str) -> str:
    parsed = parse_schema_uri(schema)
    if parsed and registry.dataset(parsed[0]) is not None:
        return parsed[0]
    return UNKNOWN


def _structured_value(message: InboundMessage, decoded: Decoded, record: ValidRecord) -> bytes:
    """The event as the department sent it: structured mode passes through byte for byte
    (lossless, and cheaper than re-encoding); binary mode becomes the equivalent structured JSON,
    so the validated topic has one format."""
    envelope = decoded.envelope
    if envelope.mode == "structured" and message.value is not None:
        return message.value
    body: dict[str, object] = {
        "specversion": "1.0",
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "dataschema": envelope.dataschema,
        "datacontenttype": "application/json",
        "data": record.data,
    }
    if envelope.time is not None:
        body["time"] = envelope.time.isoformat()
    if envelope.subject is not None:
        body["subject"] = envelope.subject
    return orjson.dumps(body)


def _deadletter(
    message: InboundMessage, refusal: Rejected, department: str, dataset: str, schema: str, topics: Topics
) -> Routed:
    identity = fingerprint(message.topic, message.key, message.value, message.headers, refusal.reason)
    verdict = Verdict(
        reason=refusal.reason,
        detail=refusal.detail,
        origin=Origin(message.topic, message.partition, message.offset),
        pointer=refusal.pointer,
        schema=schema,
        dataset=dataset,
        department=department,
        event_id=refusal.event_id or "",
        fingerprint=identity,
    )
    headers = deadletter_headers(message.headers, verdict)
    outbound = OutboundMessage(
        topics.deadletter, message.key, message.value or b"", headers, message.timestamp_ms
    )
    replay = any(name == REPLAY_OF for name, _value in message.headers)
    return Routed(outbound, department, dataset, refusal.reason, identity, replay)
