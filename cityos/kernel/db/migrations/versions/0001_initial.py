"""Initial catalog schema: departments, datasets, schema versions, records, processed-event ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Written out in full rather than importing the models: a migration must keep describing the schema
of its day after the models move on. Timestamps are plain ``DateTime(timezone=True)`` here; the
models' ``UTCDateTime`` only converts values in Python and emits the same DDL. Deleted records stay
as tombstones (``records.deleted_at``), indexed with their dataset for the live-record reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    # Same as models.JsonDoc: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "departments",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name_ja", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("kafka_principal", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("department_id", sa.String(length=64), nullable=False),
        sa.Column("title_ja", sa.String(length=300), nullable=False),
        sa.Column("title_en", sa.String(length=300), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("license", sa.String(length=64), nullable=False),
        sa.Column("record_key", sa.String(length=200), nullable=False),
        sa.Column("meta", _json(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("last_record_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["department_id"], ["departments.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_datasets_classification", "datasets", ["classification"], unique=False)
    op.create_table(
        "schema_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=500), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id", "version"),
        sa.UniqueConstraint("uri"),
    )
    op.create_index("ix_schema_versions_dataset_id", "schema_versions", ["dataset_id"], unique=False)
    op.create_table(
        "records",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("record_key", sa.String(length=300), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("event_source", sa.String(length=500), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
        sa.PrimaryKeyConstraint("dataset_id", "record_key"),
    )
    op.create_index("ix_records_updated_at", "records", ["updated_at"], unique=False)
    op.create_index(
        "ix_records_dataset_id_deleted_at_record_key",
        "records",
        ["dataset_id", "deleted_at", "record_key"],
        unique=False,
    )
    op.create_table(
        "processed_events",
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("source", "event_id"),
    )


def downgrade() -> None:
    op.drop_table("processed_events")
    op.drop_index("ix_records_dataset_id_deleted_at_record_key", table_name="records")
    op.drop_index("ix_records_updated_at", table_name="records")
    op.drop_table("records")
    op.drop_index("ix_schema_versions_dataset_id", table_name="schema_versions")
    op.drop_table("schema_versions")
    op.drop_index("ix_datasets_classification", table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("departments")
