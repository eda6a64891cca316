"""The CSV export's batch writer exists twice: compiled (``cityos_native.csv_lines``, built by
pip from native/) and in Python (``stream.CsvWriter``, used where the extension is not built or
refuses a batch). Whenever the compiled one answers, its bytes must be the Python writer's, so an
export's bytes cannot depend on which one a machine runs."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.publish import stream
from services.publish.render import render_csv
from tests.support import needs

compiled_csv_lines = needs.native_module().csv_lines

COLUMNS = ["ID", "名称", "n", "x", "flag", "note"]

texts = st.text(alphabet=st.sampled_from(list("ab名,\"\r\n\t =+-@'.e0123456789\\/\x08\u3000😀")), max_size=8)
numbers = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False)
cells = st.none() | st.booleans() | texts | numbers | st.lists(st.integers(), max_size=2)
documents = st.dictionaries(st.sampled_from([*COLUMNS, "other", "x2"]), cells, max_size=7)


def python_lines(raws: list[bytes], columns: list[str], *, excel: bool) -> bytes:
    return stream.CsvWriter(columns, excel=excel).lines(stream.decoded_batch(raws)).encode()


def assert_agree(raws: list[bytes], columns: list[str] = COLUMNS) -> None:
    for excel in (False, True):
        compiled = compiled_csv_lines([(raw,) for raw in raws], columns, excel)
        if compiled is not None:
            assert compiled == python_lines(raws, columns, excel=excel), (raws, excel)


def spellings(document: dict[str, Any]) -> list[bytes]:
    """The same document as orjson stores it, and with escapes and spaces as other writers do."""
    compact = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return [compact, json.dumps(document).encode(), json.dumps(document, indent=1).encode()]


@settings(max_examples=400, deadline=None)
@given(st.lists(documents, max_size=6))
def test_compiled_and_python_writers_agree(batch: list[dict[str, Any]]) -> None:
    for spelled in zip(*map(spellings, batch), strict=True) if batch else [()]:
        assert_agree(list(spelled))


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_numbers_are_spelled_as_python_does(number: float) -> None:
    raw = json.dumps({"ID": number, "n": "x"}).encode()
    assert_agree([raw])
    assert_agree([b'{"ID": %s}' % repr(number).encode()])


AWKWARD = [
    b'{"ID": -0}',
    b'{"ID": 131.0, "n": -0.0, "x": 0.0, "flag": 100000000000000.0}',
    b'{"ID": 1234567890123456.0}',
    b'{"ID": 12345678901234567.0}',
    b'{"ID": 1.50}',
    b'{"ID": 00.5}',
    b'{"ID": -0.0}',
    b'{"ID": 1e5}',
    b'{"ID": 1.0}',
    b'{"ID": 0.00010}',
    b'{"ID": 0.0001}',
    b'{"ID": 1.5E3}',
    b'{"ID": 012}',
    b'{"ID": 123456789012345678901234}',
    b'{"ID": 1.}',
    b'{"ID": .5}',
    b'{"ID": "\\u0000"}',
    b'{"ID": "\\ud83d\\ude00"}',
    b'{"ID": "\\ud83d"}',
    b'{"ID": "\\x"}',
    b'{"ID": "a", "ID": "=b"}',
    b'{"\\u540d\\u79f0": "=1+2"}',
    b'{"ID": "-3.5e-2", "n": "+81-90"}',
    b'{"ID": "\\t=x", "n": "@", "x": "-", "flag": ".", "note": "1."}',
    b'{"ID": "a"} ',
    b'{"ID": "a"}x',
    b'{"ID": [1, 2]}',
    b'{"ID": {"a": 1}}',
    b'{"ID": tru}',
    b'{"ID": NaN}',
    b"[]",
    b"{}",
    b"{ }",
    b'{"ID": "\xff"}',
    b'{"ID": "a\x01"}',
    b'{"ID": "a,b\\"c", "n": "\\r\\n"}',
    b'{"ID": true, "n": null}',
]


@pytest.mark.parametrize("raw", AWKWARD)
def test_awkward_documents_agree(raw: bytes) -> None:
    try:
        stream.decoded_batch([raw])
    except ValueError:  # not JSON at all: the compiled writer must not answer either
        assert compiled_csv_lines([(raw,)], COLUMNS, False) is None
        return
    if isinstance(stream.decoded(raw), dict):
        assert_agree([raw, orjson.dumps({"ID": "plain"})])
    else:
        assert compiled_csv_lines([(raw,)], COLUMNS, False) is None


def test_the_compiled_writer_takes_what_exports_mostly_hold() -> None:
    """Text (Japanese included), integers, coordinates (`131.0` among them), whole floats, nulls and
    booleans: no fallback."""
    records = [{"ID": f"T{n}", "名称": "小倉北区公衆トイレ", "n": n - 100, "x": 130.70 + n / 2500,
                "flag": n % 2 == 0, "note": float(n - 100) if n % 3 else None}
               for n in range(0, 1000, 5)]  # fmt: skip
    raws = [orjson.dumps(record) for record in records]
    for excel in (False, True):
        compiled = compiled_csv_lines([(raw,) for raw in raws], COLUMNS, excel)
        assert compiled is not None
        assert compiled == render_csv(COLUMNS, records, bom=False, excel=excel).split(b"\r\n", 1)[1]


def test_a_lone_column_is_left_to_python() -> None:
    """csv.writer spells a row of one empty cell `""`: the compiled writer does not guess."""
    assert compiled_csv_lines([(b'{"ID": null}',)], ["ID"], False) is None
