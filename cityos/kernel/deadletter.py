"""The dead-letter header contract: what ingest and the catalog add to a message they refuse, and
how repair, replay, the admin API and the import CLI read it back.

A dead letter keeps the department's key, bytes and headers untouched and appends ``cityos_*``
headers saying why it was refused and where it was read. Operators filter, alert and replay on
these names and bytes, so their names, order, encoding and length limits live here and nowhere else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

PREFIX: Final = "cityos_"  # every header the connector adds; a replay strips them all
REASON: Final = "cityos_reason"
DETAIL: Final = "cityos_detail"
POINTER: Final = "cityos_pointer"
SCHEMA: Final = "cityos_schema"
DATASET: Final = "cityos_dataset"
DEPARTMENT: Final = "cityos_department"
SOURCE_TOPIC: Final = "cityos_source_topic"
SOURCE_PARTITION: Final = "cityos_source_partition"
SOURCE_OFFSET: Final = "cityos_source_offset"
EVENT_ID: Final = "cityos_event_id"
REPLAY_OF: Final = "cityos_replay_of"  # on a replayed message: <dead-letter topic>/<partition>/<offset>
# sha256 (hex) of what makes a dead letter the same one again: ingest writes the same event with the
# same verdict once, and remembers recent fingerprints from this header (see ``fingerprint``).
FINGERPRINT: Final = "cityos_fingerprint"

# Longest values written, in bytes: a department controls these texts, and a broker refuses
# oversized records. The cut is on bytes, so it may split a character; readers decode leniently.
DETAIL_MAX_BYTES: Final = 1000
SCHEMA_MAX_BYTES: Final = 500
EVENT_ID_MAX_BYTES: Final = 200

Header = tuple[str, bytes | None]


class Reason(StrEnum):
    """Why an event was dead-lettered. Stable codes: operators filter and alert on them."""

    # ingest: the bytes
    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NESTING_TOO_DEEP = "nesting_too_deep"
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE_NUMBER = "non_finite_number"
    NUL_CHARACTER = "nul_character"
    INVALID_UNICODE = "invalid_unicode"
    # ingest: the CloudEvent envelope
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_EVENT_TIME = "invalid_event_time"
    FUTURE_EVENT_TIME = "future_event_time"
    # ingest: the dataset and its schema
    UNKNOWN_DATASET = "unknown_dataset"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_RECORD_KEY = "missing_record_key"
    RECORD_RULE_VIOLATED = "record_rule_violated"  # a rule of the dataset's record_rules, across fields
    WRONG_DEPARTMENT = "wrong_department"
    # catalog: a validated-topic message it cannot read / the database refused / it must not store
    UNDECODABLE_VALIDATED_EVENT = "undecodable_validated_event"
    CATALOG_REJECTED = "catalog_rejected"
    RELEASE_DATASET = "release_dataset"  # records of an anonymized release come only from the gate


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Origin:
    """Where the refused message was read; a replay sends it back to ``topic``."""

    topic: str
    partition: int | None
    offset: int | None


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Verdict:
    """Why a message was dead-lettered and where it came from.

    Ingest knows the event, so it sets every optional field (an empty text where nothing is
    known); the catalog refuses a validated message and leaves them None. None means the header is
    not written, and a parsed header that is absent reads back as None.
    """

    reason: Reason | str  # a code this build does not know stays text, so it can still be listed
    detail: str
    origin: Origin
    pointer: str | None = None  # JSON pointer into the event, e.g. /data/緯度
    schema: str | None = None  # the dataschema URI the event named
    dataset: str | None = None
    department: str | None = None
    event_id: str | None = None
    fingerprint: str | None = None  # see ``fingerprint``; only ingest writes it


def fingerprint(
    topic: str, key: bytes | None, value: bytes | None, headers: Iterable[Header], reason: str
) -> str:
    """What identifies "the same dead letter again": the department's topic, key, headers and bytes
    (the CloudEvent ``source`` and ``id`` are read from these, so equal inputs are the same event
    with the same bytes) and the refusal's reason (an event refused for a new reason -- a schema
    version registered since, say -- is worth a new dead letter). Every part is length-prefixed so
    no two different inputs concatenate alike; ``cityos_*`` headers are left out, as on a replay."""
    digest = hashlib.sha256()

    def part(data: bytes | None) -> None:
        if data is None:
            digest.update(b"\xff" * 8)  # absent differs from empty
            return
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)

    part(topic.encode("utf-8", errors="replace"))
    part(key)
    part(value)
    for name, data in original_headers(headers):
        part(name.encode("utf-8", errors="replace"))
        part(data)
    part(reason.encode())
    return digest.hexdigest()


def _text(value: str, limit: int | None = None) -> bytes:
    data = value.encode("utf-8", errors="replace")
    return data if limit is None else data[:limit]


def verdict_headers(verdict: Verdict) -> list[tuple[str, bytes]]:
    """The ``cityos_*`` headers of ``verdict``, in the order operators' tools expect."""
    origin = verdict.origin
    optional = (
        (POINTER, verdict.pointer, None),
        (SCHEMA, verdict.schema, SCHEMA_MAX_BYTES),
        (DATASET, verdict.dataset, None),
        (DEPARTMENT, verdict.department, None),
    )
    headers = [(REASON, _text(verdict.reason)), (DETAIL, _text(verdict.detail, DETAIL_MAX_BYTES))]
    headers += [(name, _text(value, limit)) for name, value, limit in optional if value is not None]
    headers += [
        (SOURCE_TOPIC, _text(origin.topic)),
        (SOURCE_PARTITION, str(origin.partition).encode()),
        (SOURCE_OFFSET, str(origin.offset).encode()),
    ]
    if verdict.event_id is not None:
        headers.append((EVENT_ID, _text(verdict.event_id, EVENT_ID_MAX_BYTES)))
    if verdict.fingerprint is not None:
        headers.append((FINGERPRINT, verdict.fingerprint.encode("ascii")))
    return headers


def deadletter_headers(original: Iterable[Header], verdict: Verdict) -> list[tuple[str, str | bytes]]:
    """All headers of a dead letter: the department's own as sent (a header without a value cannot
    be produced again), then the verdict."""
    headers: list[tuple[str, str | bytes]] = [(k, v) for k, v in original if v is not None]
    headers += verdict_headers(verdict)
    return headers


def original_headers(headers: Iterable[Header]) -> list[tuple[str, bytes]]:
    """The headers the department sent: the ``cityos_*`` ones were added on the way."""
    return [(k, v) for k, v in headers if v is not None and not k.startswith(PREFIX)]


def parse_verdict(headers: Iterable[Header]) -> Verdict:
    """Read the verdict back from a dead letter's headers. Never raises: an absent header reads as
    None (the reason and detail as ""), bytes that are not UTF-8 are replaced, and the last
    occurrence of a name wins, because a message dead-lettered twice carries the newest verdict
    last."""
    found: dict[str, str] = {}
    for key, value in headers:
        if key.startswith(PREFIX) and value is not None:
            found[key] = value.decode("utf-8", errors="replace")
    get = found.get
    return Verdict(
        reason=_reason(get(REASON, "")),
        detail=get(DETAIL, ""),
        origin=Origin(get(SOURCE_TOPIC, ""), _number(get(SOURCE_PARTITION)), _number(get(SOURCE_OFFSET))),
        pointer=get(POINTER),
        schema=get(SCHEMA),
        dataset=get(DATASET),
        department=get(DEPARTMENT),
        event_id=get(EVENT_ID),
        fingerprint=get(FINGERPRINT),
    )


def _reason(text: str) -> Reason | str:
    try:
        return Reason(text)
    except ValueError:
        return text


def _number(text: str | None) -> int | None:
    if text is None or not text.isascii():
        return None
    try:
        return int(text)
    except ValueError:
        return None
