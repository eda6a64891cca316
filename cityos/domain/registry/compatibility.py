"""Compatibility of JSON Schema versions, with the meaning Confluent Schema Registry gives the modes.

``reader_problems(writer, reader)`` lists why a value valid under ``writer`` might be refused by
``reader``; no problem means the reader can read everything the writer wrote. A mode then says which
pairs must hold:

- ``BACKWARD``: the new version reads data of the latest one (writer = previous, reader = new);
- ``FORWARD``: the latest version reads data of the new one (writer = new, reader = previous);
- ``FULL``: both; the ``_TRANSITIVE`` variants check every earlier version, not only the latest;
- ``NONE``: no check.

Open and closed content models follow Confluent: a property added to a *closed* writer
(``additionalProperties: false``) is fine while optional, since the writer never wrote it; added to
an *open* writer it is not (the writer may have written anything under that name). A property
removed from a closed reader breaks old data; removed from an open reader it does not. A partially
open model (``additionalProperties`` a schema, or ``patternProperties``) covers a property when the
schemas are compatible. Like Confluent, a required property with a ``default`` counts as compatible.

The comparison is structural (keyword by keyword) and conservative: it may refuse a change that is in
fact safe (a new ``not``, a changed ``if``), never the reverse for the keywords it understands.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from referencing import Registry
from referencing.exceptions import Unresolvable

from cityos.domain.registry.lint import IssueMessage
from cityos.domain.registry.messages import COMPATIBILITY
from cityos.kernel.patterns import UnsupportedPattern, search
from cityos.kernel.references import absolutize, offline_registry

_MAX_DEPTH = 64
# Keywords that say nothing about which values are valid.
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "$vocabulary",
        "$dynamicAnchor",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
    }
)
_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "string", "integer"})
# keyword -> True when a larger value is stricter (minimum), False when smaller is (maximum).
_LOWER_BOUNDS = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties", "minContains")
_UPPER_BOUNDS = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties", "maxContains")
_BOUND_TYPES = {
    "minLength": "string",
    "maxLength": "string",
    "minimum": "number",
    "maximum": "number",
    "exclusiveMinimum": "number",
    "exclusiveMaximum": "number",
    "minItems": "array",
    "maxItems": "array",
    "minContains": "array",
    "maxContains": "array",
    "minProperties": "object",
    "maxProperties": "object",
}


class Mode(StrEnum):
    """Compatibility level of a dataset (Confluent's names)."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


DEFAULT_MODE = Mode.BACKWARD


@dataclass(frozen=True)
class Incompatibility:
    """One reason a version is refused: where, which rule, and why in English and Japanese."""

    pointer: str  # JSON pointer into the schema (the reader's side)
    rule: str
    en: str
    ja: str
    version: int | None = None  # the registered version it was compared with
    direction: str = ""  # "backward": new reads old data; "forward": old reads new data

    def view(self) -> IncompatibilityView:
        return IncompatibilityView(
            pointer=self.pointer,
            rule=self.rule,
            message=IssueMessage(en=self.en, ja=self.ja),
            version=self.version,
            direction=self.direction,
        )

    def as_dict(self) -> dict[str, Any]:
        return self.view().model_dump(mode="json")


class IncompatibilityView(BaseModel):
    """A reason a version is refused, as the admin API and ``cityos schemas`` show it."""

    pointer: str
    rule: str
    message: IssueMessage
    version: int | None = Field(description="the registered version it was compared with")
    direction: str = Field(description='"backward": new reads old data; "forward": old reads new data')


def _pointer(path: Sequence[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _canon(value: Any) -> str:
    # JSON equality for enum members: 1 and 1.0 are the same value, key order is irrelevant.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _types(node: Mapping[str, Any]) -> frozenset[str] | None:
    declared = node.get("type")
    if declared is None:
        return None
    if isinstance(declared, str):
        return frozenset({declared})
    return frozenset(t for t in declared if isinstance(t, str))


def _covers(types: frozenset[str] | None, kind: str) -> bool:
    if types is None:
        return True
    return kind in types or (kind == "integer" and "number" in types)


def _unconstrained(node: Any) -> bool:
    if node is True:
        return True
    return isinstance(node, dict) and all(key in _ANNOTATIONS or key.startswith("x-") for key in node)


def _shared_types(w_types: frozenset[str] | None, r_types: frozenset[str] | None) -> set[str]:
    """Types both sides accept (a shared integer makes number keywords such as multipleOf apply)."""
    shared = {t for t in (_ALL_TYPES if w_types is None else w_types) if _covers(r_types, t)}
    if "integer" in shared:
        shared.add("number")
    return shared


def _merge(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Conjunction of object schemas as one (allOf, or $ref with siblings): properties and required
    are united, types intersected; for other keywords the first occurrence wins (approximate, fine for
    how schemas compose shared definitions)."""
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged.setdefault("properties", {})
                for name, schema in value.items():
                    merged["properties"].setdefault(name, schema)
            elif key == "required" and isinstance(value, list):
                merged["required"] = list(dict.fromkeys([*merged.get("required", []), *value]))
            elif (
                key in _UPPER_BOUNDS
                and isinstance(merged.get(key), int | float)
                and isinstance(value, int | float)
            ):
                merged[key] = min(merged[key], value)  # both bounds apply: the tighter one counts
            elif (
                key in _LOWER_BOUNDS
                and isinstance(merged.get(key), int | float)
                and isinstance(value, int | float)
            ):
                merged[key] = max(merged[key], value)
            elif key == "type" and "type" in merged:
                left, right = _types(merged), _types({"type": value})
                if left is not None and right is not None:
                    both = {t for t in left if _covers(right, t)} | {t for t in right if _covers(left, t)}
                    merged["type"] = sorted(both & (left | right) or left & right)
            else:
                merged.setdefault(key, value)
    return merged


class _Comparer:
    def __init__(self, registry: Registry[Any], writer_label: str, reader_label: str) -> None:
        self._resolver = registry.resolver()
        self._w = writer_label
        self._r = reader_label

    def _reason(self, path: Sequence[str | int], rule: str, **values: Any) -> Incompatibility:
        en, ja = COMPATIBILITY[rule]
        fields = {"w": self._w, "r": self._r, **values}
        return Incompatibility(_pointer(path), rule, en.format(**fields), ja.format(**fields))

    def _keyword_differs(
        self, writer: dict[str, Any], reader: dict[str, Any], path: Sequence[str | int], keyword: str
    ) -> Incompatibility:
        """The reader has `keyword` and the writer has another value (changed) or none (added)."""
        rule = "KEYWORD_CHANGED" if keyword in writer else "KEYWORD_ADDED"
        return self._reason(
            [*path, keyword], rule, keyword=keyword, wv=_show(writer.get(keyword)), rv=_show(reader[keyword])
        )

    def _prepare(self, node: Any, path: Sequence[str | int], problems: list[Incompatibility]) -> Any:
        """Follow ``$ref`` and fold ``allOf`` so both sides are compared keyword by keyword."""
        for _ in range(_MAX_DEPTH):
            if not isinstance(node, dict):
                return node
            if "$ref" in node:
                ref = node["$ref"]
                try:
                    target = self._resolver.lookup(ref).contents
                except Unresolvable:
                    problems.append(self._reason(path, "REF_UNRESOLVABLE", rv=_show(ref)))
                    return True
                rest = {k: v for k, v in node.items() if k != "$ref"}
                if target is False:
                    return False
                node = _merge([target if isinstance(target, dict) else {}, rest])
                continue
            conjuncts = node.get("allOf")
            if isinstance(conjuncts, list):
                parts: list[Mapping[str, Any]] = [{k: v for k, v in node.items() if k != "allOf"}]
                for index, conjunct in enumerate(conjuncts):
                    prepared = self._prepare(conjunct, [*path, "allOf", index], problems)
                    if prepared is False:
                        return False
                    if isinstance(prepared, dict):
                        parts.append(prepared)
                node = _merge(parts)
                continue
            return node
        return node

    def compare(
        self, writer: Any, reader: Any, path: Sequence[str | int], seen: frozenset[tuple[int, int]]
    ) -> list[Incompatibility]:
        problems: list[Incompatibility] = []
        writer = self._prepare(writer, path, problems)
        reader = self._prepare(reader, path, problems)
        if writer is False or _unconstrained(reader):
            return problems
        if reader is False:
            return [*problems, self._reason(path, "SCHEMA_REJECTS_ALL")]
        if writer is True:
            writer = {}
        if not isinstance(writer, dict) or not isinstance(reader, dict):
            return problems
        pair = (id(writer), id(reader))
        if pair in seen or len(path) > 4 * _MAX_DEPTH:
            return problems  # recursive schemas: assume the cycle holds (coinduction)
        seen = seen | {pair}
        w_alternatives = "anyOf" if "anyOf" in writer else "oneOf" if "oneOf" in writer else None
        if w_alternatives is not None and "anyOf" not in reader and "oneOf" not in reader:
            # The writer wrote one of its alternatives: each must be readable on its own.
            return problems + self._each_alternative(writer, w_alternatives, reader, path, seen)

        w_types, r_types = _types(writer), _types(reader)
        type_change = self._type_change(w_types, r_types, path)
        if type_change is not None:
            problems.append(type_change)
            if type_change.rule == "TYPE_CHANGED":
                return problems  # no value of the writer is readable: keyword details add nothing
        problems += self._constraints(writer, reader, path, seen, _shared_types(w_types, r_types))
        return problems

    def _type_change(
        self, w_types: frozenset[str] | None, r_types: frozenset[str] | None, path: Sequence[str | int]
    ) -> Incompatibility | None:
        """The reader refuses some types the writer may write: TYPE_NARROWED, or TYPE_CHANGED when
        it refuses them all."""
        if r_types is None:
            return None
        allowed = _ALL_TYPES if w_types is None else w_types
        lost = sorted(t for t in allowed if not _covers(r_types, t) and t != "integer")
        lost += ["integer"] if "integer" in allowed and not _covers(r_types, "integer") else []
        if not lost:
            return None
        kept = [t for t in allowed if _covers(r_types, t)]
        if "number" in allowed and "integer" in r_types:
            kept.append("integer")  # integers written as numbers stay valid
        rule = "TYPE_NARROWED" if kept else "TYPE_CHANGED"
        wv = sorted(allowed) if w_types is not None else "any type"
        return self._reason([*path, "type"], rule, wv=_show(wv), rv=_show(sorted(r_types)))

    def _constraints(
        self,
        writer: dict[str, Any],
        reader: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
        shared: set[str],
    ) -> list[Incompatibility]:
        """Keyword-by-keyword problems; type-specific keywords only count for the ``shared`` types,
        since a keyword about strings says nothing of the numbers both sides accept."""
        problems: list[Incompatibility] = []
        problems += self._values(writer, reader, path)
        problems += self._bounds(writer, reader, path, shared)
        if "string" in shared:
            problems += self._strings(writer, reader, path)
        if "number" in shared:
            problems += self._multiple_of(writer, reader, path)
        if "array" in shared:
            problems += self._arrays(writer, reader, path, seen)
        if "object" in shared:
            problems += self._objects(writer, reader, path, seen)
        problems += self._alternatives(writer, reader, path, seen)
        for keyword in ("not", "if", "then", "else", "propertyNames", "contains", "dependentSchemas"):
            if keyword in reader and _canon(reader[keyword]) != _canon(writer.get(keyword)):
                problems.append(self._keyword_differs(writer, reader, path, keyword))
        return problems

    def _each_alternative(
        self,
        writer: dict[str, Any],
        keyword: str,
        reader: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> list[Incompatibility]:
        base = {k: v for k, v in writer.items() if k != keyword}
        found: dict[tuple[str, str], Incompatibility] = {}
        for branch in writer[keyword]:
            candidate = _merge([base, branch]) if isinstance(branch, dict) else branch
            for problem in self.compare(candidate, reader, path, seen):
                found.setdefault((problem.pointer, problem.rule), problem)
        return list(found.values())

    def _values(self, writer: dict[str, Any], reader: dict[str, Any], path: Sequence[str | int]) -> list[Any]:
        def allowed(node: dict[str, Any]) -> list[Any] | None:
            if "const" in node:
                return [node["const"]]
            enum = node.get("enum")
            return list(enum) if isinstance(enum, list) else None

        reader_values, writer_values = allowed(reader), allowed(writer)
        if reader_values is None:
            return []
        keyword = "const" if "const" in reader else "enum"
        if writer_values is None:
            return [self._reason([*path, keyword], "ENUM_ADDED", rv=_show(reader_values))]
        accepted = {_canon(v) for v in reader_values}
        missing = [v for v in writer_values if _canon(v) not in accepted]
        if missing:
            return [self._reason([*path, keyword], "ENUM_NARROWED", wv=_show(missing))]
        return []

    def _bounds(
        self, writer: dict[str, Any], reader: dict[str, Any], path: Sequence[str | int], shared: set[str]
    ) -> list[Incompatibility]:
        problems = []
        for keyword in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
            if keyword not in reader or _BOUND_TYPES[keyword] not in shared:
                continue
            new, old = reader[keyword], writer.get(keyword)
            if not isinstance(new, int | float) or isinstance(new, bool):
                continue
            if old is None:
                problems.append(
                    self._reason([*path, keyword], "KEYWORD_ADDED", keyword=keyword, rv=_show(new))
                )
                continue
            stricter = new > old if keyword in _LOWER_BOUNDS else new < old
            if stricter:
                problems.append(
                    self._reason(
                        [*path, keyword], "KEYWORD_NARROWED", keyword=keyword, wv=_show(old), rv=_show(new)
                    )
                )
        return problems

    def _strings(
        self, writer: dict[str, Any], reader: dict[str, Any], path: Sequence[str | int]
    ) -> list[Any]:
        problems = []
        for keyword in ("pattern", "format"):
            if keyword in reader and reader[keyword] != writer.get(keyword):
                problems.append(self._keyword_differs(writer, reader, path, keyword))
        return problems

    def _multiple_of(
        self, writer: dict[str, Any], reader: dict[str, Any], path: Sequence[str | int]
    ) -> list[Any]:
        new, old = reader.get("multipleOf"), writer.get("multipleOf")
        if not isinstance(new, int | float):
            return []
        if not isinstance(old, int | float):
            return [self._reason([*path, "multipleOf"], "KEYWORD_ADDED", keyword="multipleOf", rv=_show(new))]
        ratio = old / new
        if abs(ratio - round(ratio)) > 1e-9:
            return [
                self._reason(
                    [*path, "multipleOf"],
                    "KEYWORD_CHANGED",
                    keyword="multipleOf",
                    wv=_show(old),
                    rv=_show(new),
                )
            ]
        return []

    def _arrays(
        self,
        writer: dict[str, Any],
        reader: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> list[Incompatibility]:
        problems: list[Incompatibility] = []
        w_prefix: list[Any] = writer["prefixItems"] if isinstance(writer.get("prefixItems"), list) else []
        r_prefix: list[Any] = reader["prefixItems"] if isinstance(reader.get("prefixItems"), list) else []
        w_items, r_items = writer.get("items", True), reader.get("items", True)

        def writer_at(index: int) -> Any:
            return w_prefix[index] if index < len(w_prefix) else w_items

        for index, schema in enumerate(r_prefix):
            problems += self.compare(writer_at(index), schema, [*path, "prefixItems", index], seen)
        if "items" in reader:
            for index in range(len(r_prefix), max(len(w_prefix), len(r_prefix))):
                problems += self.compare(writer_at(index), r_items, [*path, "items"], seen)
            problems += self.compare(w_items, r_items, [*path, "items"], seen)
        if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
            problems.append(
                self._reason([*path, "uniqueItems"], "KEYWORD_ADDED", keyword="uniqueItems", rv="true")
            )
        return problems

    def _content(self, node: dict[str, Any], name: str) -> tuple[str, Any]:
        """How ``node`` treats a property it does not declare: ("open", True), ("closed", False) or
        ("partial", schema) -- a matching patternProperties or an additionalProperties schema."""
        for pattern, schema in (node.get("patternProperties") or {}).items():
            try:
                if search(pattern, name):  # RE2: a schema's pattern never runs on a backtracking engine
                    return "partial", schema
            except UnsupportedPattern:
                continue  # lint refuses it; the comparison treats it as matching nothing
        extra = node.get("additionalProperties", node.get("unevaluatedProperties", True))
        if extra is False:
            return "closed", False
        if _unconstrained(extra):
            return "open", True
        return "partial", extra

    def _objects(
        self,
        writer: dict[str, Any],
        reader: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> list[Incompatibility]:
        w_props: dict[str, Any] = writer.get("properties") or {}
        r_props: dict[str, Any] = reader.get("properties") or {}
        w_required = set(writer.get("required") or [])
        r_required = set(reader.get("required") or [])
        problems, reported_required = self._added_properties(writer, w_props, r_props, r_required, path, seen)
        problems += self._removed_properties(reader, w_props, r_props, path, seen)
        problems += self._required_added(r_props, r_required - w_required - reported_required, path)
        problems += self._additional(writer, reader, path, seen)
        problems += self._dependent_required(writer, reader, path)
        return problems

    def _added_properties(
        self,
        writer: dict[str, Any],
        w_props: dict[str, Any],
        r_props: dict[str, Any],
        r_required: set[str],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> tuple[list[Incompatibility], set[str]]:
        """Problems of the reader's properties (compared, or added), and the required ones already
        reported as added to a closed writer (so they are not reported twice)."""
        problems: list[Incompatibility] = []
        reported_required: set[str] = set()
        for name, schema in r_props.items():
            where = [*path, "properties", name]
            if name in w_props:
                problems += self.compare(w_props[name], schema, where, seen)
                continue
            model, extra = self._content(writer, name)
            if model == "open":
                if not _unconstrained(schema):
                    problems.append(self._reason(where, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", name=name))
            elif model == "partial":
                if self.compare(extra, schema, where, seen):
                    problems.append(
                        self._reason(
                            where, "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", name=name
                        )
                    )
            elif name in r_required and not (isinstance(schema, dict) and "default" in schema):
                problems.append(
                    self._reason(where, "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", name=name)
                )
                reported_required.add(name)
        return problems, reported_required

    def _removed_properties(
        self,
        reader: dict[str, Any],
        w_props: dict[str, Any],
        r_props: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> list[Incompatibility]:
        """Writer properties the reader no longer declares: fine unless its content model refuses them."""
        problems: list[Incompatibility] = []
        for name, schema in w_props.items():
            if name in r_props:
                continue
            where = [*path, "properties", name]
            model, extra = self._content(reader, name)
            if model == "closed":
                problems.append(self._reason(where, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", name=name))
            elif model == "partial" and self.compare(schema, extra, where, seen):
                problems.append(
                    self._reason(
                        where, "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", name=name
                    )
                )
        return problems

    def _required_added(
        self, r_props: dict[str, Any], newly_required: set[str], path: Sequence[str | int]
    ) -> list[Incompatibility]:
        problems: list[Incompatibility] = []
        for name in sorted(newly_required):
            declared = r_props.get(name)
            if isinstance(declared, dict) and "default" in declared:
                continue  # Confluent: REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED is compatible
            problems.append(self._reason([*path, "required"], "REQUIRED_ATTRIBUTE_ADDED", name=name))
        return problems

    def _dependent_required(
        self, writer: dict[str, Any], reader: dict[str, Any], path: Sequence[str | int]
    ) -> list[Incompatibility]:
        problems: list[Incompatibility] = []
        w_dependent = writer.get("dependentRequired") or {}
        for name, needed in (reader.get("dependentRequired") or {}).items():
            extra_needed = sorted(set(needed) - set(w_dependent.get(name, [])))
            if extra_needed:
                problems.append(
                    self._reason(
                        [*path, "dependentRequired", name],
                        "DEPENDENT_REQUIRED_ADDED",
                        name=name,
                        rv=_show(extra_needed),
                    )
                )
        return problems

    def _additional(
        self,
        writer: dict[str, Any],
        reader: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> list[Incompatibility]:
        w_extra = writer.get("additionalProperties", True)
        r_extra = reader.get("additionalProperties", True)
        where = [*path, "additionalProperties"]
        if w_extra is False or _unconstrained(r_extra):
            return []  # a closed writer writes no additional property; an open reader takes any
        if r_extra is False:
            return [self._reason(where, "ADDITIONAL_PROPERTIES_REMOVED")]
        if _unconstrained(w_extra):
            return [self._reason(where, "ADDITIONAL_PROPERTIES_NARROWED")]
        return self.compare(w_extra, r_extra, where, seen)

    def _alternatives(
        self,
        writer: dict[str, Any],
        reader: dict[str, Any],
        path: Sequence[str | int],
        seen: frozenset[tuple[int, int]],
    ) -> list[Incompatibility]:
        r_keyword = "anyOf" if "anyOf" in reader else "oneOf" if "oneOf" in reader else None
        w_keyword = "anyOf" if "anyOf" in writer else "oneOf" if "oneOf" in writer else None
        if r_keyword is None:
            return []
        r_branches = reader[r_keyword]
        base = {k: v for k, v in writer.items() if k not in ("anyOf", "oneOf")}

        def accepted(candidate: Any) -> bool:
            return any(not self.compare(candidate, branch, [*path, r_keyword], seen) for branch in r_branches)

        if w_keyword is None:
            if accepted(base):
                return []
            return [self._reason([*path, r_keyword], "COMBINED_TYPE_CHANGED")]
        problems = []
        for index, branch in enumerate(writer[w_keyword]):
            if not accepted(_merge([base, branch]) if isinstance(branch, dict) else branch):
                problems.append(self._reason([*path, w_keyword, index], "SUM_TYPE_NARROWED"))
        return problems


def reader_problems(
    writer: Any,
    reader: Any,
    *,
    resources: Mapping[str, Any] | None = None,
    writer_label: str = "writer",
    reader_label: str = "reader",
) -> list[Incompatibility]:
    """Why data valid under ``writer`` may be invalid under ``reader`` (empty: it never is).

    ``resources`` (URI -> document) resolve ``$ref`` to other registered schemas and bundled
    definitions; nothing else is looked up.
    """
    known = dict(resources or {})
    documents = {}
    for label, document in (("writer", writer), ("reader", reader)):
        base = document.get("$id") if isinstance(document, dict) else None
        base = base if isinstance(base, str) else f"urn:cityos:compare:{label}"
        documents[label] = absolutize(document, base)
        known[base] = documents[label]
    absolute = {uri: absolutize(doc, uri) for uri, doc in known.items()}
    comparer = _Comparer(offline_registry(absolute), writer_label, reader_label)
    return comparer.compare(documents["writer"], documents["reader"], [], frozenset())


def check_mode(
    mode: Mode,
    candidate: Any,
    previous: Sequence[tuple[int, Any]],
    *,
    resources: Mapping[str, Any] | None = None,
    candidate_label: str = "new",
) -> list[Incompatibility]:
    """Every reason ``candidate`` breaks ``mode`` against ``previous`` ((version, document), oldest
    first). Empty means it may be registered."""
    if mode is Mode.NONE or not previous:
        return []
    against = previous if mode.value.endswith("_TRANSITIVE") else previous[-1:]
    problems: list[Incompatibility] = []
    for version, document in reversed(against):
        label = f"v{version}"
        if mode.value.startswith(("BACKWARD", "FULL")):
            for problem in reader_problems(
                document, candidate, resources=resources, writer_label=label, reader_label=candidate_label
            ):
                problems.append(_tagged(problem, version, "backward"))
        if mode.value.startswith(("FORWARD", "FULL")):
            for problem in reader_problems(
                candidate, document, resources=resources, writer_label=candidate_label, reader_label=label
            ):
                problems.append(_tagged(problem, version, "forward"))
    return problems


def _tagged(problem: Incompatibility, version: int, direction: str) -> Incompatibility:
    return Incompatibility(problem.pointer, problem.rule, problem.en, problem.ja, version, direction)
