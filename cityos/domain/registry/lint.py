"""Lint of a dataset schema version at registration: each finding names the place and the rule.

Rules: draft 2020-12; ``$id`` is the version's URI; a title; a valid schema whose ``$ref`` resolve
offline and whose patterns run on a linear-time engine (no backreference, no lookaround); an object
schema; every string bounded (``maxLength``, or an ``enum``/``const``); the record key
declared and required; the location fields of the dataset metadata declared as numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError as JsonSchemaError
from pydantic import BaseModel

from cityos.domain.registry.messages import LINT
from cityos.kernel.patterns import (
    UnsupportedPattern,
    compile_pattern,
    pattern_problem,
    schema_patterns,
    subschemas,
)
from cityos.kernel.references import missing_refs, rust_validator

if TYPE_CHECKING:
    from cityos.kernel.schemas import DatasetMeta

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class LintIssue:
    pointer: str
    rule: str
    en: str
    ja: str

    def view(self) -> LintIssueView:
        return LintIssueView(
            pointer=self.pointer, rule=self.rule, message=IssueMessage(en=self.en, ja=self.ja)
        )

    def as_dict(self) -> dict[str, Any]:
        return self.view().model_dump(mode="json")


class IssueMessage(BaseModel):
    """Why, in English and Japanese."""

    en: str
    ja: str


class LintIssueView(BaseModel):
    """A problem of the schema itself: where (JSON pointer), which rule, why."""

    pointer: str
    rule: str
    message: IssueMessage


def _pointer(path: Sequence[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _issue(path: Sequence[str | int], rule: str, **values: Any) -> LintIssue:
    en, ja = LINT[rule]
    return LintIssue(_pointer(path), rule, en.format(**values), ja.format(**values))


def _is_string(node: Mapping[str, Any]) -> bool:
    declared = node.get("type")
    return declared == "string" or (isinstance(declared, list) and "string" in declared)


def _header_issues(document: dict[str, Any], uri: str | None) -> list[LintIssue]:
    """The identity a registered schema must carry: draft, ``$id`` (the expected URI) and title."""
    issues: list[LintIssue] = []
    if document.get("$schema") != DRAFT_2020_12:
        issues.append(_issue(["$schema"], "draft_2020_12", expected=DRAFT_2020_12))
    if not isinstance(document.get("$id"), str) or (uri is not None and document["$id"] != uri):
        issues.append(_issue(["$id"], "id_present", expected=uri or "an absolute URI"))
    if not isinstance(document.get("title"), str) or not document["title"].strip():
        issues.append(_issue(["title"], "title_present"))
    return issues


def _reference_issues(document: dict[str, Any], resources: Mapping[str, Any]) -> list[LintIssue]:
    """``$ref`` targets that are not available offline, else what the hot path cannot compile."""
    unresolved = missing_refs(document, resources)
    issues = [_issue([], "offline_refs", detail=ref) for ref in unresolved]
    if not unresolved:
        # The hot path's own compilation: what it cannot compile (a $ref with unencoded non-ASCII
        # characters, a regex ECMA-262 refuses) must not be registered, or ingest would skip it.
        try:
            rust_validator(document, resources)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            issues.append(_issue([], "valid_schema", detail=f"jsonschema-rs: {first_line[:300]}"))
    return issues


def _pattern_issues(document: dict[str, Any]) -> list[LintIssue]:
    """Patterns the linear-time engines cannot run, each named at its place: registering one would
    leave ingest unable to use the version (it refuses backtracking engines, whose worst case lets a
    single pattern stall a service)."""
    issues = []
    for path, pattern in schema_patterns(document):
        problem = pattern_problem(pattern)
        if problem is not None:
            issues.append(_issue(path, "pattern_supported", detail=f"{pattern[:100]!r}: {problem}"))
    return issues


def _runs_linear(instance: object) -> bool:
    return not isinstance(instance, str) or compile_pattern(instance) is not None


def _meta_format_checker() -> FormatChecker:
    """The draft's format checks for the schema itself, with ``regex`` judged by RE2 instead of Python's
    backtracking ``re``."""
    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("regex", raises=UnsupportedPattern)(_runs_linear)
    return checker


_META_FORMATS = _meta_format_checker()


def _unbounded_strings(document: dict[str, Any]) -> list[LintIssue]:
    return [
        _issue(path, "string_bounded")
        for path, node in subschemas(document)
        if _is_string(node) and "$ref" not in node and not {"maxLength", "enum", "const"} & node.keys()
    ]


def _dataset_issues(
    document: dict[str, Any], properties: Mapping[str, Any], meta: DatasetMeta
) -> list[LintIssue]:
    """What the dataset's metadata relies on: its record key, and its location fields as numbers."""
    issues: list[LintIssue] = []
    if meta.record_key not in properties or meta.record_key not in document.get("required", []):
        issues.append(_issue(["properties", meta.record_key], "record_key_required", name=meta.record_key))
    if meta.location is not None:
        for name in (meta.location.latitude, meta.location.longitude):
            declared = properties.get(name)
            kind = declared.get("type") if isinstance(declared, dict) else None
            if kind not in ("number", "integer"):
                issues.append(_issue(["properties", name], "location_declared", name=name))
    return issues


# Subschemas of one version: the largest bundled schema has under a hundred; thousands is a mistake or
# an attack (each costs the lint and the compatibility check about a millisecond).
MAX_SUBSCHEMAS = 2000


def lint_schema(
    document: Any,
    *,
    uri: str | None = None,
    meta: DatasetMeta | None = None,
    resources: Mapping[str, Any] | None = None,
) -> list[LintIssue]:
    """Every lint finding of ``document`` (empty: it passes)."""
    if not isinstance(document, dict):
        return [_issue([], "object_schema")]
    size = sum(1 for _ in islice(subschemas(document), MAX_SUBSCHEMAS + 1))
    if size > MAX_SUBSCHEMAS:
        # Every rule below walks the schema; a candidate this large is refused before any of them,
        # so one request cannot keep the registry busy for seconds.
        return [_issue([], "schema_size", detail=f"more than {MAX_SUBSCHEMAS}", limit=MAX_SUBSCHEMAS)]
    issues = _header_issues(document, uri)
    unusable_patterns = _pattern_issues(document)
    if unusable_patterns:
        return issues + unusable_patterns  # the schema cannot be compiled: the rules below add noise
    try:
        Draft202012Validator.check_schema(document, format_checker=_META_FORMATS)
    except JsonSchemaError as exc:
        issues.append(_issue(list(exc.absolute_path), "valid_schema", detail=exc.message[:300]))
        return issues  # the structural rules below assume a well-formed schema
    issues += _reference_issues(document, resources or {})
    properties = document.get("properties")
    if document.get("type") != "object" or not isinstance(properties, dict):
        issues.append(_issue([], "object_schema"))
        properties = {}
    issues += _unbounded_strings(document)
    if meta is not None:
        issues += _dataset_issues(document, properties, meta)
    return issues
