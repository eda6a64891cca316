"""CloudEvents 1.0 envelope: strict decoding of department events (structured and Kafka binary mode).

Decoding is a pure function of bytes + headers; it returns ``Decoded`` or ``Rejected`` and never
raises for bad input, so the ingest loop can dead-letter with a reason and move on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cityos.kernel.deadletter import Reason
from cityos.kernel.strictjson import Refusal, parse_strict_json
from cityos.kernel.timeutil import require_aware

__all__ = ["parse_strict_json"]  # re-exported: callers see one decoding module

# Record change types a department may send.
TYPE_UPSERTED = "jp.cityos.record.upserted"
TYPE_DELETED = "jp.cityos.record.deleted"
RECORD_EVENT_TYPES = frozenset({TYPE_UPSERTED, TYPE_DELETED})


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class ValidatedEvent:
    """A validated record change as the catalog consumes it from the validated topic."""

    dataset_id: str
    record_key: str
    schema_version: int
    source: str
    id: str
    type: str
    time: datetime  # timezone-aware
    data: dict[str, Any] | None  # None for deletions
    partition: int
    offset: int

    @property
    def is_deletion(self) -> bool:
        return self.type == TYPE_DELETED


# --------------------------------------------------------------------------------------------
# Envelope decoding (the JSON itself is parsed strictly by cityos.kernel.strictjson)
# --------------------------------------------------------------------------------------------

SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
CE_HEADER_PREFIX = "ce_"


Header = tuple[str, bytes | None]


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Envelope:
    """The CloudEvents context attributes we rely on."""

    id: str
    source: str
    type: str
    time: datetime | None
    dataschema: str | None
    subject: str | None
    mode: str  # "structured" | "binary"


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Decoded:
    """A well-formed CloudEvent; its data is not yet checked against the dataset schema."""

    envelope: Envelope
    data: Any


@dataclass(slots=True)  # not frozen: frozen construction costs 4x on the hot path
class Rejected:
    """Bad input: the reason code, a JSON pointer into the message where known, and a sentence."""

    reason: Reason
    detail: str
    pointer: str = ""
    event_id: str | None = None


def parse_event_time(text: str) -> datetime:
    """RFC 3339 timestamp with an explicit offset, as CloudEvents requires. Raises ValueError."""
    try:
        return require_aware(datetime.fromisoformat(text), "timestamp")
    except OverflowError:
        # An offset that pushes the first or last representable day out of range in UTC.
        raise ValueError(f"timestamp {text[:40]!r} is out of range") from None


def header_text(headers: Sequence[Header], name: str) -> str | None:
    """The first value of Kafka header ``name`` as text, or None."""
    for key, value in headers:
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def _is_binary_mode(headers: Sequence[Header]) -> bool:
    if not headers:
        return False
    content_type = header_text(headers, "content-type") or ""
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        return False
    return any(key == "ce_specversion" for key, _ in headers)


_REQUIRED = ("specversion", "id", "source", "type")
_OPTIONAL = ("time", "dataschema", "subject")


def _attributes_from_headers(headers: Sequence[Header]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, value in headers:
        if key.startswith(CE_HEADER_PREFIX) and value is not None:
            try:
                attrs[key[len(CE_HEADER_PREFIX) :]] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise Refusal(Reason.INVALID_UTF8, f"header {key} is not UTF-8") from None
    return attrs


def _envelope(attrs: dict[str, Any], mode: str, now: datetime, max_future: timedelta) -> Envelope:
    get: Callable[[str], Any] = attrs.get  # Any: the checks below establish the types
    specversion, event_id, source, event_type = get("specversion"), get("id"), get("source"), get("type")
    for name, value in (
        ("specversion", specversion),
        ("id", event_id),
        ("source", source),
        ("type", event_type),
    ):
        if type(value) is not str or not value:
            raise Refusal(
                Reason.INVALID_ENVELOPE, f"attribute '{name}' is required and must be a non-empty string"
            )
    if specversion != SPEC_VERSION:
        raise Refusal(Reason.INVALID_ENVELOPE, f"specversion {specversion!r} is not {SPEC_VERSION}")
    time_text, dataschema, subject = get("time"), get("dataschema"), get("subject")
    for name, value in (("time", time_text), ("dataschema", dataschema), ("subject", subject)):
        if value is not None and type(value) is not str:
            raise Refusal(Reason.INVALID_ENVELOPE, f"attribute '{name}' must be a string")
    if len(event_id) > 200 or len(source) > 500:
        raise Refusal(Reason.INVALID_ENVELOPE, "id (200) or source (500) is too long")
    time: datetime | None = None
    if time_text:
        try:
            time = parse_event_time(time_text)
        except ValueError as exc:
            raise Refusal(Reason.INVALID_EVENT_TIME, f"time {time_text!r}: {exc}") from None
        if time - now > max_future:
            raise Refusal(Reason.FUTURE_EVENT_TIME, f"time {time_text} is more than {max_future} ahead")
    return Envelope(event_id, source, event_type, time, dataschema, subject, mode)


def parse_structured(value: bytes | None, headers: Sequence[Header]) -> dict[str, Any] | None:
    """The strictly parsed JSON object of a structured-mode message, or None for binary mode and
    for anything refused (``decode_event`` then says why)."""
    if value is None or _is_binary_mode(headers):
        return None
    try:
        document = parse_strict_json(value)
    except Refusal:
        return None
    return document if type(document) is dict else None


def decode_event(
    value: bytes | None,
    headers: Sequence[Header],
    *,
    now: datetime,
    max_future: timedelta = timedelta(minutes=5),
) -> Decoded | Rejected:
    """Decode one Kafka message as a CloudEvent, structured or binary mode, strictly."""
    raw = value or b""
    attrs: dict[str, Any] = {}
    try:
        if _is_binary_mode(headers):
            attrs = _attributes_from_headers(headers)
            data = parse_strict_json(raw)
            envelope = _envelope(attrs, "binary", now, max_future)
        else:
            document = parse_strict_json(raw)
            if not isinstance(document, dict):
                raise Refusal(Reason.INVALID_ENVELOPE, "a structured CloudEvent must be a JSON object")
            attrs = document
            if "data_base64" in document:
                raise Refusal(Reason.INVALID_ENVELOPE, "data_base64 is not accepted; send JSON data")
            data = document.get("data")
            envelope = _envelope(attrs, "structured", now, max_future)
    except Refusal as refusal:
        event_id = attrs.get("id") if isinstance(attrs.get("id"), str) else None
        return Rejected(refusal.reason, refusal.detail, _pointer_for(refusal), event_id)
    return Decoded(envelope, data)


def _pointer_for(refusal: Refusal) -> str:
    # Attribute problems name the attribute; payload-level problems have no finer position.
    for name in (*_REQUIRED, *_OPTIONAL):
        if f"'{name}'" in refusal.detail or refusal.detail.startswith(f"{name} "):
            return f"/{name}"
    return ""


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 pointer from path segments."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
