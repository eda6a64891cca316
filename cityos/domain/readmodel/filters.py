"""Query-string parsing for the records endpoint: pure functions, no I/O.

Every parser returns either a value or a ``ParamProblem`` naming the offending parameter, so the
route can answer 400 with a precise message and tests need neither HTTP nor a database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cityos.kernel.jsonutil import json_type_name

FilterValue = str | int | float | bool
OutputFormat = Literal["json", "csv", "geojson", "ndjson"]

# JSON's number grammar (RFC 8259 §6). Python's float() is laxer (" 1", "1_000", "nan", "inf"), and an
# open-data API should accept exactly what the JSON document would contain.
_JSON_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")

# Both SQLite and PostgreSQL compare JSON integers as signed 64-bit; a bigger literal would make the
# driver raise instead of simply matching nothing.
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_INT64_MAX_CHARS = len(str(_INT64_MIN))

# When a property declares several types, try the most specific first: "12" for ["integer", "string"]
# is far more likely meant as the number.
_TYPE_PREFERENCE = ("boolean", "integer", "number", "string")

_FORMAT_NAMES: dict[str, OutputFormat] = {
    "json": "json",
    "csv": "csv",
    "geojson": "geojson",
    "ndjson": "ndjson",
}

_MEDIA_TYPES: dict[str, OutputFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/geo+json": "geojson",
    # Pre-RFC 7946 name still sent by some GIS clients.
    "application/vnd.geo+json": "geojson",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
}


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """Why one query parameter was refused."""

    parameter: str
    problem: str


def declared_types(schema: Mapping[str, Any], prop: Mapping[str, Any]) -> tuple[str, ...]:
    """JSON types a property may hold, following local ``$ref`` and ``anyOf``/``oneOf``/``allOf``.

    An empty tuple means the schema does not say (e.g. a ``$ref`` to another document); callers then
    compare as text, which is what a property without constraints would hold most of the time.
    """
    return tuple(dict.fromkeys(_collect_types(schema, prop, depth=0)))


def _collect_types(schema: Mapping[str, Any], node: Mapping[str, Any], *, depth: int) -> list[str]:
    # A depth limit keeps a self-referencing schema from recursing forever.
    if depth > 16:
        return []
    declared = node.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    found: list[str] = []
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _resolve_local_ref(schema, ref)
        if target is not None:
            found += _collect_types(schema, target, depth=depth + 1)
    for keyword in ("anyOf", "oneOf", "allOf"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            for branch in branches:
                if isinstance(branch, Mapping):
                    found += _collect_types(schema, branch, depth=depth + 1)
    if not found:
        literals = node["enum"] if isinstance(node.get("enum"), list) else []
        if "const" in node:
            literals = [node["const"]]
        found = [json_type_name(v) for v in literals]
    return found


def _resolve_local_ref(schema: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    if not ref.startswith("#/"):
        return None
    node: Any = schema
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


@dataclass(frozen=True, slots=True)
class Converted:
    """A query value converted to its property's JSON type."""

    value: FilterValue


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a query value does not fit its property's JSON type."""

    reason: str
    # True when the reason is more precise than "expected X" (e.g. out of range) and must be reported
    # even if a later type in the preference order would also fail.
    final: bool = False


_DESCRIPTIONS = {
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
}


def convert(raw: str, types: tuple[str, ...]) -> Converted | Invalid:
    """Convert one query value to the JSON type(s) of its property."""
    if not types:
        return Converted(raw)
    scalar = [t for t in _TYPE_PREFERENCE if t in types]
    if not scalar:
        kinds = " or ".join(types)
        return Invalid(f"the property holds {kinds} values, which cannot be filtered by equality")
    for json_type in scalar:
        result = _convert_one(raw, json_type)
        if isinstance(result, Converted) or result.final:
            return result
    expected = " or ".join(_DESCRIPTIONS[t] for t in scalar)
    return Invalid(f"expected {expected}, got {raw!r}")


def _convert_one(raw: str, json_type: str) -> Converted | Invalid:
    if json_type == "string":
        return Converted(raw)
    if json_type == "boolean":
        if raw in ("true", "false"):
            return Converted(raw == "true")
        return Invalid("not a boolean")
    if json_type == "integer":
        if not _JSON_INTEGER.fullmatch(raw):
            return Invalid("not an integer")
        return _in_int64(raw)
    # "number": integral text stays an int so that large values compare exactly.
    if _JSON_INTEGER.fullmatch(raw):
        return _in_int64(raw)
    if not _JSON_NUMBER.fullmatch(raw):
        return Invalid("not a number")
    value = float(raw)
    if not math.isfinite(value):
        return Invalid(f"{raw!r} is out of range for a number", final=True)
    return Converted(value)


def _in_int64(text: str) -> Converted | Invalid:
    # Judged by length first: Python refuses to convert more than 4,300 digits at all, and no
    # 64-bit integer needs more than 20 characters.
    value = int(text) if len(text) <= _INT64_MAX_CHARS else None
    if value is not None and _INT64_MIN <= value <= _INT64_MAX:
        return Converted(value)
    shown = text if len(text) <= _INT64_MAX_CHARS else f"{text[:_INT64_MAX_CHARS]}… ({len(text)} digits)"
    return Invalid(f"{shown!r} is out of the supported integer range (64-bit)", final=True)


def negotiate_format(format_param: str | None, accept: str | None) -> OutputFormat:
    """Pick the representation: an explicit ``format`` wins, then ``Accept``, then JSON.

    An ``Accept`` that names nothing we serve falls back to JSON instead of 406: open-data clients
    (spreadsheets, scripts) often send odd headers, and a usable answer beats a refusal.
    """
    explicit = _FORMAT_NAMES.get(format_param or "")
    if explicit is not None:
        return explicit
    best: tuple[float, int, OutputFormat] | None = None
    for position, media_range in enumerate((accept or "").split(",")):
        media, quality = parse_media_range(media_range)
        chosen = _MEDIA_TYPES.get(media)
        if chosen is None or quality <= 0:
            continue
        # Highest quality wins; between equals, the client's own order decides.
        candidate = (quality, -position, chosen)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best is not None else "json"


def parse_media_range(media_range: str) -> tuple[str, float]:
    """One ``Accept`` entry as (lower-cased media type, quality); a malformed quality counts as 0."""
    media, *parameters = (part.strip() for part in media_range.split(";"))
    quality = 1.0
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                quality = 0.0
    return media.lower(), quality
