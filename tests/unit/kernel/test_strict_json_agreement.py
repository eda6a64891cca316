"""The strict parser's fast path (orjson after a look at the bytes) and its exact path (the
standard library with every rule spelled out) must agree on every input: the same value, or a
refusal with the same reason. The fast path may only hand over to the exact path, never differ."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.kernel.deadletter import Reason
from cityos.kernel.strictjson import MAX_NESTING_DEPTH, Refusal, _parse_exact, parse_strict_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=40,
)


def verdict(parse: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", parse(raw)
    except Refusal as refusal:
        return "refused", refusal.reason


def assert_agree(raw: bytes) -> None:
    fast, exact = verdict(parse_strict_json, raw), verdict(_parse_exact, raw)
    assert fast == exact, raw[:300]
    if fast[0] == "value":  # equal values, and the same types (an int stays an int)
        assert json.dumps(fast[1], sort_keys=True) == json.dumps(exact[1], sort_keys=True)


def spellings(value: Any) -> list[bytes]:
    texts = [
        json.dumps(value),
        json.dumps(value, ensure_ascii=False),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False),
        json.dumps(value, indent=1),
    ]
    return [text.encode("utf-8", errors="surrogatepass") for text in texts]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(value=values)
def test_generated_documents_get_the_same_verdict(value: Any) -> None:
    for raw in spellings(value):
        assert_agree(raw)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    value=st.dictionaries(st.sampled_from(["id", "data", "a", "b"]), values, min_size=1, max_size=4),
    extra=values,
)
def test_duplicated_keys_are_refused_by_both(value: dict[str, Any], extra: Any) -> None:
    # A second copy of a key, spliced into the text: a lenient parser keeps the last one silently.
    key = next(iter(value))
    raw = json.dumps(value, ensure_ascii=False)
    spliced = raw[:-1] + f", {json.dumps(key)}: {json.dumps(extra, ensure_ascii=False)}}}"
    data = spliced.encode("utf-8", errors="surrogatepass")
    assert_agree(data)
    assert verdict(parse_strict_json, data)[0] == "refused"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_get_the_same_verdict(raw: bytes) -> None:
    assert_agree(raw)


CASES = [
    (b'{"a": 1, "a": 2}', Reason.DUPLICATE_KEY),
    (b'{"data": {"a": 1, "a": 1}, "b": 2}', Reason.DUPLICATE_KEY),
    (b'{"x": "\\":", "a": 1, "a": 2}', Reason.DUPLICATE_KEY),
    (b'{"a": NaN}', Reason.NON_FINITE_NUMBER),
    (b'{"a": 1e400}', Reason.NON_FINITE_NUMBER),
    (b'{"a": "x\\u0000"}', Reason.NUL_CHARACTER),
    (b'{"a": "\\ud800"}', Reason.INVALID_UNICODE),
    (b'{"a": "\xff"}', Reason.INVALID_UTF8),
    (b"[" * (MAX_NESTING_DEPTH + 1) + b"]" * (MAX_NESTING_DEPTH + 1), Reason.NESTING_TOO_DEEP),
    (b'{"a":' * (MAX_NESTING_DEPTH + 1) + b"1" + b"}" * (MAX_NESTING_DEPTH + 1), Reason.NESTING_TOO_DEEP),
    (b" " * (1024 * 1024 + 1), Reason.MESSAGE_TOO_LARGE),
]


@pytest.mark.parametrize(("raw", "reason"), CASES)
def test_each_strict_rule_is_refused_with_its_reason(raw: bytes, reason: Reason) -> None:
    with pytest.raises(Refusal) as refused:
        parse_strict_json(raw)
    assert refused.value.reason == reason


def test_big_integers_stay_exact() -> None:
    assert parse_strict_json(b'{"n": 18446744073709551617}') == {"n": 18446744073709551617}


def test_nesting_up_to_the_limit_is_accepted_by_both() -> None:
    raw = b'{"a":' * (MAX_NESTING_DEPTH - 1) + b"[1]" + b"}" * (MAX_NESTING_DEPTH - 1)
    assert_agree(raw)
    assert verdict(parse_strict_json, raw)[0] == "value"
