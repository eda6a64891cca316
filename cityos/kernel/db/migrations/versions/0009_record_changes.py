"""Record change log (see cityos/kernel/db/history_models.py): one row per record event accepted.

A dataset's state as of a past instant is rebuilt from it. A catalog that already holds records
starts its log from them: each live record becomes the upsert that wrote it, each tombstone the
deletion that left it, at their own event time and topic position; what happened before those is not
known and stays so.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    changes = op.create_table(
        "record_changes",
        sa.Column("event_source", sa.String(length=500), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("record_key", sa.String(length=300), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", _json(), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_source", "event_id"),
    )
    assert changes is not None
    op.create_index(
        "ix_record_changes_dataset_id_event_time",
        "record_changes",
        ["dataset_id", "event_time"],
        unique=False,
    )
    # The records as they stand, copied in one statement: values move as stored (the instants'
    # text on SQLite, timestamptz on PostgreSQL), so no row passes through Python.
    records = sa.table(
        "records",
        sa.column("dataset_id", sa.String()),
        sa.column("record_key", sa.String()),
        sa.column("data", _json()),
        sa.column("schema_version", sa.Integer()),
        sa.column("event_source", sa.String()),
        sa.column("event_id", sa.String()),
        sa.column("event_time", sa.DateTime(timezone=True)),
        sa.column("kafka_partition", sa.Integer()),
        sa.column("kafka_offset", sa.BigInteger()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("deleted_at", sa.DateTime(timezone=True)),
    )
    tombstone = records.c.deleted_at.is_not(None)
    backfill = sa.select(
        records.c.event_source,
        records.c.event_id,
        records.c.dataset_id,
        records.c.record_key,
        records.c.event_time,
        records.c.kafka_partition,
        records.c.kafka_offset,
        records.c.schema_version,
        sa.case((tombstone, sa.true()), else_=sa.false()),
        sa.case((tombstone, sa.null()), else_=records.c.data),
        records.c.updated_at,
    )
    op.execute(
        changes.insert().from_select(
            [
                "event_source",
                "event_id",
                "dataset_id",
                "record_key",
                "event_time",
                "kafka_partition",
                "kafka_offset",
                "schema_version",
                "deleted",
                "data",
                "applied_at",
            ],
            backfill,
        )
    )


def downgrade() -> None:
    op.drop_index("ix_record_changes_dataset_id_event_time", table_name="record_changes")
    op.drop_table("record_changes")
