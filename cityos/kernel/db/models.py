"""SQLAlchemy 2 models of the catalog. Portable across SQLite (default) and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cityos.kernel.timeutil import assume_utc, require_aware

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: stored in UTC, always read back as an aware UTC ``datetime``, on every backend.

    The DDL is plain ``DateTime(timezone=True)`` (``TIMESTAMP WITH TIME ZONE`` on PostgreSQL). SQLite
    has no such type: its text keeps no offset and comes back naive, so every value is converted to
    UTC before it is stored -- which also keeps the text comparable -- and read back as UTC. Naive
    values are refused: their instant is unknown.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = require_aware(value, "datetime")
        # SQLite's DATETIME text would silently drop any offset; make the UTC convention explicit.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # SQLite returns the naive UTC text written above; PostgreSQL an aware value in the session's zone.
        return assume_utc(value)


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
    last_record_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SchemaVersionRow(Base):
    """One registered JSON Schema version of a dataset; ``uri`` is its ``$id``."""

    __tablename__ = "schema_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(500), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Record(Base):
    """Current state of one record of a dataset (latest event wins, by event time then offset).

    A deleted record stays as a tombstone: ``deleted_at`` set, ``data`` emptied, coordinates cleared,
    and the deletion's event time and topic position kept, so an older upsert arriving later (a
    dead-letter replay, a lagging partition) is recognised as stale instead of resurrecting it.
    Every read must exclude tombstones (``Record.deleted_at.is_(None)``).
    """

    __tablename__ = "records"
    __table_args__ = (
        # Live records of a dataset in key order: list_records' filter, count and pagination order.
        # Portable (no partial index); tombstones sort apart under their non-NULL deleted_at.
        Index("ix_records_dataset_id_deleted_at_record_key", "dataset_id", "deleted_at", "record_key"),
        # A dataset's last applied change (an export's validators) in one index probe.
        Index("ix_records_dataset_id_updated_at", "dataset_id", "updated_at"),
    )

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    record_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    schema_version: Mapped[int] = mapped_column(Integer)
    event_source: Mapped[str] = mapped_column(String(500))
    event_id: Mapped[str] = mapped_column(String(200))
    event_time: Mapped[datetime] = mapped_column(UTCDateTime())
    # Position in the validated topic: breaks ties between events with the same time.
    # A partition number is an int32 in the Kafka protocol; an offset is an int64.
    kafka_partition: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    # Denormalised coordinates for geo output and bbox filters; None when absent.
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the catalog applied the deletion; None while the record exists.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ProcessedEvent(Base):
    """Ledger of applied CloudEvents (source + id): a redelivered event changes nothing."""

    __tablename__ = "processed_events"

    source: Mapped[str] = mapped_column(String(500), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # applied | stale
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEvent(Base):
    """Append-only audit log shared by every area: grants, denials, releases, proposals, replays.

    ``actor`` names who acted (a department id, ``admin``, an applicant id, ``system``); ``detail``
    never holds a secret (API keys appear by prefix only) and never raw personal data.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_subject", "subject_kind", "subject_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_kind: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc)


class ApiKey(Base):
    """A credential: an external developer's key, a department's credential, an applicant's key.

    Only a SHA-256 digest of the secret is stored. The secret is 32 random bytes, so a fast digest is
    enough (no password stretching needed: nothing to brute-force); ``id`` is the visible prefix,
    the only part that may appear in logs, metrics and the audit log.
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_owner", "owner_kind", "owner_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    owner_kind: Mapped[str] = mapped_column(String(16))  # developer | department | applicant
    owner_id: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(JsonDoc)
    # Requests per minute this key may make; None means the key class's default.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# Each area keeps its tables in its own module; importing them here completes ``Base.metadata``
# (Alembic's comparison and the schema test read it). They import ``Base`` from this module.
from cityos.kernel.db import (  # noqa: E402
    access_models,  # noqa: F401  cross-department grants, subscriptions
    geo_models,  # noqa: F401  ward boundaries
    history_models,  # noqa: F401  record change log
    publish_models,  # noqa: F401  API keys, usage
    registry_models,  # noqa: F401  compatibility settings, dead-letter store
    release_models,  # noqa: F401  anonymized releases, proposals
)
