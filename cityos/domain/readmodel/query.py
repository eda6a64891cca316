"""The records query language: query-string parameters parsed into a typed ``RecordQuery``. Pure.

Every parser returns a value or a ``ParamProblem`` naming the parameter, so the route answers 400
with a precise message. Nothing here builds SQL: ``cityos.domain.readmodel.queries`` turns the typed query
into SQLAlchemy expressions with bound values, so user text never reaches SQL as text.

Syntax (documented in docs/open-data-api.md):

* ``name=value`` equality; ``name[in]=a,b`` any of; ``name[gt|gte|lt|lte]=v`` ranges on numbers and
  on dates/times (ISO text compares in time order);
* ``q=`` text contained in any string field; ``bbox=minLon,minLat,maxLon,maxLat``;
  ``near=lon,lat`` with ``distance=`` metres; ``sort=name,-other``; ``fields=a,b``;
* ``cursor=`` the opaque ``next_cursor`` of the previous page (keyset on the record key).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from cityos.domain.readmodel.filters import (
    FilterValue,
    Invalid,
    ParamProblem,
    convert,
    declared_types,
)

Operator = Literal["eq", "in", "gt", "gte", "lt", "lte"]
RANGE_OPERATORS: frozenset[str] = frozenset({"gt", "gte", "lt", "lte"})

# Parameters the endpoint owns; they win over a schema property of the same name.
RESERVED = frozenset(
    {"limit", "offset", "format", "bom", "excel", "q", "bbox", "near", "distance", "sort", "fields", "cursor"}
)

MAX_IN_VALUES = 100
MAX_DISTANCE_M = 100_000.0
DEFAULT_DISTANCE_M = 1_000.0
MAX_Q_LENGTH = 200

_OPERATOR_PARAM = re.compile(r"^(?P<name>.+)\[(?P<op>[a-z]+)\]$")
# Text formats whose ISO 8601 spelling sorts in time order, so string ranges are meaningful.
_ORDERED_FORMATS = {
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "date-time": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$"),
    "time": re.compile(r"^\d{2}:\d{2}(:\d{2})?$"),
}
_CURSOR_VERSION = 1


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison of a record field with typed values (one value, or several for ``in``)."""

    field: str
    op: Operator
    values: tuple[FilterValue, ...]


@dataclass(frozen=True, slots=True)
class BBox:
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def contains(self, lon: float, lat: float) -> bool:
        return self.min_lon <= lon <= self.max_lon and self.min_lat <= lat <= self.max_lat


@dataclass(frozen=True, slots=True)
class Near:
    lon: float
    lat: float
    distance_m: float


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class RecordQuery:
    """A parsed records query: what to match, in which order, which fields to return."""

    conditions: tuple[Condition, ...] = ()
    text: str | None = None
    # String fields ``text`` is looked for in (declared string properties the caller may read).
    text_fields: tuple[str, ...] = ()
    bbox: BBox | None = None
    near: Near | None = None
    sort: tuple[SortKey, ...] = ()
    fields: tuple[str, ...] | None = None
    after_key: str | None = None  # keyset position decoded from ``cursor``
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def keyset(self) -> bool:
        """Whether the order is the record key alone, so a cursor can continue it."""
        return not self.sort


def encode_cursor(record_key: str) -> str:
    """Opaque to clients: versioned so the format can change without breaking old links silently."""
    payload = orjson.dumps({"v": _CURSOR_VERSION, "k": record_key})
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> str | ParamProblem:
    problem = ParamProblem("cursor", "not a cursor returned by this API (use next_cursor as given)")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return problem
    if not isinstance(payload, dict) or payload.get("v") != _CURSOR_VERSION:
        return problem
    key = payload.get("k")
    return key if isinstance(key, str) else problem


def _properties(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    properties = schema.get("properties") if schema is not None else None
    return properties if isinstance(properties, Mapping) else {}


def _visible(name: str, declared: Mapping[str, Any], allowed: frozenset[str] | None) -> bool:
    # A field the caller may not read is refused exactly like an undeclared one: the error must not
    # reveal which hidden fields exist.
    return isinstance(declared.get(name), Mapping) and (allowed is None or name in allowed)


_UNKNOWN = "not a declared property of this dataset's schema"


def _floats(raw: str, count: int, parameter: str) -> tuple[float, ...] | ParamProblem:
    parts = raw.split(",")
    if len(parts) != count:
        return ParamProblem(parameter, f"expected {count} comma-separated numbers, got {len(parts)}")
    numbers: list[float] = []
    for part in parts:
        try:
            number = float(part.strip())
        except ValueError:
            return ParamProblem(parameter, f"{part!r} is not a number")
        if not math.isfinite(number):
            return ParamProblem(parameter, f"{part!r} is not a finite number")
        numbers.append(number)
    return tuple(numbers)


def _check_point(lon: float, lat: float, parameter: str) -> ParamProblem | None:
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        return ParamProblem(parameter, "longitude must be within [-180, 180] and latitude within [-90, 90]")
    return None


def parse_bbox(raw: str) -> BBox | ParamProblem:
    numbers = _floats(raw, 4, "bbox")
    if isinstance(numbers, ParamProblem):
        return numbers
    min_lon, min_lat, max_lon, max_lat = numbers
    for lon, lat in ((min_lon, min_lat), (max_lon, max_lat)):
        problem = _check_point(lon, lat, "bbox")
        if problem is not None:
            return problem
    if min_lat > max_lat:
        return ParamProblem("bbox", "minLat is greater than maxLat (order: minLon,minLat,maxLon,maxLat)")
    if min_lon > max_lon:
        # Boxes crossing the antimeridian are legal in RFC 7946 but meaningless for a Japanese city.
        return ParamProblem(
            "bbox", "minLon is greater than maxLon; boxes across the antimeridian are not supported"
        )
    return BBox(min_lon, min_lat, max_lon, max_lat)


def parse_near(raw: str, distance: str | None) -> Near | ParamProblem:
    numbers = _floats(raw, 2, "near")
    if isinstance(numbers, ParamProblem):
        return numbers
    lon, lat = numbers
    problem = _check_point(lon, lat, "near")
    if problem is not None:
        return problem
    metres = DEFAULT_DISTANCE_M
    if distance is not None:
        parsed = _floats(distance, 1, "distance")
        if isinstance(parsed, ParamProblem):
            return parsed
        metres = parsed[0]
        if not 0 < metres <= MAX_DISTANCE_M:
            return ParamProblem("distance", f"must be > 0 and at most {MAX_DISTANCE_M:.0f} metres")
    return Near(lon, lat, metres)


def _condition(
    name: str, op: str, raw: str, schema: Mapping[str, Any], prop: Mapping[str, Any], parameter: str
) -> Condition | ParamProblem:
    types = declared_types(schema, prop)
    if op == "eq":
        result = convert(raw, types)
        if isinstance(result, Invalid):
            return ParamProblem(parameter, result.reason)
        return Condition(name, "eq", (result.value,))
    if op == "in":
        parts = raw.split(",")
        if len(parts) > MAX_IN_VALUES:
            return ParamProblem(parameter, f"at most {MAX_IN_VALUES} values")
        values: list[FilterValue] = []
        for part in parts:
            converted = convert(part, types)
            if isinstance(converted, Invalid):
                return ParamProblem(parameter, converted.reason)
            values.append(converted.value)
        return Condition(name, "in", tuple(values))
    if op not in RANGE_OPERATORS:
        return ParamProblem(parameter, f"unknown operator {op!r}; use in, gt, gte, lt or lte")
    if "integer" in types or "number" in types:
        converted = convert(raw, tuple(t for t in types if t in ("integer", "number")))
        if isinstance(converted, Invalid):
            return ParamProblem(parameter, converted.reason)
        return Condition(name, op, (converted.value,))  # type: ignore[arg-type]
    pattern = _ORDERED_FORMATS.get(str(prop.get("format", "")))
    if "string" in types and pattern is not None:
        if not pattern.fullmatch(raw):
            return ParamProblem(parameter, f"expected an ISO 8601 {prop.get('format')}, got {raw!r}")
        return Condition(name, op, (raw,))  # type: ignore[arg-type]
    return ParamProblem(parameter, "ranges apply to numbers, dates and times only")


def _names(raw: str, parameter: str) -> list[str] | ParamProblem:
    names = [part.strip() for part in raw.split(",")]
    if not raw or any(not n for n in names):
        return ParamProblem(parameter, "expected comma-separated property names")
    return names


def _bbox_param(raw: str, has_location: bool) -> BBox | ParamProblem:
    if not has_location:
        return ParamProblem("bbox", "this dataset declares no location")
    return parse_bbox(raw)


def _near_param(options: Mapping[str, str], has_location: bool) -> Near | ParamProblem:
    """``near`` with its optional ``distance``; a ``distance`` alone is refused, not ignored."""
    if "near" not in options:
        return ParamProblem("distance", "needs near=lon,lat")
    if not has_location:
        return ParamProblem("near", "this dataset declares no location")
    return parse_near(options["near"], options.get("distance"))


def _parse_sort(
    raw: str, declared: Mapping[str, Any], allowed_fields: frozenset[str] | None
) -> tuple[SortKey, ...] | ParamProblem:
    names = _names(raw, "sort")
    if isinstance(names, ParamProblem):
        return names
    sort: list[SortKey] = []
    for entry in names:
        descending = entry.startswith("-")
        name = entry.lstrip("-+")
        if not _visible(name, declared, allowed_fields):
            return ParamProblem("sort", f"{name!r}: {_UNKNOWN}")
        sort.append(SortKey(name, descending))
    return tuple(sort)


def _parse_fields(
    raw: str, declared: Mapping[str, Any], allowed_fields: frozenset[str] | None
) -> tuple[str, ...] | ParamProblem:
    names = _names(raw, "fields")
    if isinstance(names, ParamProblem):
        return names
    for name in names:
        if not _visible(name, declared, allowed_fields):
            return ParamProblem("fields", f"{name!r}: {_UNKNOWN}")
    return tuple(dict.fromkeys(names))


def _parse_cursor(raw: str, has_sort: bool, offset: str | None) -> str | ParamProblem:
    """The record key a cursor continues after; only meaningful in plain record-key order."""
    if has_sort:
        return ParamProblem("cursor", "cursor pagination follows the record key order; drop sort")
    if offset not in (None, "0"):
        return ParamProblem("cursor", "use either cursor or offset, not both")
    return decode_cursor(raw)


def parse_query(
    params: Iterable[tuple[str, str]],
    schema: Mapping[str, Any] | None,
    *,
    allowed_fields: frozenset[str] | None = None,
    has_location: bool = False,
) -> RecordQuery | ParamProblem:
    """Parse the whole query string of a records request (paging and format are read elsewhere).

    ``allowed_fields`` is the caller's projection from ``read_access`` (None: every field).
    """
    declared = _properties(schema)
    options: dict[str, str] = {}
    conditions: list[Condition] = []
    seen: set[str] = set()
    for parameter, raw in params:
        if parameter in seen:
            return ParamProblem(parameter, "given more than once; one value per parameter is supported")
        seen.add(parameter)
        if parameter in RESERVED:
            options[parameter] = raw
            continue
        match = _OPERATOR_PARAM.fullmatch(parameter)
        name, op = (match["name"], match["op"]) if match else (parameter, "eq")
        if not _visible(name, declared, allowed_fields):
            return ParamProblem(parameter, _UNKNOWN)
        assert schema is not None  # a declared property implies a schema
        parsed = _condition(name, op, raw, schema, declared[name], parameter)
        if isinstance(parsed, ParamProblem):
            return parsed
        conditions.append(parsed)
    return _build_query(conditions, options, schema, declared, allowed_fields, has_location)


def _build_query(
    conditions: list[Condition],
    options: Mapping[str, str],
    schema: Mapping[str, Any] | None,
    declared: Mapping[str, Any],
    allowed_fields: frozenset[str] | None,
    has_location: bool,
) -> RecordQuery | ParamProblem:
    """The query from its filters and the endpoint's own parameters (``options``).

    The checks run in a fixed order (q, bbox, near, sort, fields, cursor) so a request with several
    mistakes always gets the same 400. Each option is parsed only when present: this is on the
    open-data API's hot path.
    """
    text: str | None = None
    if "q" in options:
        text = options["q"].strip()
        if not text or len(text) > MAX_Q_LENGTH:
            return ParamProblem("q", f"expected 1 to {MAX_Q_LENGTH} characters of text")
    text_fields = tuple(
        n
        for n in declared
        if _visible(n, declared, allowed_fields) and "string" in declared_types(schema or {}, declared[n])
    )

    bbox: BBox | None = None
    if "bbox" in options:
        parsed_bbox = _bbox_param(options["bbox"], has_location)
        if isinstance(parsed_bbox, ParamProblem):
            return parsed_bbox
        bbox = parsed_bbox
    near: Near | None = None
    if "near" in options or "distance" in options:
        parsed_near = _near_param(options, has_location)
        if isinstance(parsed_near, ParamProblem):
            return parsed_near
        near = parsed_near

    sort: tuple[SortKey, ...] = ()
    if "sort" in options:
        parsed_sort = _parse_sort(options["sort"], declared, allowed_fields)
        if isinstance(parsed_sort, ParamProblem):
            return parsed_sort
        sort = parsed_sort
    fields: tuple[str, ...] | None = None
    if "fields" in options:
        parsed_fields = _parse_fields(options["fields"], declared, allowed_fields)
        if isinstance(parsed_fields, ParamProblem):
            return parsed_fields
        fields = parsed_fields
    after_key: str | None = None
    if "cursor" in options:
        decoded = _parse_cursor(options["cursor"], bool(sort), options.get("offset"))
        if isinstance(decoded, ParamProblem):
            return decoded
        after_key = decoded

    return RecordQuery(
        conditions=tuple(conditions),
        text=text,
        text_fields=text_fields,
        bbox=bbox,
        near=near,
        sort=sort,
        fields=fields,
        after_key=after_key,
    )


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (mean Earth radius), the reference for ``near``."""
    radius = 6_371_008.8
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))
