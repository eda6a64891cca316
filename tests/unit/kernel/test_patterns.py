"""Patterns from schemas run on linear-time engines only: RE2 in Python, the ``regex`` crate in
jsonschema-rs; what they cannot run is refused with a reason, and the bundled schemas mean the same."""

from __future__ import annotations

import json
import time
from typing import Any

import jsonschema_rs
import pytest

from cityos.kernel.patterns import (
    UnsupportedPattern,
    compile_pattern,
    linear_document,
    pattern_problem,
    re2_source,
    rust_source,
    schema_patterns,
    search,
)
from cityos.kernel.references import rust_validator
from cityos.kernel.schemas import load_schema_dir
from cityos.kernel.settings import REPO_ROOT
from tests.support.json_schema_suite import DRAFT_2020_12, Case, read_cases

# Each of these takes seconds to minutes on a backtracking engine against a long non-matching text.
EVIL = ["^(a|a)*$", "^(a|a|a)*$", "^(a|aa)+$", "^(a+)+$", "(x+x+)+y", "^([a-zA-Z0-9]+\\s?)*$"]
ATTACK_TEXT = "a" * 50_000 + "!"
SCHEMAS = load_schema_dir(REPO_ROOT / "schemas")


@pytest.mark.parametrize("pattern", EVIL)
def test_catastrophic_patterns_take_linear_time_in_python(pattern: str) -> None:
    started = time.perf_counter()
    assert search(pattern, ATTACK_TEXT) is False or "x" in pattern
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("pattern", EVIL)
def test_catastrophic_patterns_take_linear_time_in_the_event_validator(pattern: str) -> None:
    validator = rust_validator(
        {
            "type": "object",
            "patternProperties": {pattern: {"type": "integer"}},
            "propertyNames": {"pattern": pattern},
        }
    )
    started = time.perf_counter()
    for _ in range(20):
        validator.is_valid({ATTACK_TEXT: 1})
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("^(a)\\1$", "escape"),
        ("^a(?=b)", "perl operator"),
        ("(?<!x)y", "perl operator"),
        ("a{2,1}", "repetition"),
    ],
)
def test_what_no_linear_engine_runs_is_refused_with_a_reason(pattern: str, words: str) -> None:
    problem = pattern_problem(pattern)
    assert problem is not None and words in problem
    with pytest.raises(UnsupportedPattern) as refused:
        compile_pattern(pattern)
    assert refused.value.pattern == pattern
    with pytest.raises(ValueError):
        rust_validator({"type": "string", "pattern": pattern})


def test_the_bundled_end_anchor_idiom_is_plain_dollar_on_linear_engines() -> None:
    assert rust_source("^[0-9]{6}$(?!\\n)") == "^[0-9]{6}$"
    assert re2_source("^(?:a|b)$(?!\\n)|^c$(?!\\n)") == "^(?:a|b)$|^c$"
    # An escaped dollar, or one inside a class, is a character: the look-ahead stays (and is refused).
    assert rust_source("^a\\$(?!\\n)") == "^a\\$(?!\\n)"
    assert re2_source("[$(?!\\n)]") == "[$(?!\\n)]"
    assert pattern_problem("^a\\$(?!\\n)") is not None


def test_ecma_escapes_are_spelled_for_re2() -> None:
    assert re2_source("^\\u3000\\u{1F600}$") == "^\\x{3000}\\x{1F600}$"
    assert re2_source("^\\p{Script=Han}+\\P{sc=Hiragana}$") == "^\\p{Han}+\\P{Hiragana}$"
    assert search("^\\p{Script=Han}+$", "北九州")
    assert search("^\\u5317", "北")
    # ECMA-262's \\d is ASCII only, and so is RE2's; Python's re would take Arabic-Indic digits.
    assert not search("^\\d+$", "١٢")
    # ECMA-262's $ never matches before a final newline; RE2's neither.
    assert not search("^a$", "a\n")


def test_compiled_once() -> None:
    compile_pattern.cache_clear()
    for _ in range(100):
        search("^[0-9]{6}$", "401005")
    info = compile_pattern.cache_info()
    assert (info.misses, info.hits) == (1, 99)


def test_linear_document_copies_only_when_it_changes_something() -> None:
    plain: dict[str, Any] = {"type": "string", "pattern": "^a$"}
    assert linear_document(plain) is plain
    bundled = {
        "properties": {"x": {"pattern": "^a$(?!\\n)"}},
        "patternProperties": {"^p$(?!\\n)": {"const": {"pattern": "^kept$(?!\\n)"}}},
    }
    before = json.dumps(bundled)
    changed = linear_document(bundled)
    assert json.dumps(bundled) == before  # the registered document keeps its bytes
    assert changed["properties"]["x"]["pattern"] == "^a$"
    assert list(changed["patternProperties"]) == ["^p$"]
    assert changed["patternProperties"]["^p$"]["const"] == {"pattern": "^kept$(?!\\n)"}  # data, not schema


def test_schema_patterns_names_every_place() -> None:
    document = {
        "properties": {"a": {"pattern": "^a$"}, "pattern": {"type": "string"}},
        "patternProperties": {"^p": True},
        "propertyNames": {"pattern": "^n"},
        "$defs": {"d": {"items": {"pattern": "^i"}}},
        "enum": [{"pattern": "not a schema"}],
    }
    assert sorted(schema_patterns(document)) == [
        (("$defs", "d", "items", "pattern"), "^i"),
        (("patternProperties", "^p"), "^p"),
        (("properties", "a", "pattern"), "^a$"),
        (("propertyNames", "pattern"), "^n"),
    ]


CANDIDATES = [
    "",
    "401005",
    "4010050",
    "40100",
    "abc",
    "ABC-12",
    "08:30",
    "24:00",
    "24:01",
    "2026-13",
    "北九州市",
]
CANDIDATES += ["-1.5", "1.", "a b", "digital-2026-01", "1234567890123", "2001-01-01", "ＡＢＣ"]


def _bundled_patterns() -> list[str]:
    return sorted({p for v in SCHEMAS.versions.values() for _, p in schema_patterns(v.document)})


@pytest.mark.parametrize("pattern", _bundled_patterns())
def test_bundled_patterns_mean_what_they_meant(pattern: str) -> None:
    """Each bundled pattern gives RE2, the linear jsonschema-rs and the former backtracking
    jsonschema-rs the same verdicts, final newline included."""
    assert pattern_problem(pattern) is None
    schema = {"type": "string", "pattern": pattern}
    before = jsonschema_rs.validator_for(schema)
    linear = rust_validator(schema)
    for value in CANDIDATES:
        for candidate in (value, value + "\n", "\n" + value):
            expected = before.is_valid(candidate)
            assert linear.is_valid(candidate) == expected, (pattern, candidate)
            assert search(pattern, candidate) == expected, (pattern, candidate)


def _suite_cases(*files: str) -> list[Case]:
    return [case for name in files for case in read_cases(DRAFT_2020_12 / name, name)]


def test_json_schema_suite_patterns_pass_on_the_linear_engine() -> None:
    """The suite's pattern tests (required, and ECMA-262 regex, non-BMP) on the engine ingest runs;
    a schema it cannot compile must be one with lookaround or a backreference."""
    cases = _suite_cases(
        "pattern.json",
        "patternProperties.json",
        "propertyNames.json",
        "optional/ecmascript-regex.json",
        "optional/non-bmp-regex.json",
    )
    failures, refused = [], set()
    for case_id, schema, instance, expected in cases:
        try:
            validator = rust_validator(schema)
        except ValueError:
            refused.add(json.dumps(schema))
            continue
        if bool(validator.is_valid(instance)) != expected:
            failures.append(case_id)
    assert len(cases) > 100
    assert failures == [], failures
    assert all(any(mark in s for mark in ("(?=", "(?!", "(?<", "\\\\1")) for s in refused), refused
