"""SQLAlchemy 2 models of the catalog. Portable across SQLite (default) and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of every catalog table."""


class Department(Base):
    """A city department: publishes datasets, later a tenant for feeds and grants."""

    __tablename__ = "departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_ja: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    kafka_principal: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Dataset(Base):
    """Dataset metadata, synchronised from ``schemas/<id>/dataset.json``."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_id: Mapped[str] = mapped_column(ForeignKey("departments.id"))
    title_ja: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str] = mapped_column(String(300))
    classification: Mapped[str] = mapped_column(String(16), index=True)  # public|internal|personal
    license: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(200))
    meta: Mapped[dict[str, Any]] = mapped_column(JsonDoc)  # the whole dataset.json
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    # Time of the newest applied record change; None until the first record arrives.
    last_record_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SchemaVersionRow(Base):
    """One registered JSON Schema version of a dataset; ``uri`` is its ``$id``."""

    __tablename__ = "schema_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(500), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Record(Base):
    """Current state of one record of a dataset (latest event wins, by event time then offset)."""

    __tablename__ = "records"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    schema_version: Mapped[int] = mapped_column(Integer)
    event_source: Mapped[str] = mapped_column(String(500))
    event_id: Mapped[str] = mapped_column(String(200))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Position in the validated topic: breaks ties between events with the same time.
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(Integer)
    # Denormalised coordinates for geo output and bbox filters; None when absent.
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class ProcessedEvent(Base):
    """Ledger of applied CloudEvents (source + id): a redelivered event changes nothing."""

    __tablename__ = "processed_events"

    source: Mapped[str] = mapped_column(String(500), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # applied | stale
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
