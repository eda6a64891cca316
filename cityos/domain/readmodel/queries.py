"""Catalog reads for the publish API: datasets, records with JSON-equality filters, schema versions.

Read-only; like the store, nothing here commits or opens a transaction of its own. Deleted records
stay in ``records`` as tombstones (see ``Record``); every record read here excludes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Numeric, Text, and_, case, cast, false, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from cityos.domain.readmodel.query import Condition, Near, RecordQuery
from cityos.kernel.db.models import Dataset, Record, SchemaVersionRow

FilterValue = str | int | float | bool


def list_datasets(session: Session, *, classification: str | None = "public") -> list[Dataset]:
    """Datasets of one classification (all when None), by id."""
    statement = select(Dataset).order_by(Dataset.id)
    if classification is not None:
        statement = statement.where(Dataset.classification == classification)
    return list(session.scalars(statement))


def get_dataset(session: Session, *, dataset_id: str) -> Dataset | None:
    """One dataset by id, whatever its classification (the caller enforces access)."""
    return session.get(Dataset, dataset_id)


def _live(dataset_id: str) -> list[ColumnElement[bool]]:
    # Served, with the key order, by ix_records_dataset_id_deleted_at_record_key.
    return [Record.dataset_id == dataset_id, Record.deleted_at.is_(None)]


def get_record(session: Session, *, dataset_id: str, record_key: str) -> Record | None:
    """One live record by key; None when it never existed or was deleted."""
    return session.scalars(select(Record).where(*_live(dataset_id), Record.record_key == record_key)).first()


def _check_filter(key: str, value: object) -> None:
    if not key:
        raise ValueError("empty filter field name")
    if '"' in key:
        # SQLite JSON paths quote labels with '"' and offer no escape for it.
        raise ValueError(f"unsupported filter field name {key!r}")
    if not isinstance(value, str | int | float):  # bool is an int
        raise ValueError(f"filter {key!r}: unsupported value type {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"filter {key!r}: {value} is not a JSON number")


def _json_field_equals(dialect: str, key: str, value: FilterValue) -> ColumnElement[bool]:
    """``data[key] == value`` with JSON typing: "1" never matches 1, true never matches 1."""
    if dialect == "postgresql":
        # JSONB containment compares JSON values exactly (numbers by value, 1 = 1.0), never casts --
        # a CAST of ->> text could fail on a row of another dataset with the same field name, since
        # PostgreSQL may evaluate it before the dataset condition -- and a GIN index on data serves it.
        return type_coerce(Record.data, JSONB).contains({key: value})
    # SQLite: json_extract gives SQL values (true -> 1, "1" -> '1'), so pin the JSON type as well.
    path = f'$."{key}"'
    kind = func.json_type(Record.data, path)
    if isinstance(value, bool):
        return kind == ("true" if value else "false")
    extracted = func.json_extract(Record.data, path)
    if isinstance(value, int | float):
        return and_(kind.in_(("integer", "real")), extracted == value)
    return and_(kind == "text", extracted == value)


def _sqlite_any_of(key: str, values: Sequence[FilterValue]) -> ColumnElement[bool]:
    """``data[key]`` equal to any of ``values``, typed as ``_json_field_equals`` types one value.

    One ``IN`` per JSON type rather than one comparison per value: a hundred values then cost one
    expanding parameter to compile, not a hundred expressions (compiling those took longer than
    running the query).
    """
    path = f'$."{key}"'
    kind = func.json_type(Record.data, path)
    extracted = func.json_extract(Record.data, path)
    booleans = {v for v in values if isinstance(v, bool)}
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    texts = [v for v in values if isinstance(v, str)]
    alternatives: list[ColumnElement[bool]] = []
    if booleans:
        alternatives.append(kind.in_(sorted("true" if b else "false" for b in booleans)))
    if numbers:
        alternatives.append(and_(kind.in_(("integer", "real")), extracted.in_(numbers)))
    if texts:
        alternatives.append(and_(kind == "text", extracted.in_(texts)))
    return or_(*alternatives)


def list_records(
    session: Session,
    *,
    dataset_id: str,
    filters: Mapping[str, FilterValue],
    limit: int,
    offset: int,
) -> tuple[list[Record], int]:
    """One page of a dataset's live records matching every ``filters`` equality, by key; plus the total.

    Filter values must already have the JSON type the schema declares for the field: the string "5"
    does not match the integer 5.
    """
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be non-negative")
    dialect = session.get_bind(mapper=Record.__mapper__).dialect.name
    conditions = _live(dataset_id)
    for key, value in filters.items():
        _check_filter(key, value)
        conditions.append(_json_field_equals(dialect, key, value))
    total = session.scalar(select(func.count()).select_from(Record).where(*conditions)) or 0
    page = session.scalars(
        # The primary key order is total, so consecutive pages neither skip nor repeat rows.
        select(Record).where(*conditions).order_by(Record.record_key).limit(limit).offset(offset)
    )
    return list(page), total


def latest_schema(session: Session, *, dataset_id: str) -> SchemaVersionRow | None:
    """The highest registered schema version of a dataset, None before its first registration.

    The one definition of "the dataset's current schema" for every reader (publish API, grants'
    field filters, releases): version numbers are unique per dataset, so the answer is unambiguous.
    """
    return session.scalars(
        select(SchemaVersionRow)
        .where(SchemaVersionRow.dataset_id == dataset_id)
        .order_by(SchemaVersionRow.version.desc())
        .limit(1)
    ).first()


# --- rich record queries (publish API: filters, text, geo, sort, keyset) ------------------------

# Metres per degree of latitude (mean); a degree of longitude is this times cos(latitude).
_METRES_PER_DEGREE = 111_195.0


class _JsonField:
    """Typed access to ``data[key]`` on one dialect, built from bound parameters only.

    PostgreSQL uses JSONB operators and guards every cast with ``CASE`` on ``jsonb_typeof``: a bare
    CAST could fail on another row's value of another type, since the planner may evaluate it before
    the other conditions. SQLite's ``json_extract`` never fails and its ``json_type`` pins the type.
    """

    def __init__(self, dialect: str, key: str) -> None:
        _check_filter(key, "")
        self.dialect = dialect
        self.key = key
        self.path = f'$."{key}"'

    def kind(self) -> ColumnElement[str]:
        if self.dialect == "postgresql":
            return func.jsonb_typeof(type_coerce(Record.data, JSONB)[self.key])
        return func.json_type(Record.data, self.path)

    def is_number(self) -> ColumnElement[bool]:
        if self.dialect == "postgresql":
            return self.kind() == "number"
        return self.kind().in_(("integer", "real"))

    def is_string(self) -> ColumnElement[bool]:
        return self.kind() == ("string" if self.dialect == "postgresql" else "text")

    def number(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            text_value = type_coerce(Record.data, JSONB)[self.key].astext
            return case((self.is_number(), cast(text_value, Numeric)), else_=None)
        return func.json_extract(Record.data, self.path)

    def text(self) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            text_value: ColumnElement[Any] = type_coerce(Record.data, JSONB)[self.key].astext
            return text_value
        return func.json_extract(Record.data, self.path)

    def sort_value(self) -> ColumnElement[Any]:
        # JSONB orders numbers numerically and strings as text; json_extract gives SQL values that
        # SQLite orders the same way within one JSON type.
        if self.dialect == "postgresql":
            return type_coerce(Record.data, JSONB)[self.key]
        return func.json_extract(Record.data, self.path)


def _like_pattern(text_value: str) -> str:
    escaped = text_value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _compare(column: ColumnElement[Any], op: str, value: FilterValue) -> ColumnElement[bool]:
    if op == "gt":
        return column > value
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    return column <= value


def _condition_sql(dialect: str, condition: Condition) -> ColumnElement[bool]:
    for value in condition.values:
        _check_filter(condition.field, value)
    if condition.op == "eq":
        return _json_field_equals(dialect, condition.field, condition.values[0])
    if condition.op == "in":
        if dialect == "sqlite":
            return _sqlite_any_of(condition.field, condition.values)
        return or_(*(_json_field_equals(dialect, condition.field, v) for v in condition.values))
    field = _JsonField(dialect, condition.field)
    value = condition.values[0]
    if isinstance(value, str):
        return and_(field.is_string(), _compare(field.text(), condition.op, value))
    return and_(field.is_number(), _compare(field.number(), condition.op, value))


def record_conditions(dialect: str, dataset_id: str, query: RecordQuery) -> list[ColumnElement[bool]]:
    """Every WHERE condition of ``query`` on the live records of one dataset (no keyset position)."""
    conditions = _live(dataset_id)
    conditions += [_condition_sql(dialect, c) for c in query.conditions]
    if query.text is not None:
        pattern = _like_pattern(query.text)
        matches = [
            func.lower(_JsonField(dialect, name).text()).like(pattern, escape="\\")
            for name in query.text_fields
        ]
        conditions.append(or_(*matches) if matches else false())
    if query.bbox is not None:
        box = query.bbox
        conditions += [
            Record.longitude.between(box.min_lon, box.max_lon),
            Record.latitude.between(box.min_lat, box.max_lat),
        ]
    if query.near is not None:
        conditions += _near_conditions(query.near)
    return conditions


def _near_conditions(near: Near) -> list[ColumnElement[bool]]:
    """Within ``distance_m`` of a point: a bounding box an index can use, then an exact-enough circle.

    The circle is the equirectangular approximation scaled at the centre's latitude: plain arithmetic
    that SQLite and PostgreSQL both evaluate without trigonometric SQL functions. Within the 100 km
    cap its error stays below 0.2 % of the radius at Japanese latitudes.
    """
    lat_span = near.distance_m / _METRES_PER_DEGREE
    lon_scale = max(math.cos(math.radians(near.lat)), 1e-6)
    lon_span = lat_span / lon_scale
    dx = (Record.longitude - near.lon) * lon_scale
    dy = Record.latitude - near.lat
    return [
        Record.longitude.between(near.lon - lon_span, near.lon + lon_span),
        Record.latitude.between(near.lat - lat_span, near.lat + lat_span),
        dx * dx + dy * dy <= lat_span * lat_span,
    ]


def _ordering(dialect: str, query: RecordQuery) -> list[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    for key in query.sort:
        value = _JsonField(dialect, key.field).sort_value()
        order.append((value.desc() if key.descending else value.asc()).nulls_last())
    # The key last: a total order, so pages neither skip nor repeat records.
    order.append(Record.record_key.asc())
    return order


def _dialect(session: Session) -> str:
    return session.get_bind(mapper=Record.__mapper__).dialect.name


class RawRecord:
    """A record as read for serving: ``raw`` is the stored JSON text, parsed only when needed.

    Pages and exports of whole records copy the text straight into the response; decoding and
    re-encoding every document was most of a records request's CPU time.
    """

    __slots__ = ("_data", "latitude", "longitude", "raw", "record_key")

    def __init__(self, record_key: str, raw: str, latitude: float | None, longitude: float | None) -> None:
        self.record_key = record_key
        self.raw = raw
        self.latitude = latitude
        self.longitude = longitude
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            try:
                self._data = orjson.loads(self.raw)
            except orjson.JSONDecodeError:  # integers beyond 64 bits: the standard library keeps them
                self._data = json.loads(self.raw)
        return self._data


# Columns a page or an export renders: not the whole ORM entity, which would also load event ids.
# CAST to text: JSONB comes back as its text form, not as a dict the driver has already decoded.
RECORD_COLUMNS = (Record.record_key, cast(Record.data, Text), Record.latitude, Record.longitude)


def count_records(session: Session, *, dataset_id: str, query: RecordQuery) -> int:
    conditions = record_conditions(_dialect(session), dataset_id, query)
    return session.scalar(select(func.count()).select_from(Record).where(*conditions)) or 0


def query_records(
    session: Session, *, dataset_id: str, query: RecordQuery, limit: int, offset: int = 0
) -> list[RawRecord]:
    """One page of live records matching ``query``: keyset after ``query.after_key``, else offset."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be non-negative")
    dialect = _dialect(session)
    conditions = record_conditions(dialect, dataset_id, query)
    if query.after_key is not None:
        conditions.append(Record.record_key > query.after_key)
    statement = select(*RECORD_COLUMNS).where(*conditions).order_by(*_ordering(dialect, query)).limit(limit)
    if offset:
        statement = statement.offset(offset)
    return [RawRecord(*row) for row in session.execute(statement)]


def stream_records(
    session: Session, *, dataset_id: str, query: RecordQuery, batch_size: int = 2_000
) -> Iterator[RawRecord]:
    """Every matching live record, fetched in batches through a server-side cursor (constant memory).

    ``stream_results`` makes psycopg use a named cursor on PostgreSQL; SQLite's cursor is lazy anyway.
    """
    dialect = _dialect(session)
    statement = (
        select(*RECORD_COLUMNS)
        .where(*record_conditions(dialect, dataset_id, query))
        .order_by(*_ordering(dialect, query))
        .execution_options(stream_results=True, yield_per=batch_size)
    )
    for row in session.execute(statement):
        yield RawRecord(*row)


def dataset_extent(session: Session, *, dataset_id: str) -> tuple[float, float, float, float] | None:
    """(min lon, min lat, max lon, max lat) of a dataset's located live records, or None."""
    row = session.execute(
        select(
            func.min(Record.longitude), func.min(Record.latitude),
            func.max(Record.longitude), func.max(Record.latitude),
        ).where(*_live(dataset_id), Record.latitude.is_not(None), Record.longitude.is_not(None))
    ).first()  # fmt: skip
    if row is None or any(v is None for v in row):
        return None
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])
