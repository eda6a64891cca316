"""Catalog reads for the publish API: datasets, records with JSON-equality filters, schema versions.

Read-only; like the store, nothing here commits or opens a transaction of its own. Deleted records
stay in ``records`` as tombstones (see ``Record``); every record read here excludes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from sqlalchemy import ColumnElement, and_, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from cityos.db.models import Dataset, Record, SchemaVersionRow

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
    """The highest registered schema version of a dataset."""
    return session.scalars(
        select(SchemaVersionRow)
        .where(SchemaVersionRow.dataset_id == dataset_id)
        .order_by(SchemaVersionRow.version.desc())
        .limit(1)
    ).first()


def get_schema_by_uri(session: Session, *, uri: str) -> SchemaVersionRow | None:
    """A schema version by its URI (its ``$id``, the events' ``dataschema``)."""
    return session.scalars(select(SchemaVersionRow).where(SchemaVersionRow.uri == uri)).first()
