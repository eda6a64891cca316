"""The pure half of CloudEvents over HTTP: modes, batch slicing, binary headers, answer status."""

from __future__ import annotations

import pytest

from services.ingest.http_modes import (
    EventResult,
    Mode,
    NotAnArray,
    TooManyEvents,
    answer_status,
    binary_headers,
    mode_of,
    split_batch,
)


@pytest.mark.parametrize(
    ("content_type", "mode"),
    [
        ("application/cloudevents+json; charset=utf-8", Mode.structured),
        ("Application/CloudEvents-Batch+JSON", Mode.batch),
        ("application/json", Mode.binary),
        ("text/plain", None),
        (None, None),
    ],
)
def test_mode_of(content_type: str | None, mode: Mode | None) -> None:
    assert mode_of(content_type) is mode


def test_batch_elements_are_sliced_byte_for_byte() -> None:
    body = b' [ {"a": "x,]\\"y"} ,\n[1, {"b": 2}], "s" ] '
    assert split_batch(body, 10) == [b'{"a": "x,]\\"y"}', b'[1, {"b": 2}]', b'"s"']
    assert split_batch(b"[]", 10) == []


@pytest.mark.parametrize("body", [b'{"a": 1}', b"[1,", b"[1,]", b"[1] x", b"", b'["open]'])
def test_what_is_not_an_array_is_refused(body: bytes) -> None:
    with pytest.raises(NotAnArray):
        split_batch(body, 10)


def test_batch_count_limit() -> None:
    with pytest.raises(TooManyEvents):
        split_batch(b"[1,2,3]", 2)


def test_binary_headers_are_percent_decoded_and_always_name_specversion() -> None:
    headers = binary_headers([(b"CE-Source", b"/%E5%B8%82"), (b"content-type", b"application/json")])
    assert ("ce_source", "/市".encode()) in headers
    assert ("content-type", b"application/json") in headers
    assert ("ce_specversion", b"") in headers


def test_answer_status() -> None:
    ok, bad = EventResult(0, True, "aed"), EventResult(1, False, "aed", reason="wrong_department")
    assert answer_status(Mode.batch, [ok, ok]) == 202
    assert answer_status(Mode.structured, [bad]) == 403
    assert answer_status(Mode.batch, [ok, bad]) == 422
