"""Known-answer compatibility tests: every mode, transitive or not, open/closed/partially open content
models, required fields, types, enums, bounds, combinators and ``$ref``ed definitions.

Each case gives the registered versions (oldest first), the candidate, the mode, and the exact reasons
expected as (pointer, rule, compared version, direction); an empty list means "compatible".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cityos.domain.registry.compatibility import Mode, check_mode, reader_problems
from cityos.kernel.settings import REPO_ROOT

Reason = tuple[str, str, int, str]
S: dict[str, Any] = {"type": "string", "maxLength": 50}
INT: dict[str, Any] = {"type": "integer"}


def obj(
    properties: dict[str, Any], required: list[str] | None = None, extra: Any = False, **more: Any
) -> dict[str, Any]:
    """An object schema; ``extra`` is additionalProperties (False: closed, True: open, a schema: partial)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required or []}
    if extra is not None:
        schema["additionalProperties"] = extra
    schema.update(more)
    return schema


@dataclass
class Case:
    name: str
    mode: Mode
    previous: list[Any]
    candidate: Any
    expected: list[Reason]
    resources: dict[str, Any] = field(default_factory=dict)


SHARED_1: dict[str, Any] = {
    "$id": "https://cityos.example/schemas/_shared/code/1",
    "$defs": {"code": {"type": "string", "maxLength": 10}},
}
SHARED_2: dict[str, Any] = {
    "$id": "https://cityos.example/schemas/_shared/code/2",
    "$defs": {"code": {"type": "string", "maxLength": 4}},
}
WITH_DEFS_10 = obj(
    {"a": {"$ref": "#/$defs/code"}}, ["a"], **{"$defs": {"code": {"type": "string", "maxLength": 10}}}
)
WITH_DEFS_4 = obj(
    {"a": {"$ref": "#/$defs/code"}}, ["a"], **{"$defs": {"code": {"type": "string", "maxLength": 4}}}
)
WITH_DEFS_20 = obj(
    {"a": {"$ref": "#/$defs/code"}}, ["a"], **{"$defs": {"code": {"type": "string", "maxLength": 20}}}
)

B, BT, F, FT = Mode.BACKWARD, Mode.BACKWARD_TRANSITIVE, Mode.FORWARD, Mode.FORWARD_TRANSITIVE
FU, FUT, NO = Mode.FULL, Mode.FULL_TRANSITIVE, Mode.NONE

CASES = [
    # --- closed content model (additionalProperties: false) -----------------------------------------
    Case("closed: optional property added", B, [obj({"a": S}, ["a"])], obj({"a": S, "b": S}, ["a"]), []),
    Case(
        "closed: required property added",
        B,
        [obj({"a": S}, ["a"])],
        obj({"a": S, "b": S}, ["a", "b"]),
        [("/properties/b", "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "closed: required property with default added (Confluent: compatible)",
        B,
        [obj({"a": S}, ["a"])],
        obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"]),
        [],
    ),
    Case(
        "closed: property removed",
        B,
        [obj({"a": S, "b": S}, ["a"])],
        obj({"a": S}, ["a"]),
        [("/properties/b", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "closed: required property removed",
        B,
        [obj({"a": S, "b": S}, ["a", "b"])],
        obj({"a": S}, ["a"]),
        [("/properties/b", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "closed: optional property added is not forward compatible",
        F,
        [obj({"a": S}, ["a"])],
        obj({"a": S, "b": S}, ["a"]),
        [("/properties/b", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", 1, "forward")],
    ),
    Case(
        "closed: property removed is forward compatible",
        F,
        [obj({"a": S, "b": S}, ["a"])],
        obj({"a": S}, ["a"]),
        [],
    ),
    # --- open content model -----------------------------------------------------------------------
    Case(
        "open: typed property added",
        B,
        [obj({"a": S}, ["a"], extra=None)],
        obj({"a": S, "b": S}, ["a"], extra=None),
        [("/properties/b", "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "open: property with empty schema added",
        B,
        [obj({"a": S}, ["a"], extra=True)],
        obj({"a": S, "b": {"description": "anything"}}, ["a"], extra=True),
        [],
    ),
    Case(
        "open: property removed",
        B,
        [obj({"a": S, "b": S}, ["a"], extra=True)],
        obj({"a": S}, ["a"], extra=True),
        [],
    ),
    Case(
        "open: typed property added, forward",
        F,
        [obj({"a": S}, extra=True)],
        obj({"a": S, "b": S}, extra=True),
        [],
    ),
    Case(
        "open: property removed, forward",
        F,
        [obj({"a": S, "b": S}, extra=True)],
        obj({"a": S}, extra=True),
        [("/properties/b", "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", 1, "forward")],
    ),
    Case(
        "open to closed",
        B,
        [obj({"a": S}, extra=True)],
        obj({"a": S}, extra=False),
        [("/additionalProperties", "ADDITIONAL_PROPERTIES_REMOVED", 1, "backward")],
    ),
    Case("closed to open", B, [obj({"a": S}, extra=False)], obj({"a": S}, extra=True), []),
    Case(
        "closed to open, forward",
        F,
        [obj({"a": S}, extra=False)],
        obj({"a": S}, extra=True),
        [("/additionalProperties", "ADDITIONAL_PROPERTIES_REMOVED", 1, "forward")],
    ),
    Case(
        "open to partially open",
        B,
        [obj({"a": S}, extra=True)],
        obj({"a": S}, extra=S),
        [("/additionalProperties", "ADDITIONAL_PROPERTIES_NARROWED", 1, "backward")],
    ),
    # --- partially open content model ---------------------------------------------------------------
    Case("partial: added property covered", B, [obj({"a": S}, extra=S)], obj({"a": S, "b": S}, extra=S), []),
    Case(
        "partial: added property not covered",
        B,
        [obj({"a": S}, extra=S)],
        obj({"a": S, "b": INT}, extra=S),
        [("/properties/b", "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "partial: removed property covered", B, [obj({"a": S, "b": S}, extra=S)], obj({"a": S}, extra=S), []
    ),
    Case(
        "partial: removed property not covered",
        B,
        [obj({"a": S, "b": INT}, extra=S)],
        obj({"a": S}, extra=S),
        [("/properties/b", "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "patternProperties cover an added property",
        B,
        [obj({"a": S}, extra=False, patternProperties={"^x-": S})],
        obj({"a": S, "x-note": S}, extra=False, patternProperties={"^x-": S}),
        [],
    ),
    # --- required --------------------------------------------------------------------------------
    Case("required made optional", B, [obj({"a": S, "b": S}, ["a", "b"])], obj({"a": S, "b": S}, ["a"]), []),
    Case(
        "optional made required",
        B,
        [obj({"a": S, "b": S}, ["a"])],
        obj({"a": S, "b": S}, ["a", "b"]),
        [("/required", "REQUIRED_ATTRIBUTE_ADDED", 1, "backward")],
    ),
    Case(
        "required made optional, forward",
        F,
        [obj({"a": S, "b": S}, ["a", "b"])],
        obj({"a": S, "b": S}, ["a"]),
        [("/required", "REQUIRED_ATTRIBUTE_ADDED", 1, "forward")],
    ),
    # --- types -----------------------------------------------------------------------------------
    Case("integer widened to number", B, [obj({"n": INT})], obj({"n": {"type": "number"}}), []),
    Case(
        "number narrowed to integer",
        B,
        [obj({"n": {"type": "number"}})],
        obj({"n": INT}),
        [("/properties/n/type", "TYPE_NARROWED", 1, "backward")],
    ),
    Case("number narrowed to integer, forward", F, [obj({"n": {"type": "number"}})], obj({"n": INT}), []),
    Case(
        "string widened to string|null", B, [obj({"s": S})], obj({"s": {**S, "type": ["string", "null"]}}), []
    ),
    Case(
        "string widened to string|null, forward",
        F,
        [obj({"s": S})],
        obj({"s": {**S, "type": ["string", "null"]}}),
        [("/properties/s/type", "TYPE_NARROWED", 1, "forward")],
    ),
    Case(
        "string changed to integer",
        B,
        [obj({"s": S})],
        obj({"s": INT}),
        [("/properties/s/type", "TYPE_CHANGED", 1, "backward")],
    ),
    # --- enums -----------------------------------------------------------------------------------
    Case("enum widened", B, [obj({"e": {"enum": ["a", "b"]}})], obj({"e": {"enum": ["a", "b", "c"]}}), []),
    Case(
        "enum narrowed",
        B,
        [obj({"e": {"enum": ["a", "b"]}})],
        obj({"e": {"enum": ["a"]}}),
        [("/properties/e/enum", "ENUM_NARROWED", 1, "backward")],
    ),
    Case(
        "enum widened, forward",
        F,
        [obj({"e": {"enum": ["a", "b"]}})],
        obj({"e": {"enum": ["a", "b", "c"]}}),
        [("/properties/e/enum", "ENUM_NARROWED", 1, "forward")],
    ),
    Case(
        "enum added",
        B,
        [obj({"e": S})],
        obj({"e": {**S, "enum": ["a"]}}),
        [("/properties/e/enum", "ENUM_ADDED", 1, "backward")],
    ),
    Case("enum removed", B, [obj({"e": {**S, "enum": ["a"]}})], obj({"e": S}), []),
    # --- bounds and string rules -------------------------------------------------------------------
    Case(
        "maxLength decreased",
        B,
        [obj({"s": S})],
        obj({"s": {"type": "string", "maxLength": 10}}),
        [("/properties/s/maxLength", "KEYWORD_NARROWED", 1, "backward")],
    ),
    Case("maxLength increased", B, [obj({"s": S})], obj({"s": {"type": "string", "maxLength": 100}}), []),
    Case(
        "minimum added",
        B,
        [obj({"n": INT})],
        obj({"n": {**INT, "minimum": 0}}),
        [("/properties/n/minimum", "KEYWORD_ADDED", 1, "backward")],
    ),
    Case("maximum removed", B, [obj({"n": {**INT, "maximum": 9}})], obj({"n": INT}), []),
    Case(
        "pattern changed",
        B,
        [obj({"s": {**S, "pattern": "^[0-9]+$"}})],
        obj({"s": {**S, "pattern": "^[0-9]{6}$"}}),
        [("/properties/s/pattern", "KEYWORD_CHANGED", 1, "backward")],
    ),
    Case(
        "format added",
        B,
        [obj({"s": S})],
        obj({"s": {**S, "format": "date"}}),
        [("/properties/s/format", "KEYWORD_ADDED", 1, "backward")],
    ),
    Case(
        "array items narrowed",
        B,
        [obj({"l": {"type": "array", "items": {"type": "number"}}})],
        obj({"l": {"type": "array", "items": INT}}),
        [("/properties/l/items/type", "TYPE_NARROWED", 1, "backward")],
    ),
    # --- combinators -----------------------------------------------------------------------------
    Case("anyOf widened", B, [obj({"v": {"anyOf": [S]}})], obj({"v": {"anyOf": [S, INT]}}), []),
    Case(
        "anyOf narrowed",
        B,
        [obj({"v": {"anyOf": [S, INT]}})],
        obj({"v": {"anyOf": [S]}}),
        [("/properties/v/anyOf/1", "SUM_TYPE_NARROWED", 1, "backward")],
    ),
    Case(
        "anyOf of string and integer read as one type list",
        B,
        [obj({"v": {"anyOf": [S, INT]}})],
        obj({"v": {"type": ["string", "integer"], "maxLength": 50}}),
        [],
    ),
    Case(
        "oneOf branch no longer readable",
        B,
        [obj({"v": {"oneOf": [S, INT]}})],
        obj({"v": S}),
        [("/properties/v/type", "TYPE_CHANGED", 1, "backward")],
    ),
    # --- $ref ------------------------------------------------------------------------------------
    Case(
        "$ref'd definition narrowed",
        B,
        [WITH_DEFS_10],
        WITH_DEFS_4,
        [("/properties/a/maxLength", "KEYWORD_NARROWED", 1, "backward")],
    ),
    Case("$ref'd definition widened", B, [WITH_DEFS_10], WITH_DEFS_20, []),
    Case(
        "$ref with a tighter sibling keyword",
        B,
        [WITH_DEFS_10],
        obj(
            {"a": {"$ref": "#/$defs/code", "maxLength": 3}},
            ["a"],
            **{"$defs": {"code": {"type": "string", "maxLength": 10}}},
        ),
        [("/properties/a/maxLength", "KEYWORD_NARROWED", 1, "backward")],
    ),
    Case(
        "$ref to a registered shared schema, narrowed",
        B,
        [obj({"a": {"$ref": SHARED_1["$id"] + "#/$defs/code"}})],
        obj({"a": {"$ref": SHARED_2["$id"] + "#/$defs/code"}}),
        [("/properties/a/maxLength", "KEYWORD_NARROWED", 1, "backward")],
        resources={SHARED_1["$id"]: SHARED_1, SHARED_2["$id"]: SHARED_2},
    ),
    Case(
        "$ref that cannot be resolved offline",
        B,
        [obj({"a": S})],
        obj({"a": {"$ref": "https://example.org/elsewhere.json#/$defs/x"}}),
        [("/properties/a", "REF_UNRESOLVABLE", 1, "backward")],
    ),
    # --- modes: FULL, NONE, transitive --------------------------------------------------------------
    Case(
        "FULL: closed, optional property added",
        FU,
        [obj({"a": S}, ["a"])],
        obj({"a": S, "b": S}, ["a"]),
        [("/properties/b", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", 1, "forward")],
    ),
    Case(
        "FULL: open, typed property added",
        FU,
        [obj({"a": S}, extra=True)],
        obj({"a": S, "b": S}, extra=True),
        [("/properties/b", "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "FULL: titles and descriptions only",
        FU,
        [obj({"a": {**S, "title": "A"}})],
        obj({"a": {**S, "title": "エー", "description": "説明"}}),
        [],
    ),
    Case("NONE: anything goes", NO, [obj({"a": S}, ["a"])], obj({"z": INT}, ["z"]), []),
    Case(
        "BACKWARD checks the latest version only",
        B,
        [obj({"a": S}, ["a"]), obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"])],
        obj({"a": S, "b": S}, ["a", "b"]),
        [],
    ),
    Case(
        "BACKWARD_TRANSITIVE checks every version",
        BT,
        [obj({"a": S}, ["a"]), obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"])],
        obj({"a": S, "b": S}, ["a", "b"]),
        [("/properties/b", "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", 1, "backward")],
    ),
    Case(
        "FULL checks the latest version only, both ways",
        FU,
        [obj({"a": S}, ["a"]), obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"])],
        obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"]),
        [],
    ),
    Case(
        "FULL_TRANSITIVE checks every version both ways",
        FUT,
        [obj({"a": S}, ["a"]), obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"])],
        obj({"a": S, "b": {**S, "default": "x"}}, ["a", "b"]),
        [("/properties/b", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", 1, "forward")],
    ),
    Case(
        "FORWARD: latest only",
        F,
        [obj({"s": {"type": "string", "maxLength": 5}}), obj({"s": {"type": "string", "maxLength": 5}})],
        obj({"s": {"type": "string", "maxLength": 10}}),
        [("/properties/s/maxLength", "KEYWORD_NARROWED", 2, "forward")],
    ),
    Case(
        "FORWARD_TRANSITIVE: every version",
        FT,
        [obj({"s": {"type": "string", "maxLength": 5}}), obj({"s": {"type": "string", "maxLength": 5}})],
        obj({"s": {"type": "string", "maxLength": 10}}),
        [
            ("/properties/s/maxLength", "KEYWORD_NARROWED", 2, "forward"),
            ("/properties/s/maxLength", "KEYWORD_NARROWED", 1, "forward"),
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_known_answer(case: Case) -> None:
    previous = list(enumerate(case.previous, start=1))
    problems = check_mode(case.mode, case.candidate, previous, resources=case.resources)
    assert [(p.pointer, p.rule, p.version, p.direction) for p in problems] == case.expected
    for problem in problems:
        # Every reason explains itself in both languages, naming the versions compared.
        assert problem.en and problem.ja and problem.en != problem.ja
        assert f"v{problem.version}" in problem.en and f"v{problem.version}" in problem.ja


def test_at_least_forty_known_answers_cover_every_mode() -> None:
    assert len(CASES) >= 40
    assert {case.mode for case in CASES} == set(Mode)
    assert sum(1 for case in CASES if case.expected) >= 20


def test_reasons_name_the_property_in_both_languages() -> None:
    [problem] = reader_problems(
        obj({"名称_カナ": S}, ["名称_カナ"]), obj({}), writer_label="v2", reader_label="v3"
    )
    assert problem.rule == "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
    assert "名称_カナ" in problem.en and "名称_カナ" in problem.ja
    assert "additionalProperties: false" in problem.en
    assert problem.as_dict()["message"] == {"en": problem.en, "ja": problem.ja}


def test_every_repository_schema_is_compatible_with_itself_in_every_mode() -> None:
    for file in sorted((REPO_ROOT / "schemas").glob("*/v*.schema.json")):
        document = json.loads(Path(file).read_text(encoding="utf-8"))
        for mode in Mode:
            assert check_mode(mode, document, [(1, document)]) == [], (file, mode)


def test_recursive_schemas_terminate() -> None:
    tree = {
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
        "$ref": "#/$defs/node",
    }
    assert reader_problems(tree, tree) == []
