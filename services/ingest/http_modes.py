"""CloudEvents over HTTP, turned into the messages ingest already knows how to judge. Pure.

A department's system that cannot embed a Kafka client posts its events over HTTP in one of the
three modes of the CloudEvents HTTP binding. Each event becomes an ``InboundMessage`` exactly as if
the department had written it to its own ``dept.<id>.events`` topic, so the very same ``route``
decides (strict decoding, envelope, schema, ownership) and a refusal carries the very same reason,
pointer and detail as a dead letter would:

- binary mode: ``ce-*`` headers (percent-decoded, as the HTTP binding encodes them) become the
  Kafka binding's ``ce_*`` headers and ``Content-Type`` its ``content-type``; the body is the data;
- structured mode (``application/cloudevents+json``): the body is the message value, unchanged;
- batched mode (``application/cloudevents-batch+json``): a JSON array, each element sliced out of
  the body byte for byte and judged as one structured event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import unquote_to_bytes

from cityos.kernel.deadletter import Reason, parse_verdict
from cityos.kernel.events import STRUCTURED_CONTENT_TYPE, Header
from services.ingest.routing import InboundMessage, Routed

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_HTTP_CE_PREFIX = "ce-"
_KAFKA_CE_PREFIX = "ce_"


class Mode(StrEnum):
    binary = "binary"
    structured = "structured"
    batch = "batch"


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, lower case, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def mode_of(content_type: str | None) -> Mode | None:
    """Which binding mode a request uses; None for a content type no mode takes (415).

    Binary mode carries the event's data, which the platform takes as JSON only (as on Kafka)."""
    media = media_type(content_type)
    if media == STRUCTURED_CONTENT_TYPE:
        return Mode.structured
    if media == BATCH_CONTENT_TYPE:
        return Mode.batch
    if _is_json(media):
        return Mode.binary
    return None


def binary_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[Header]:
    """The Kafka binary binding's headers for an HTTP binary-mode request.

    ``ce-*`` values are percent-decoded to the bytes they stand for (their UTF-8 is checked by the
    decoder, as for Kafka headers). A request without ``ce-specversion`` still gets the header,
    empty, so the decoder reads it as a binary event and names the missing attribute instead of
    reading the data as an envelope."""
    kafka: list[Header] = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1").lower()
        if name.startswith(_HTTP_CE_PREFIX) and len(name) > len(_HTTP_CE_PREFIX):
            kafka.append((_KAFKA_CE_PREFIX + name[len(_HTTP_CE_PREFIX) :], unquote_to_bytes(raw_value)))
        elif name == "content-type":
            kafka.append(("content-type", raw_value))
    if not any(name == "ce_specversion" for name, _ in kafka):
        kafka.append(("ce_specversion", b""))
    return kafka


_WHITESPACE = frozenset(b" \t\r\n")
_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")


class NotAnArray(ValueError):
    """A batch body that is not a JSON array of values (its elements are never judged one by one)."""


def _skip_space(body: bytes, at: int) -> int:
    while at < len(body) and body[at] in _WHITESPACE:
        at += 1
    return at


def _value_end(body: bytes, at: int) -> int:
    """Where the JSON value starting at ``at`` ends (exclusive): the next top-level ``,`` or the
    array's closing ``]``. Strings are skipped with their escapes; the value's own validity is the
    decoder's business, only the nesting of brackets must balance."""
    depth, in_string, escaped = 0, False, False
    for index in range(at, len(body)):
        byte = body[index]
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
        elif byte in _CLOSE:
            if depth == 0:
                return index
            depth -= 1
        elif byte == _COMMA and depth == 0:
            return index
    raise NotAnArray("the batch ends inside an element")


def _nested(depth: int) -> bytes:
    """A regular expression for a run of JSON text whose brackets balance within ``depth`` levels,
    strings skipped with their escapes: exactly what ``_value_end`` walks, but run by the regex
    engine. Every alternative starts with a different byte, so the possessive quantifiers never
    give up a match the byte walk would have made."""
    inner = rb"(?:" + _PLAIN + rb"|" + _STRING + rb")*+"
    for _ in range(depth):
        inner = rb"(?:" + _PLAIN + rb"|" + _STRING + rb"|[\[{]" + inner + rb"[\]}])*+"
    return inner


_STRING = rb'"(?:[^"\\]++|\\.)*+"'
_PLAIN = rb'[^"\[\]{}]++'
# The strict decoder refuses deeper events anyway; a deeper element is sliced by the byte walk.
_REGEX_DEPTH = 33
_TOP_ELEMENT = re.compile(
    rb"(?:[^\"\[\]{},]++|" + _STRING + rb"|[\[{]" + _nested(_REGEX_DEPTH) + rb"[\]}])*+", re.DOTALL
).match
_ELEMENT_ENDS = frozenset(b",]}")


def _element_end(body: bytes, at: int) -> int:
    """``_value_end``, five times faster on what senders actually send: the regex finds the end in
    one pass; whatever it cannot settle (an unterminated string, deeper nesting, the end of the
    body) is walked byte by byte, so the slicing and its refusals are the byte walk's."""
    found = _TOP_ELEMENT(body, at)  # matches the empty string at worst
    end = found.end() if found is not None else at
    if end < len(body) and body[end] in _ELEMENT_ENDS:
        return end
    return _value_end(body, at)


def split_batch(body: bytes, max_events: int) -> list[bytes]:
    """The elements of a JSON array, each exactly as its bytes stand in ``body`` (whitespace around
    it trimmed). Raises ``NotAnArray``; more than ``max_events`` elements raises ``TooManyEvents``."""
    at = _skip_space(body, 0)
    if at >= len(body) or body[at] != ord("["):
        raise NotAnArray("a batch is a JSON array of structured CloudEvents")
    at = _skip_space(body, at + 1)
    elements: list[bytes] = []
    if at < len(body) and body[at] == ord("]"):
        at += 1
    else:
        while True:
            end = _element_end(body, at)
            element = body[at:end].rstrip()
            if not element:
                raise NotAnArray(f"element {len(elements)} of the batch is empty")
            elements.append(element)
            if len(elements) > max_events:
                raise TooManyEvents(max_events)
            at = end + 1
            if body[end] == ord("]"):
                break
            at = _skip_space(body, at)
    if _skip_space(body, at) != len(body):
        raise NotAnArray("the batch has content after its closing ]")
    return elements


class TooManyEvents(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a batch holds at most {limit} events")
        self.limit = limit


def inbound_messages(
    mode: Mode,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]],
    *,
    topic: str,
    received_ms: int,
    max_batch_events: int,
) -> list[InboundMessage]:
    """One ``InboundMessage`` per event of the request, as read from the department's ``topic``.
    Raises ``NotAnArray`` / ``TooManyEvents`` for a batch that cannot be split."""
    if mode is Mode.binary:
        return [_message(topic, 0, body, binary_headers(headers), received_ms)]
    structured: list[Header] = [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
    if mode is Mode.structured:
        return [_message(topic, 0, body, structured, received_ms)]
    elements = split_batch(body, max_batch_events)
    return [
        _message(topic, index, element, structured, received_ms) for index, element in enumerate(elements)
    ]


def _message(topic: str, index: int, value: bytes, headers: list[Header], received_ms: int) -> InboundMessage:
    # The position within the request stands in for the Kafka offset in a refusal's origin; the
    # time of receipt stands in for a missing event ``time``, as the record timestamp does on Kafka.
    return InboundMessage(topic, 0, index, None, value, headers, received_ms)


# What a sender is told for each refusal, in Japanese and English: what to fix, in product terms.
REASON_TEXT: dict[str, tuple[str, str]] = {
    Reason.MESSAGE_TOO_LARGE: ("イベントが大きすぎます（上限 1 MiB）", "the event is larger than 1 MiB"),
    Reason.INVALID_UTF8: ("UTF-8 ではない文字があります", "the event is not valid UTF-8"),
    Reason.MALFORMED_JSON: ("JSON として読めません", "the event is not valid JSON"),
    Reason.NESTING_TOO_DEEP: ("入れ子が深すぎます（上限 32）", "arrays/objects are nested deeper than 32"),
    Reason.DUPLICATE_KEY: ("同じ項目名が重複しています", "an object repeats a key"),
    Reason.NON_FINITE_NUMBER: ("NaN・無限大の数値は使えません", "NaN, Infinity or an overflowing number"),
    Reason.NUL_CHARACTER: ("文字列に NUL 文字（\\u0000）があります", "a string contains \\u0000"),
    Reason.INVALID_UNICODE: ("対になっていないサロゲートがあります", "a lone UTF-16 surrogate escape"),
    Reason.INVALID_ENVELOPE: (
        "CloudEvents の必須属性が正しくありません",
        "the CloudEvents envelope is invalid",
    ),
    Reason.UNKNOWN_EVENT_TYPE: ("イベントの種類（type）が不明です", "the event type is not a record type"),
    Reason.INVALID_EVENT_TIME: ("time が RFC 3339 形式ではありません", "time is not RFC 3339 with an offset"),
    Reason.FUTURE_EVENT_TIME: ("time が未来すぎます（5 分以上先）", "time is more than 5 minutes ahead"),
    Reason.UNKNOWN_DATASET: ("dataschema のデータセットが存在しません", "dataschema names no dataset"),
    Reason.UNKNOWN_SCHEMA_VERSION: (
        "スキーマのバージョンが登録されていません",
        "the schema version is not registered",
    ),
    Reason.SCHEMA_VIOLATION: ("データがスキーマに合いません", "the data does not match the dataset schema"),
    Reason.MISSING_RECORD_KEY: ("レコードキーがありません", "the data lacks the dataset's record key"),
    Reason.RECORD_RULE_VIOLATED: ("項目間の規則に反しています", "the data breaks a rule across fields"),
    Reason.WRONG_DEPARTMENT: (
        "他の部署のデータセットには送れません",
        "the dataset belongs to another department",
    ),
}
_FALLBACK_TEXT = ("イベントを受け付けられません", "the event was refused")

# Status of a one-event answer by reason; every other refusal is 422 (the request was understood,
# the event is not acceptable).
_STATUS: dict[str, int] = {Reason.MESSAGE_TOO_LARGE: 413, Reason.WRONG_DEPARTMENT: 403}


def status_for(reason: str) -> int:
    return _STATUS.get(reason, 422)


def result_of(index: int, routed: Routed) -> dict[str, Any]:
    """The answer for one routed event, read from what ``route`` decided. Accepted: the record it
    changes. Refused: the reason, pointer, detail and event id the dead letter would have carried
    on Kafka, and what to fix in Japanese and English."""
    if routed.reason is None:
        # The validated topic's key is <dataset>/<record key>; the sender knows the record by its key.
        key = (routed.outbound.key or b"").decode("utf-8", errors="replace").partition("/")[2]
        return {"index": index, "status": "accepted", "dataset": routed.dataset, "key": key}
    headers = [
        (name, value.encode() if isinstance(value, str) else value) for name, value in routed.outbound.headers
    ]
    verdict = parse_verdict(headers)
    reason = str(verdict.reason)
    ja, en = REASON_TEXT.get(reason, _FALLBACK_TEXT)
    return {
        "index": index,
        "status": "refused",
        "id": verdict.event_id or "",
        "dataset": routed.dataset,
        "reason": reason,
        "pointer": verdict.pointer or "",
        "detail": verdict.detail,
        "message_ja": ja,
        "message_en": en,
    }


def answer_status(mode: Mode, reasons: Sequence[str | None]) -> int:
    """202 when every event was accepted (``reasons`` holds None for an accepted event); a single
    refused event answers with its reason's status; a batch with any refusal answers 422 (its
    accepted events are written all the same)."""
    refused = [reason for reason in reasons if reason is not None]
    if not refused:
        return 202
    if mode is not Mode.batch and len(reasons) == 1:
        return status_for(refused[0])
    return 422
