"""Bulk writes: many rows of one table in one statement, through the driver's fastest safe path.

PostgreSQL rows travel by COPY (an upsert through a transaction's staging table, then one
``INSERT … SELECT … ON CONFLICT``); SQLite's by one ``executemany`` of a multi-row-capable statement.
Values pass through the columns' own bind processors, so they are stored exactly as the ORM stores
them (UTC instants, the engine's JSON text) and a naive datetime is refused the same way. Nothing is
committed: the rows join the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import JSON, Connection, Null, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

__all__ = ["Query", "insert_rows", "pipelined", "upsert_rows"]

# A statement in the driver's own syntax with its positional parameters.
Query = tuple[str, Sequence[Any]]

_Processor = Callable[[Any], Any] | None
_processors: dict[tuple[str, str, str], list[tuple[str, _Processor]]] = {}

# Prefix of the per-session staging tables an upsert copies into (temporary, emptied at commit).
STAGING_PREFIX: Final = "cityos_stage_"


def _columns(table: Table, dialect: Dialect) -> list[tuple[str, _Processor]]:
    """The table's columns, each with the bind processor the ORM would apply on ``dialect``."""
    cache_key = (table.schema or "", table.name, dialect.name)
    found = _processors.get(cache_key)
    if found is None:
        found = [
            (column.name, _processor(column.type.dialect_impl(dialect), dialect)) for column in table.columns
        ]
        _processors[cache_key] = found
    return found


def _processor(impl: TypeEngine[Any], dialect: Dialect) -> _Processor:
    orm = impl.bind_processor(dialect)
    if orm is None or dialect.name != "postgresql" or not isinstance(impl, JSON):
        return orm
    # COPY takes a document as the engine's JSON text, the text the ORM's processor would wrap for
    # psycopg to serialise: the same stored value without the wrapper (a document per record).
    serialize: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps

    def document(value: Any) -> Any:
        if value is JSON.NULL or isinstance(value, Null):
            return orm(value)
        return serialize(value)

    return document


def _tuples(
    columns: list[tuple[str, _Processor]], rows: Sequence[Mapping[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows as value tuples in column order, each value processed as the ORM would."""
    values: list[list[Any]] = []
    for name, processor in columns:
        column = [row[name] for row in rows]
        values.append(column if processor is None else _processed(processor, column))
    return list(zip(*values, strict=True))


def _processed(processor: Callable[[Any], Any], column: list[Any]) -> list[Any]:
    # The rows of a batch share values -- its single "now" stamps every row, NULLs repeat -- so a
    # value identical to the previous row's is converted once (the conversions are most of the cost).
    out: list[Any] = []
    previous: Any = None
    converted: Any = None
    for value in column:
        if value is not previous:
            previous, converted = value, None if value is None else processor(value)
        out.append(converted)
    return out


@contextmanager
def _as_sqlalchemy_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Driver errors raised as SQLAlchemy's (IntegrityError, OperationalError, …), as ``execute``
    would: callers retry and dead-letter on those. Parameters never appear: they are records."""
    dialect = connection.dialect
    dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise DBAPIError.instance(
            statement, None, exc, dbapi_error, hide_parameters=True, dialect=dialect
        ) from exc


def pipelined(connection: Connection, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
    """Run ``queries`` in order on PostgreSQL in one round trip (psycopg's pipeline mode); the rows
    of each (empty for a statement returning none), as the driver returns them.

    For the hot path of a batch: its reads, or its last writes, cost one wait on the server instead
    of one each, and the rows skip SQLAlchemy's result processing (callers convert what they use).
    """
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = "; ".join(sql for sql, _ in queries)
    cursors = [driver.cursor() for _ in queries]
    try:
        with _as_sqlalchemy_errors(connection, statement):
            with driver.pipeline():
                for cursor, (sql, params) in zip(cursors, queries, strict=True):
                    cursor.execute(sql, params)
            # Leaving the pipeline sent it and received every result into its cursor.
            return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def _copy(connection: Connection, table_name: str, names: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    statement = f"COPY {table_name} ({', '.join(names)}) FROM STDIN"
    driver = connection.connection.driver_connection
    assert driver is not None
    with (
        _as_sqlalchemy_errors(connection, statement),
        driver.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)


def insert_rows(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts holding every column of ``table``); a duplicate key raises
    ``IntegrityError`` like a plain INSERT."""
    if not rows:
        return
    columns = _columns(table, connection.dialect)
    names = [name for name, _ in columns]
    if connection.dialect.name == "postgresql":
        _copy(connection, table.name, names, _tuples(columns, rows))
    else:
        _executemany(connection, _insert_sql(table.name, names), _tuples(columns, rows))


def upsert_rows(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str],
    then: Sequence[Query] = (),
) -> None:
    """Insert ``rows`` (dicts holding every column of ``table``, at most one per ``key``), replacing
    every other column of a row whose ``key`` exists. Rows are written in their given order.

    ``then``: statements (the driver's syntax) run after the upsert -- on PostgreSQL in the same
    round trip as its last statement."""
    if not rows:
        for sql, params in then:
            connection.exec_driver_sql(sql, tuple(params))
        return
    columns = _columns(table, connection.dialect)
    names = [name for name, _ in columns]
    on_conflict = _on_conflict(names, key)
    if connection.dialect.name == "postgresql":
        _pg_upsert(connection, table.name, names, _tuples(columns, rows), key, on_conflict, then)
        return
    _executemany(connection, f"{_insert_sql(table.name, names)} {on_conflict}", _tuples(columns, rows))
    for sql, params in then:
        connection.exec_driver_sql(sql, tuple(params))


def _insert_sql(table_name: str, names: Sequence[str]) -> str:
    return f"INSERT INTO {table_name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"


def _on_conflict(names: Sequence[str], key: Sequence[str]) -> str:
    replaced = ", ".join(f"{name} = excluded.{name}" for name in names if name not in key)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {replaced}"


def _executemany(connection: Connection, statement: str, rows: list[tuple[Any, ...]]) -> None:
    # The driver's executemany of processed values: SQLAlchemy's per-row parameter handling was most
    # of a batch's write time, while the statement (and its error wrapping) stays SQLAlchemy's.
    connection.exec_driver_sql(statement, list(rows))


def _pg_upsert(
    connection: Connection,
    table_name: str,
    names: Sequence[str],
    rows: list[tuple[Any, ...]],
    key: Sequence[str],
    on_conflict: str,
    then: Sequence[Query],
) -> None:
    staging = f"{STAGING_PREFIX}{table_name}"
    driver = connection.connection.driver_connection
    assert driver is not None
    # Created on first use in each session, emptied at every commit: a rolled-back batch takes it
    # with it, and a pooler that moves the session between transactions finds none stale. Emptied
    # here as well for a second upsert in one transaction. One round trip (no parameters).
    prepare = (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table_name}) ON COMMIT DELETE ROWS; "
        f"DELETE FROM {staging}"
    )
    with _as_sqlalchemy_errors(connection, prepare), driver.cursor() as cursor:
        cursor.execute(prepare)
    _copy(connection, staging, names, rows)
    listed = ", ".join(names)
    upsert = (
        f"INSERT INTO {table_name} ({listed}) SELECT {listed} FROM {staging} ORDER BY {', '.join(key)} "
        f"{on_conflict}"
    )
    pipelined(connection, [(upsert, ()), *then])
