"""Arrow columns of a dataset, derived from its JSON Schema, and records turned into Arrow batches.

One column per schema property, named by the property's own (Japanese) name, in the schema's
property order, so an analyst's ``SELECT 名称, 緯度 FROM …`` reads what the records API shows as
``名称`` and ``緯度``. Types are chosen so that DuckDB, pandas, pyarrow and Spark all read a native
type while every value stays equal to the records API's:

=========================  =====================================================================
JSON Schema                Arrow / Parquet column
=========================  =====================================================================
``string``                 ``string`` (UTF-8)
``string``, ``date``       ``date32`` (a calendar day; the API's ``"2026-04-01"`` is its ISO form)
``string``, ``date-time``  ``timestamp[us, UTC]`` (the same instant; the writer's offset is not kept)
``integer``                ``int64`` (a JSON ``1.0``, which the schema counts as an integer, is 1)
``number``                 ``float64``
``boolean``                ``bool``
``array`` / ``object``     ``string`` holding the value's compact JSON (field metadata
                           ``encoding: json``): every reader can hold it, DuckDB's ``json`` type
                           and ``json.loads`` read it back, and it never depends on the shape of
                           the records that happen to be in one snapshot
=========================  =====================================================================

A property that allows ``null`` besides one type (``["integer", "null"]``) has that type's column; one
that allows several types, or declares none, is JSON text as well, so that ``"1"`` and ``1`` stay
apart. Every column is nullable: a record without the field has a null there, as the API leaves it out.
A stored value that does not fit its column (only a record that escaped its schema has one) is null
and counted (``BatchBuilder.outside_schema``).

Each field carries metadata readers can show: ``title``, ``x-en`` (the English name), ``description``
and the JSON Schema ``type`` (and ``format``) it came from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa

from cityos.kernel.jsonutil import json_type_name

# Field metadata key telling readers (and ``record_batch``) that a string column holds JSON text.
ENCODING = b"encoding"
JSON_ENCODING = b"json"

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}
_FORMAT_TYPES: dict[str, pa.DataType] = {
    "date": pa.date32(),
    "date-time": pa.timestamp("us", tz="UTC"),
}


def _declared_types(node: Mapping[str, Any]) -> list[str] | None:
    """The non-null JSON types a property allows: from ``type``, else from its ``enum``/``const``."""
    declared = node.get("type")
    if isinstance(declared, str):
        names = [declared]
    elif isinstance(declared, list) and all(isinstance(name, str) for name in declared):
        names = list(declared)
    elif "const" in node or isinstance(node.get("enum"), list):
        values = [node["const"]] if "const" in node else list(node["enum"])
        names = sorted({json_type_name(value) for value in values})
    else:
        return None
    return [name for name in names if name != "null"]


def column_type(node: Mapping[str, Any]) -> tuple[pa.DataType, bool]:
    """(Arrow type, whether the column holds JSON text) of one schema property."""
    types = _declared_types(node)
    if types is None or not types:
        return pa.string(), True
    if set(types) == {"integer", "number"}:
        # Every integer is a number: the wider column holds both.
        return pa.float64(), False
    if len(types) > 1:
        return pa.string(), True
    (kind,) = types
    if kind == "string":
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FORMAT_TYPES:
            return _FORMAT_TYPES[fmt], False
    scalar = _SCALAR_TYPES.get(kind)
    return (pa.string(), True) if scalar is None else (scalar, False)


def _metadata(name: str, node: Mapping[str, Any], *, json_text: bool) -> dict[bytes, bytes]:
    metadata: dict[bytes, bytes] = {}
    for key in ("title", "x-en", "description", "format"):
        value = node.get(key)
        if isinstance(value, str) and value:
            metadata[key.encode()] = value.encode()
    declared = node.get("type")
    if declared is not None:
        metadata[b"type"] = declared.encode() if isinstance(declared, str) else orjson.dumps(declared)
    if json_text:
        metadata[ENCODING] = JSON_ENCODING
    metadata.setdefault(b"title", name.encode())
    return metadata


def arrow_schema(schema_doc: Mapping[str, Any], *, fields: Collection[str] | None = None) -> pa.Schema:
    """The Arrow schema of a dataset's records: one nullable column per property, in schema order.

    ``fields`` narrows it to what a caller may read (their grant, their ``fields=`` choice); the
    order stays the schema's. The schema's ``$id`` and ``title`` travel as schema metadata.
    """
    properties = schema_doc.get("properties")
    if not isinstance(properties, Mapping):
        properties = {}
    wanted = None if fields is None else set(fields)
    columns = []
    for name, node in properties.items():
        if wanted is not None and name not in wanted:
            continue
        spec = node if isinstance(node, Mapping) else {}
        arrow_type, json_text = column_type(spec)
        columns.append(
            pa.field(name, arrow_type, nullable=True, metadata=_metadata(name, spec, json_text=json_text))
        )
    metadata = {
        key.encode(): value.encode()
        for key, value in (("schema_id", schema_doc.get("$id")), ("schema_title", schema_doc.get("title")))
        if isinstance(value, str)
    }
    return pa.schema(columns, metadata=metadata or None)


def is_json_text(field: pa.Field) -> bool:
    return bool(field.metadata) and field.metadata.get(ENCODING) == JSON_ENCODING


def _as_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _as_instant(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    moment = datetime.fromisoformat(value)
    # The schema's format assertion refuses a date-time without an offset before it is stored.
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _as_integer(value: Any) -> Any:
    # JSON Schema counts 1.0 as an integer; the JSON parser hands it over as a float.
    if isinstance(value, float):
        if not value.is_integer():  # Arrow would truncate it silently
            raise ValueError(f"{value!r} is not an integer")
        return int(value)
    return value


def _as_json(value: Any) -> Any:
    return None if value is None else orjson.dumps(value).decode()


def _converter(field: pa.Field) -> Callable[[Any], Any] | None:
    """What a value needs before Arrow takes it for this column; None when nothing."""
    if is_json_text(field):
        return _as_json
    if pa.types.is_date32(field.type):
        return _as_date
    if pa.types.is_timestamp(field.type):
        return _as_instant
    if pa.types.is_integer(field.type):
        return _as_integer
    return None


def _accepted(field: pa.Field) -> frozenset[type] | None:
    """The Python types of the stored values a column takes (None: any, as JSON text takes)."""
    if is_json_text(field):
        return None
    kind = field.type
    if pa.types.is_string(kind) or pa.types.is_date32(kind) or pa.types.is_timestamp(kind):
        return frozenset({str})
    if pa.types.is_boolean(kind):
        return frozenset({bool})
    if pa.types.is_integer(kind):
        return frozenset({int, float})  # a float only when whole (1.0): Arrow refuses any other
    return frozenset({int, float})  # bool is its own type here: true is never the number 1


class BatchBuilder:
    """Turns batches of record documents into Arrow record batches of one schema.

    The converters are chosen once per column, not per value. A value the column cannot hold --
    only a record that escaped its schema can carry one (the catalog stores what ingest validated) --
    is written as null and counted in ``outside_schema`` by column, so a snapshot is still written
    and the writer can say what it left out, instead of one bad record stopping the whole dataset.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._columns = [(field.name, field.type, _converter(field), _accepted(field)) for field in schema]
        self._names = frozenset(schema.names)
        self.outside_schema: Counter[str] = Counter()

    def batch(self, records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
        count = len(records)
        # One pass over the fields each record has, not one look-up per record and column: a
        # dataset's schema often declares many more optional fields than a record fills.
        cells: dict[str, list[Any]] = {}
        names = self._names
        for row, record in enumerate(records):
            for name, value in record.items():
                if value is None:
                    continue
                column = cells.get(name)
                if column is None:
                    if name not in names:
                        continue
                    column = cells[name] = [None] * count
                column[row] = value
        arrays = []
        for name, arrow_type, convert, accepted in self._columns:
            values = cells.get(name)
            if values is None:
                arrays.append(pa.nulls(count, arrow_type))
            else:
                arrays.append(self._array(name, arrow_type, convert, accepted, values))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _array(
        self,
        name: str,
        arrow_type: pa.DataType,
        convert: Callable[[Any], Any] | None,
        accepted: frozenset[type] | None,
        values: list[Any],
    ) -> pa.Array:
        # Nearly every batch: one look at the types present, one conversion, one call into Arrow.
        if accepted is None or set(map(type, values)) <= accepted | {type(None)}:
            try:
                converted = values if convert is None else [None if v is None else convert(v) for v in values]
                return pa.array(converted, type=arrow_type)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                pass
        cleaned = []
        for value in values:
            cleaned.append(None if value is None else self._one(name, arrow_type, convert, accepted, value))
        return pa.array(cleaned, type=arrow_type)

    def _one(
        self,
        name: str,
        arrow_type: pa.DataType,
        convert: Callable[[Any], Any] | None,
        accepted: frozenset[type] | None,
        value: Any,
    ) -> Any:
        if accepted is None or type(value) in accepted:
            try:
                converted = value if convert is None else convert(value)
                pa.array([converted], type=arrow_type)
                return converted
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                pass
        self.outside_schema[name] += 1
        return None


def record_batch(schema: pa.Schema, records: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
    """One Arrow record batch of ``records`` (documents as the records API shows them)."""
    return BatchBuilder(schema).batch(records)


def record_batches(
    schema: pa.Schema,
    batches: Iterable[Sequence[Mapping[str, Any]]],
    *,
    builder: BatchBuilder | None = None,
) -> Iterator[pa.RecordBatch]:
    """Arrow record batches of each batch of documents, lazily, in order (empty batches skipped).
    Pass ``builder`` to read its ``outside_schema`` counts afterwards."""
    builder = builder or BatchBuilder(schema)
    for records in batches:
        if records:
            yield builder.batch(records)
