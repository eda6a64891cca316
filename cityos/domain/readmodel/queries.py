"""Catalog reads for the publish API: datasets, records with JSON-equality filters, schema versions.

Read-only; like the store, nothing here commits or opens a transaction of its own. Deleted records
stay in ``records`` as tombstones (see ``Record``); every record read here excludes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    LargeBinary,
    Numeric,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from cityos.domain.readmodel.query import Condition, Near, RecordQuery
from cityos.kernel.db.models import Dataset, Record, SchemaVersionRow

FilterValue = str | int | float | bool
# One condition's (or clause's) part of a query's shape; see ``query_plan``.
ShapeToken = tuple[Any, ...]
Shape = tuple[ShapeToken, ...]


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


def _compare(
    column: ColumnElement[Any], op: str, value: FilterValue | BindParameter[Any]
) -> ColumnElement[bool]:
    if op == "gt":
        return column > value
    if op == "gte":
        return column >= value
    if op == "lt":
        return column < value
    return column <= value


def _condition_plan(dialect: str, condition: Condition) -> tuple[ShapeToken, list[Any]]:
    """The shape token of one condition and the values it binds (see ``_condition_sql``)."""
    for value in condition.values:
        _check_filter(condition.field, value)
    name, first = condition.field, condition.values[0]
    if condition.op == "eq":
        if dialect == "postgresql":
            return ("eq-json", name), [{name: first}]
        if isinstance(first, bool):
            return ("eq-bool", name, first), []
        return ("eq", name, _kind(first)), [first]
    if condition.op == "in":
        if dialect == "postgresql":
            return ("in-json", name, len(condition.values)), [{name: v} for v in condition.values]
        booleans = tuple(sorted({v for v in condition.values if isinstance(v, bool)}))
        numbers = [v for v in condition.values if isinstance(v, int | float) and not isinstance(v, bool)]
        texts = [v for v in condition.values if isinstance(v, str)]
        groups = [group for group in (numbers, texts) if group]
        return ("in", name, booleans, bool(numbers), bool(texts)), groups
    return ("range", name, condition.op, _kind(first)), [first]


def _kind(value: FilterValue) -> str:
    # Part of the shape: a parameter's SQL type follows the first value it was built with, and
    # PostgreSQL casts it to that type.
    return type(value).__name__


def query_plan(dialect: str, dataset_id: str, query: RecordQuery) -> tuple[Shape, list[Any]]:
    """``query`` split into its shape and the values it binds, in binding order. Pure and cheap.

    Building a SQLAlchemy statement and computing its cache key cost more than the database takes
    to answer a page of a city-sized dataset, so statements are built once per shape
    (``_shaped``) and each query binds only its values.
    """
    shape: list[ShapeToken] = [("live",)]
    values: list[Any] = [dataset_id]
    for condition in query.conditions:
        token, bound = _condition_plan(dialect, condition)
        shape.append(token)
        values += bound
    if query.text is not None:
        shape.append(("text", query.text_fields))
        if query.text_fields:
            values.append(_like_pattern(query.text))
    if query.bbox is not None:
        box = query.bbox
        shape.append(("bbox",))
        values += [box.min_lon, box.max_lon, box.min_lat, box.max_lat]
    if query.near is not None:
        shape.append(("near",))
        values += _near_values(query.near)
    return tuple(shape), values


class _Binder:
    """Hands out the plan's values as named parameters, in binding order."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = values
        self.at = 0

    def __call__(self, *, expanding: bool = False) -> BindParameter[Any]:
        name, self.at = f"p{self.at}", self.at + 1
        return bindparam(name, self.values[self.at - 1], expanding=expanding)


def _token_sql(dialect: str, token: ShapeToken, bind: _Binder) -> ColumnElement[bool]:
    """The SQL of one condition token, with JSON typing: "1" never matches 1, true never matches 1."""
    kind = token[0]
    if kind == "eq-json":
        # JSONB containment compares JSON values exactly (numbers by value, 1 = 1.0), never casts --
        # a CAST of ->> text could fail on a row of another dataset with the same field name, since
        # PostgreSQL may evaluate it before the dataset condition -- and a GIN index on data serves it.
        return type_coerce(Record.data, JSONB).contains(bind())
    if kind == "in-json":
        return or_(*(type_coerce(Record.data, JSONB).contains(bind()) for _ in range(token[2])))
    field = _JsonField(dialect, token[1])
    if kind == "eq-bool":
        # SQLite: json_extract gives SQL values (true -> 1, "1" -> '1'), so pin the JSON type as well.
        return field.kind() == ("true" if token[2] else "false")
    if kind == "eq":
        return and_(_is(field, token[2]), field.text() == bind())
    if kind == "in":
        # One IN per JSON type rather than one comparison per value: a hundred values then cost one
        # expanding parameter to compile, not a hundred expressions.
        alternatives: list[ColumnElement[bool]] = []
        if token[2]:
            alternatives.append(field.kind().in_(["true" if b else "false" for b in token[2]]))
        if token[3]:
            alternatives.append(and_(field.is_number(), field.text().in_(bind(expanding=True))))
        if token[4]:
            alternatives.append(and_(field.is_string(), field.text().in_(bind(expanding=True))))
        return or_(*alternatives)
    if token[3] == "str":  # range
        return and_(field.is_string(), _compare(field.text(), token[2], bind()))
    return and_(field.is_number(), _compare(field.number(), token[2], bind()))


def _is(field: _JsonField, kind: str) -> ColumnElement[bool]:
    return field.is_string() if kind == "str" else field.is_number()


def _shape_conditions(dialect: str, shape: Shape, bind: _Binder) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for token in shape:
        kind = token[0]
        if kind == "live":
            # Served, with the key order, by ix_records_dataset_id_deleted_at_record_key.
            conditions += [Record.dataset_id == bind(), Record.deleted_at.is_(None)]
        elif kind == "text":
            pattern = bind() if token[1] else None
            matches = [
                func.lower(_JsonField(dialect, name).text()).like(pattern, escape="\\") for name in token[1]
            ]
            conditions.append(or_(*matches) if matches else false())
        elif kind == "bbox":
            conditions += [Record.longitude.between(bind(), bind()), Record.latitude.between(bind(), bind())]
        elif kind == "near":
            conditions += _near_sql(bind)
        else:
            conditions.append(_token_sql(dialect, token, bind))
    return conditions


def record_conditions(dialect: str, dataset_id: str, query: RecordQuery) -> list[ColumnElement[bool]]:
    """Every WHERE condition of ``query`` on the live records of one dataset (no keyset position)."""
    shape, values = query_plan(dialect, dataset_id, query)
    return _shape_conditions(dialect, shape, _Binder(values))


def _near_values(near: Near) -> list[float]:
    lat_span = near.distance_m / _METRES_PER_DEGREE
    lon_scale = max(math.cos(math.radians(near.lat)), 1e-6)
    lon_span = lat_span / lon_scale
    return [near.lon - lon_span, near.lon + lon_span, near.lat - lat_span, near.lat + lat_span,
            near.lon, lon_scale, near.lat, lat_span * lat_span]  # fmt: skip


def _near_sql(bind: _Binder) -> list[ColumnElement[bool]]:
    """Within ``distance_m`` of a point: a bounding box an index can use, then an exact-enough circle.

    The circle is the equirectangular approximation scaled at the centre's latitude: plain arithmetic
    that SQLite and PostgreSQL both evaluate without trigonometric SQL functions. Within the 100 km
    cap its error stays below 0.2 % of the radius at Japanese latitudes.
    """
    box = [Record.longitude.between(bind(), bind()), Record.latitude.between(bind(), bind())]
    dx = (Record.longitude - bind()) * bind()
    dy = Record.latitude - bind()
    return [*box, dx * dx + dy * dy <= bind()]


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


# Statements by query shape (``query_plan``), each built once: bounded, since a shape names only
# declared fields, operators, value types and clauses, and cleared whole in the unlikely case a
# client walks through more shapes than this.
_MAX_SHAPES = 1024
_STATEMENTS: dict[Hashable, Select[Any]] = {}


def _shaped(key: Hashable, build: Callable[[], Select[Any]]) -> Select[Any]:
    statement = _STATEMENTS.get(key)
    if statement is None:
        if len(_STATEMENTS) >= _MAX_SHAPES:
            _STATEMENTS.clear()
        # Two threads may build the same shape at once; either statement is right.
        statement = _STATEMENTS[key] = build()
    return statement


def _parameters(values: Sequence[Any]) -> dict[str, Any]:
    return {f"p{index}": value for index, value in enumerate(values)}


class _DriverStatement:
    """A shape's statement as the driver's own SQL text and argument order, compiled once.

    SQLAlchemy's per-execution work (execution context, parameter processing, result wrapping)
    cost more CPU than SQLite takes to answer a small page; handing the compiled text to the DBAPI
    cursor of the same connection, in the same transaction, runs the very same SQL without it.
    """

    __slots__ = ("columns", "defaults", "names", "processors", "sql")

    def __init__(self, statement: Select[Any], compiled: Any, dialect: Dialect, names: Sequence[str]) -> None:
        self.sql: str = compiled.string
        self.names = tuple(names)
        # Values fixed in the statement itself (JSON paths, literals compared with): bound each time.
        self.defaults: dict[str, Any] = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        self.processors = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
        )
        # What SQLAlchemy would make of each column (dates, JSON documents); None when all are plain.
        convert = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        self.columns = None if all(c is None for c in convert) else tuple(convert)

    def rows(self, fetched: list[Any]) -> list[Any]:
        if self.columns is None:
            return fetched
        return [
            tuple(v if c is None else c(v) for v, c in zip(row, self.columns, strict=True)) for row in fetched
        ]

    def arguments(self, parameters: Mapping[str, Any]) -> tuple[Any, ...]:
        values = self.defaults | dict(parameters)
        return tuple(
            value if process is None else process(value)
            for value, process in zip((values[name] for name in self.names), self.processors, strict=True)
        )


_DRIVER_STATEMENTS: dict[Hashable, _DriverStatement | None] = {}


def _driver_statement(key: Hashable, statement: Select[Any], dialect: Dialect) -> _DriverStatement | None:
    """The statement of ``key`` for the DBAPI cursor, or None when it needs SQLAlchemy at each
    execution: any driver but SQLite's (psycopg's placeholders and JSONB adaptation are its own), an
    expanding ``IN`` list."""
    key = (dialect.name, key)  # one process may read SQLite and PostgreSQL catalogs (tests do)
    if key in _DRIVER_STATEMENTS:
        return _DRIVER_STATEMENTS[key]
    driven: _DriverStatement | None = None
    if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
        compiled = statement.compile(dialect=dialect)
        if (
            compiled.positiontup is not None
            and not compiled.post_compile_params
            and not compiled.literal_execute_params
        ):
            driven = _DriverStatement(statement, compiled, dialect, compiled.positiontup)
    if len(_DRIVER_STATEMENTS) >= _MAX_SHAPES:
        _DRIVER_STATEMENTS.clear()
    _DRIVER_STATEMENTS[key] = driven
    return driven


def run_statement(
    connection: Connection, key: Hashable, statement: Select[Any], parameters: Mapping[str, Any]
) -> Sequence[Any]:
    """All rows (tuples, in the statement's column order) of a statement built once and known by
    ``key``, on the DBAPI cursor of ``connection`` when it can run there.

    Through SQLAlchemy whenever something listens to its cursor events (a test or a bench that
    captures the SQL sees exactly the statements and arguments the cursor would get)."""
    listened = connection.dispatch.before_cursor_execute or connection.dispatch.after_cursor_execute
    driven = None if listened else _driver_statement(key, statement, connection.dialect)
    if driven is None:
        return connection.execute(statement, parameters).all()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(driven.sql, driven.arguments(parameters))
        rows: list[Any] = cursor.fetchall()
    finally:
        cursor.close()
    return driven.rows(rows)


def _connection_of(bind: Session | Connection) -> Connection:
    return bind if isinstance(bind, Connection) else bind.connection()


def count_records(bind: Session | Connection, *, dataset_id: str, query: RecordQuery) -> int:
    # Core execution on the session's connection (same transaction): the ORM layer adds nothing to a
    # plain count but costs more than the query itself on a small dataset.
    connection = _connection_of(bind)
    dialect = connection.dialect.name
    shape, values = query_plan(dialect, dataset_id, query)

    def build() -> Select[Any]:
        conditions = _shape_conditions(dialect, shape, _Binder(values))
        return select(func.count()).select_from(Record).where(*conditions)

    key = ("count", dialect, shape)
    rows = run_statement(connection, key, _shaped(key, build), _parameters(values))
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def query_records(
    bind: Session | Connection, *, dataset_id: str, query: RecordQuery, limit: int, offset: int = 0
) -> list[RawRecord]:
    """One page of live records matching ``query``: keyset after ``query.after_key``, else offset."""
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must be non-negative")
    connection = _connection_of(bind)
    dialect = connection.dialect.name
    shape, values = query_plan(dialect, dataset_id, query)
    parameters = _parameters(values)
    parameters["limit"] = limit
    if query.after_key is not None:
        parameters["after"] = query.after_key
    if offset:
        parameters["offset"] = offset

    def build() -> Select[Any]:
        conditions = _shape_conditions(dialect, shape, _Binder(values))
        if query.after_key is not None:
            conditions.append(Record.record_key > bindparam("after", query.after_key))
        statement = select(*RECORD_COLUMNS).where(*conditions).order_by(*_ordering(dialect, query))
        statement = statement.limit(bindparam("limit", limit))
        return statement.offset(bindparam("offset", offset)) if offset else statement

    key = ("page", dialect, shape, query.sort, query.after_key is not None, bool(offset))
    # Core, as in count_records: columns, not entities, so the ORM layer has nothing to do.
    # ``all()`` fetches the page in one driver call rather than one per row.
    return [RawRecord(*row) for row in run_statement(connection, key, _shaped(key, build), parameters)]


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


# (record key, stored JSON as UTF-8 bytes, latitude, longitude): an export's row as the driver returns it.
RecordRow = tuple[str, bytes, float | None, float | None]


def _json_bytes(dialect: str) -> ColumnElement[bytes]:
    """The stored document as UTF-8 bytes: the driver then copies it instead of decoding it into a
    ``str`` that the export would encode again (decoding was half the cost of reading a row)."""
    if dialect == "postgresql":
        return func.convert_to(cast(Record.data, Text), "UTF8", type_=LargeBinary)
    return cast(cast(Record.data, Text), LargeBinary)


def _export_rows(
    session: Session,
    columns: Sequence[Any],
    dataset_id: str,
    query: RecordQuery,
    batch_size: int,
) -> Iterator[Sequence[Any]]:
    """Batches of the driver's own row tuples of ``columns`` for every matching live record.

    A whole-dataset export spends less time serialising a row than SQLAlchemy spends building a
    ``Row`` for it, so past the first batch the rows come straight from the DB-API cursor's
    ``fetchmany``: a named (server-side) cursor on PostgreSQL, SQLite's lazy cursor otherwise, so
    memory stays at one batch whatever the dataset's size. The first batch goes through the result,
    which may have buffered rows ahead of the cursor.
    """
    dialect = _dialect(session)
    statement = (
        select(*columns)
        .where(*record_conditions(dialect, dataset_id, query))
        .order_by(*_ordering(dialect, query))
        .execution_options(stream_results=True)
    )
    result = session.connection().execute(statement)  # Core: the result that holds the cursor
    try:
        first = result.fetchmany(batch_size)
        if first:
            yield [tuple(row) for row in first]
        if len(first) < batch_size:
            return
        cursor = result.cursor
        while rows := cursor.fetchmany(batch_size):
            yield rows
    finally:
        result.close()


def stream_record_rows(
    session: Session, *, dataset_id: str, query: RecordQuery, batch_size: int = 5_000
) -> Iterator[Sequence[RecordRow]]:
    """What ``stream_records`` reads, as batches of (key, document as bytes, latitude, longitude)."""
    columns = (Record.record_key, _json_bytes(_dialect(session)), Record.latitude, Record.longitude)
    return _export_rows(session, columns, dataset_id, query, batch_size)


def stream_documents(
    session: Session, *, dataset_id: str, query: RecordQuery, batch_size: int = 5_000
) -> Iterator[Sequence[tuple[bytes]]]:
    """Only the documents (as bytes) of what ``stream_records`` reads, in batches: all a table needs."""
    return _export_rows(session, (_json_bytes(_dialect(session)),), dataset_id, query, batch_size)


def last_applied(session: Session, *, dataset_id: str) -> datetime | None:
    """When the catalog last applied a change (upsert or deletion) to any record of the dataset.

    Unlike the dataset's newest *event* time, this moves with every applied change, also a late
    event about an old record, so it can validate a whole-dataset export.
    """
    statement = select(func.max(Record.updated_at)).where(Record.dataset_id == dataset_id)
    return session.scalar(statement)


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
