"""The byte scan of strict decoding's fast path exists twice: compiled (``cityos_native``, built
by pip from native/) and in Python (used where the extension is not built). Both must answer the
same for any bytes, so the fast path's verdicts cannot depend on which one a machine runs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityos.kernel import strictjson
from cityos.kernel.strictjson import MAX_NESTING_DEPTH, _plain_counts_python, parse_strict_json
from tests.support import needs
from tests.unit.kernel.test_strict_json_agreement import CASES, assert_agree, spellings, values, verdict

compiled_scan = needs.native_module().plain_counts

SCAN_CASES = [
    b"",
    b"{",
    b'"\\',
    b'{"a":1}',
    b'{"a" :1, "b":"x\\":"}',
    b'{"a": "\\u0000"}',
    b'{"a": "\\\\u0000"}',
    b'{"a": 1234567890123456789}',
    b'{"a": 123456789012345678}',
    b'{"a": "1234567890123456789"}',
    b'{"a": "\\1\\"[[[["}',
    b"[" * MAX_NESTING_DEPTH + b"]" * MAX_NESTING_DEPTH,
    b"[" * (MAX_NESTING_DEPTH + 1),
    b'["' + b"[" * 40 + b'"]',
    b"{" * 40 + b"}" * 80,
]


def both_scans(raw: bytes) -> None:
    for depth in (0, 2, MAX_NESTING_DEPTH):
        assert compiled_scan(raw, depth) == _plain_counts_python(raw, depth), (raw[:300], depth)


@pytest.mark.parametrize("raw", SCAN_CASES)
def test_compiled_and_python_scans_agree_on_edge_cases(raw: bytes) -> None:
    both_scans(raw)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(raw=st.binary(max_size=300) | st.text(alphabet='{}[]":\\u0 1a,', max_size=120).map(str.encode))
def test_compiled_and_python_scans_agree_on_any_bytes(raw: bytes) -> None:
    both_scans(raw)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=values)
def test_compiled_and_python_scans_agree_on_documents(value: Any) -> None:
    for raw in spellings(value):
        both_scans(raw)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(value=values)
def test_the_python_scan_gives_the_fast_path_the_same_verdicts(value: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(strictjson, "plain_counts", _plain_counts_python)
        for raw in spellings(value):
            assert_agree(raw)
        for raw, reason in CASES:
            assert verdict(parse_strict_json, raw) == ("refused", reason)
