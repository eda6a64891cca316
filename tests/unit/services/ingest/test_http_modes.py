"""The pure half of CloudEvents over HTTP: modes, batch slicing, binary headers, answer status."""

from __future__ import annotations

import pytest

from services.ingest import http_modes
from services.ingest.http_modes import (
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
    ok, bad = None, "wrong_department"
    assert answer_status(Mode.batch, [ok, ok]) == 202
    assert answer_status(Mode.structured, [bad]) == 403
    assert answer_status(Mode.batch, [ok, bad]) == 422


# Elements the fast slicer must cut exactly where the byte walk cuts: escapes, brackets and commas
# inside strings, mismatched brackets, nesting deeper than the regex follows, unterminated strings.
_TRICKY = [
    b'{"a": "x,]\\"y"}',
    b'{"a": "\\\\", "b": [1, {"c": "]}"}]}',
    b'[1, [2, [3, {"d": "\\u005d"}]]]',
    b'{"a": [}',
    b"[" * 40 + b"]" * 40,
    b'{"open": "never closed, ]',
    '{"名称": "施設,]"}'.encode(),
    b"\x0c1",
    b"nul\x00, 2",
]


@pytest.mark.parametrize("element", _TRICKY)
def test_the_fast_slicer_cuts_where_the_byte_walk_does(element: bytes) -> None:
    for body in (b"[" + element + b"]", b"[" + element + b", 7]", b"[" + element):
        try:
            expected = http_modes._value_end(body, 1)
        except NotAnArray:
            with pytest.raises(NotAnArray):
                http_modes._element_end(body, 1)
        else:
            assert http_modes._element_end(body, 1) == expected
