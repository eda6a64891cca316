"""Registration refuses patterns no linear-time engine runs, naming the place, in English and Japanese;
the compatibility check runs a candidate's patterns in linear time."""

from __future__ import annotations

import copy
import time
from typing import Any

from cityos.domain.registry.compatibility import Mode, check_mode, reader_problems
from cityos.domain.registry.lint import lint_schema
from cityos.kernel.schemas import load_schema_dir, schema_uri
from cityos.kernel.settings import REPO_ROOT

SCHEMAS = load_schema_dir(REPO_ROOT / "schemas")
EVIL = "^(a|a|a|a)*$"
LONG_NAME = "a" * 5_000 + "!"


def aed(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(SCHEMAS.latest("aed").document)
    document.update(changes)
    return document


def test_a_backreference_is_refused_at_its_place() -> None:
    document = aed()
    document["properties"]["名称"]["pattern"] = "^(.)\\1$"
    findings = lint_schema(document, uri=schema_uri("aed", 1), meta=SCHEMAS.datasets["aed"])
    assert [(f.pointer, f.rule) for f in findings] == [("/properties/名称/pattern", "pattern_supported")]
    assert "backreferences" in findings[0].en and "\\1" in findings[0].en
    assert "後方参照" in findings[0].ja


def test_lookaround_in_pattern_properties_and_property_names_is_refused() -> None:
    document = aed(patternProperties={"^x(?=y)": {"type": "integer"}}, propertyNames={"pattern": "(?<!z)w"})
    findings = lint_schema(document, uri=schema_uri("aed", 1), meta=SCHEMAS.datasets["aed"])
    assert [(f.pointer, f.rule) for f in findings] == [
        ("/patternProperties/^x(?=y)", "pattern_supported"),
        ("/propertyNames/pattern", "pattern_supported"),
    ]


def test_a_catastrophic_pattern_is_harmless_and_accepted() -> None:
    # On a linear engine `(a|a|a|a)*` is an ordinary pattern: nothing to refuse.
    document = aed(patternProperties={EVIL: {"type": "integer"}})
    assert lint_schema(document, uri=schema_uri("aed", 1), meta=SCHEMAS.datasets["aed"]) == []


def test_the_compatibility_check_runs_a_candidate_pattern_in_linear_time() -> None:
    writer = aed(patternProperties={EVIL: {"type": "integer"}})  # closed (additionalProperties: false)
    reader = aed()
    reader["properties"][LONG_NAME] = {"type": "string", "maxLength": 5}
    reader["properties"]["aaaa"] = {"type": "string", "maxLength": 5}
    started = time.perf_counter()
    problems = reader_problems(writer, reader)
    assert time.perf_counter() - started < 0.5
    # "aaaa" matches the writer's pattern, which wrote integers there; the long name does not match,
    # and the closed writer never wrote it.
    assert [(p.pointer, p.rule) for p in problems] == [
        ("/properties/aaaa", "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL")
    ]
    started = time.perf_counter()
    check_mode(Mode.FULL_TRANSITIVE, reader, [(1, writer), (2, writer)])
    assert time.perf_counter() - started < 0.5


def test_a_pattern_no_engine_runs_matches_nothing_in_the_comparison() -> None:
    writer = aed(patternProperties={"(a)\\1": {"type": "integer"}})
    reader = aed()
    reader["properties"]["aa"] = {"type": "string", "maxLength": 5}
    assert reader_problems(writer, reader) == []


def test_a_candidate_with_thousands_of_subschemas_is_refused_before_any_other_rule() -> None:
    from cityos.domain.registry.lint import MAX_SUBSCHEMAS

    huge = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "maxLength": 10} for i in range(MAX_SUBSCHEMAS + 5)},
    }
    started = time.perf_counter()
    issues = lint_schema(huge)
    assert [issue.rule for issue in issues] == ["schema_size"]
    assert time.perf_counter() - started < 0.5
    assert "上限" in issues[0].ja
