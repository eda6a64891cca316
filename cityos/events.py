"""CloudEvents 1.0 envelope: strict decoding of department events (structured and Kafka binary mode).

Decoding is a pure function of bytes + headers; it returns ``Decoded`` or ``Rejected`` and never
raises for bad input, so the ingest loop can dead-letter with a reason and move on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

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
# Strict decoding
# --------------------------------------------------------------------------------------------

MAX_MESSAGE_BYTES = 1024 * 1024
MAX_NESTING_DEPTH = 32
SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
CE_HEADER_PREFIX = "ce_"


class Reason(StrEnum):
    """Why an event was dead-lettered. Stable codes: operators filter and alert on them."""

    MESSAGE_TOO_LARGE = "message_too_large"
    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NESTING_TOO_DEEP = "nesting_too_deep"
    DUPLICATE_KEY = "duplicate_key"
    NON_FINITE_NUMBER = "non_finite_number"
    NUL_CHARACTER = "nul_character"
    INVALID_UNICODE = "invalid_unicode"
    INVALID_ENVELOPE = "invalid_envelope"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    INVALID_EVENT_TIME = "invalid_event_time"
    FUTURE_EVENT_TIME = "future_event_time"
    UNKNOWN_DATASET = "unknown_dataset"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_RECORD_KEY = "missing_record_key"
    WRONG_DEPARTMENT = "wrong_department"


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


class _Refusal(Exception):
    """Internal: aborts JSON parsing with a reason (never escapes this module)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _pairs_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refusal(Reason.DUPLICATE_KEY, f"duplicate object key {key!r}")
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    raise _Refusal(Reason.NON_FINITE_NUMBER, f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400 overflows to inf
        raise _Refusal(Reason.NON_FINITE_NUMBER, f"number {text[:40]} is out of range")
    return value


_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_without_duplicates,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
    strict=True,  # raw control characters inside strings are malformed
)


def _nesting_depth(raw: bytes, limit: int) -> int:
    """Depth of [ and { outside strings, stopping once past ``limit`` (exact only up to it)."""
    depth = 0
    deepest = 0
    in_string = False
    escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _strings(value: Any) -> Iterable[str]:
    """Every string in a parsed JSON value, keys included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_strict_json(raw: bytes) -> Any:
    """Parse UTF-8 JSON refusing what a lenient parser lets through. Raises ``_Refusal``.

    Fast path: orjson already refuses invalid UTF-8, NaN/Infinity, overflowing numbers, lone
    surrogates and raw control characters; what it lets through silently is duplicate keys
    (last one wins), ``\\u0000`` and integers beyond 64 bits (turned into floats). Every key is
    followed by ``":`` in compact JSON, so when the parsed keys number exactly the ``":`` found
    in the bytes no key was dropped. Anything unusual takes the exact path, which also names
    the precise reason for a refusal.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise _Refusal(
            Reason.MESSAGE_TOO_LARGE, f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        )
    if b"\\u0000" not in raw and _LONG_DIGIT_RUN not in raw.translate(_DIGITS_AS_ZERO):
        try:
            value = orjson.loads(raw)  # itself refuses nesting deeper than 1024
        except orjson.JSONDecodeError:
            pass
        else:
            keys, depth = _keys_and_depth(value)
            if depth > MAX_NESTING_DEPTH:
                raise _Refusal(Reason.NESTING_TOO_DEEP, f"nesting deeper than {MAX_NESTING_DEPTH} levels")
            if keys == raw.count(b'":'):
                return value
    return _parse_exact(raw)


# orjson turns integers beyond 64 bits into floats; 19 digits in a row may be such an integer.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19
_CONTAINERS: frozenset[type] = frozenset({dict, list})
_type_of: Callable[[Any], type] = type


def _keys_and_depth(value: Any) -> tuple[int, int]:
    """Number of object keys and nesting depth of a parsed JSON value."""
    keys = 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if type(item) is dict:
            keys += len(item)
            children = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        # map/isdisjoint run in C: a flat object of scalars costs no Python-level loop.
        if not _CONTAINERS.isdisjoint(map(_type_of, children)):
            stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)
    return keys, deepest


def _parse_exact(raw: bytes) -> Any:
    # Counting brackets is a cheap upper bound on depth; only when it exceeds the cap do we
    # scan exactly, which keeps the recursive parser away from deep input.
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING_DEPTH:
        depth = _nesting_depth(raw, MAX_NESTING_DEPTH)
        if depth > MAX_NESTING_DEPTH:
            raise _Refusal(Reason.NESTING_TOO_DEEP, f"nesting deeper than {MAX_NESTING_DEPTH} levels")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refusal(Reason.INVALID_UTF8, f"not UTF-8 at byte {exc.start}") from None
    try:
        value = _STRICT_DECODER.decode(text)
    except _Refusal:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Refusal(Reason.MALFORMED_JSON, f"malformed JSON: {exc}") from None
    if b"\\u0000" in raw and any("\x00" in s for s in _strings(value)):
        raise _Refusal(Reason.NUL_CHARACTER, "strings must not contain U+0000")
    if (b"\\ud" in raw or b"\\uD" in raw) and not all(_is_encodable(s) for s in _strings(value)):
        raise _Refusal(Reason.INVALID_UNICODE, "lone UTF-16 surrogate escape")
    return value


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_event_time(text: str) -> datetime:
    """RFC 3339 timestamp with an explicit offset, as CloudEvents requires. Raises ValueError."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return parsed.astimezone(UTC)


def _header_text(headers: Sequence[Header], name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def _is_binary_mode(headers: Sequence[Header]) -> bool:
    if not headers:
        return False
    content_type = _header_text(headers, "content-type") or ""
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
                raise _Refusal(Reason.INVALID_UTF8, f"header {key} is not UTF-8") from None
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
            raise _Refusal(
                Reason.INVALID_ENVELOPE, f"attribute '{name}' is required and must be a non-empty string"
            )
    if specversion != SPEC_VERSION:
        raise _Refusal(Reason.INVALID_ENVELOPE, f"specversion {specversion!r} is not {SPEC_VERSION}")
    time_text, dataschema, subject = get("time"), get("dataschema"), get("subject")
    for name, value in (("time", time_text), ("dataschema", dataschema), ("subject", subject)):
        if value is not None and type(value) is not str:
            raise _Refusal(Reason.INVALID_ENVELOPE, f"attribute '{name}' must be a string")
    if len(event_id) > 200 or len(source) > 500:
        raise _Refusal(Reason.INVALID_ENVELOPE, "id (200) or source (500) is too long")
    time: datetime | None = None
    if time_text:
        try:
            time = parse_event_time(time_text)
        except ValueError as exc:
            raise _Refusal(Reason.INVALID_EVENT_TIME, f"time {time_text!r}: {exc}") from None
        if time - now > max_future:
            raise _Refusal(Reason.FUTURE_EVENT_TIME, f"time {time_text} is more than {max_future} ahead")
    return Envelope(event_id, source, event_type, time, dataschema, subject, mode)


def parse_structured(value: bytes | None, headers: Sequence[Header]) -> dict[str, Any] | None:
    """The strictly parsed JSON object of a structured-mode message, or None for binary mode and
    for anything refused (``decode_event`` then says why)."""
    if value is None or _is_binary_mode(headers):
        return None
    try:
        document = parse_strict_json(value)
    except _Refusal:
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
                raise _Refusal(Reason.INVALID_ENVELOPE, "a structured CloudEvent must be a JSON object")
            attrs = document
            if "data_base64" in document:
                raise _Refusal(Reason.INVALID_ENVELOPE, "data_base64 is not accepted; send JSON data")
            data = document.get("data")
            envelope = _envelope(attrs, "structured", now, max_future)
    except _Refusal as refusal:
        event_id = attrs.get("id") if isinstance(attrs.get("id"), str) else None
        return Rejected(refusal.reason, refusal.detail, _pointer_for(refusal), event_id)
    return Decoded(envelope, data)


def _pointer_for(refusal: _Refusal) -> str:
    # Attribute problems name the attribute; payload-level problems have no finer position.
    for name in (*_REQUIRED, *_OPTIONAL):
        if f"'{name}'" in refusal.detail or refusal.detail.startswith(f"{name} "):
            return f"/{name}"
    return ""


def json_pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 pointer from path segments."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
