"""Strict decoding: every kind of bad input gets its own reason code; good events decode."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cityos.kernel.deadletter import Reason
from cityos.kernel.events import Decoded, Rejected, decode_event
from cityos.kernel.strictjson import MAX_MESSAGE_BYTES, MAX_NESTING_DEPTH

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def structured(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/departments/fire/aed-system",
        "type": "jp.cityos.record.upserted",
        "time": "2026-11-27T11:59:00+09:00",
        "dataschema": "https://cityos.example/schemas/aed/1",
        "data": {"NO": "1", "名称": "焼津市役所"},
    }
    event.update(overrides)
    return event


def encode(event: object) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def test_structured_event_decodes_with_japanese_data() -> None:
    result = decode_event(encode(structured()), [], now=NOW)
    assert isinstance(result, Decoded)
    assert result.envelope.mode == "structured"
    assert result.data == {"NO": "1", "名称": "焼津市役所"}
    assert result.envelope.time == datetime(2026, 11, 27, 2, 59, tzinfo=UTC)


def test_binary_mode_event_reads_ce_headers() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"b-1"),
        ("ce_source", b"/departments/fire/x"),
        ("ce_type", b"jp.cityos.record.upserted"),
        ("ce_dataschema", b"https://cityos.example/schemas/aed/1"),
        ("content-type", b"application/json"),
    ]
    result = decode_event(encode({"NO": "7"}), headers, now=NOW)
    assert isinstance(result, Decoded)
    assert result.envelope.mode == "binary"
    assert result.envelope.id == "b-1"
    assert result.envelope.time is None
    assert result.data == {"NO": "7"}


def deep(levels: int) -> bytes:
    return b'{"specversion":"1.0","data":' + b"[" * levels + b"]" * levels + b"}"


BAD_INPUTS = [
    pytest.param(b'{"specversion": "1.0", "id": ', Reason.MALFORMED_JSON, id="malformed-json"),
    pytest.param(b'{"id": "\xff\xfe"}', Reason.INVALID_UTF8, id="non-utf8"),
    pytest.param(b"{" + b" " * MAX_MESSAGE_BYTES + b"}", Reason.MESSAGE_TOO_LARGE, id="over-1-MiB"),
    pytest.param(deep(10_000), Reason.NESTING_TOO_DEEP, id="nesting-10000"),
    pytest.param(b'{"id": "a", "id": "b"}', Reason.DUPLICATE_KEY, id="duplicate-keys"),
    pytest.param(b'{"data": {"x": NaN}}', Reason.NON_FINITE_NUMBER, id="nan"),
    pytest.param(b'{"data": {"x": -Infinity}}', Reason.NON_FINITE_NUMBER, id="infinity"),
    pytest.param(b'{"data": {"x": 1e999}}', Reason.NON_FINITE_NUMBER, id="overflow-to-inf"),
    pytest.param(b'{"data": {"x": "a\\u0000b"}}', Reason.NUL_CHARACTER, id="nul-escape"),
    pytest.param(b'{"data": {"\\u0000": 1}}', Reason.NUL_CHARACTER, id="nul-in-key"),
    pytest.param(b'{"data": {"x": "\\ud800"}}', Reason.INVALID_UNICODE, id="lone-surrogate"),
    pytest.param(encode([1, 2]), Reason.INVALID_ENVELOPE, id="not-an-object"),
    pytest.param(encode(structured(specversion="0.3")), Reason.INVALID_ENVELOPE, id="old-specversion"),
    pytest.param(encode(structured(id="")), Reason.INVALID_ENVELOPE, id="empty-id"),
    pytest.param(encode(structured(time="yesterday")), Reason.INVALID_EVENT_TIME, id="bad-time"),
    pytest.param(encode(structured(time="2026-11-27T12:00:00")), Reason.INVALID_EVENT_TIME, id="naive-time"),
    pytest.param(
        encode(structured(time=(NOW + timedelta(minutes=6)).isoformat())),
        Reason.FUTURE_EVENT_TIME,
        id="future",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), BAD_INPUTS)
def test_bad_input_is_rejected_with_its_own_reason(raw: bytes, reason: Reason) -> None:
    result = decode_event(raw, [], now=NOW)
    assert isinstance(result, Rejected), result
    assert result.reason is reason
    assert result.detail


def test_depth_at_the_cap_is_accepted() -> None:
    data = "[" * (MAX_NESTING_DEPTH - 1) + "]" * (MAX_NESTING_DEPTH - 1)
    raw = encode(structured()).replace(b'"data": {', b'"deep": ' + data.encode() + b', "data": {')
    assert isinstance(decode_event(raw, [], now=NOW), Decoded)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    raw = encode(structured(data={"NO": "1", "note": "[" * 500 + "{" * 500}))
    assert isinstance(decode_event(raw, [], now=NOW), Decoded)


def test_slightly_future_time_within_skew_is_accepted() -> None:
    raw = encode(structured(time=(NOW + timedelta(minutes=4)).isoformat()))
    assert isinstance(decode_event(raw, [], now=NOW), Decoded)


def test_rejection_keeps_the_event_id_when_known() -> None:
    result = decode_event(encode(structured(id="keep-me", time="not-a-time")), [], now=NOW)
    assert isinstance(result, Rejected)
    assert result.event_id == "keep-me"
    assert result.pointer == "/time"


def test_binary_mode_with_non_utf8_header_is_rejected() -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"\xff")]
    result = decode_event(b"{}", headers, now=NOW)
    assert isinstance(result, Rejected)
    assert result.reason is Reason.INVALID_UTF8
