"""Tables of the registry area (see cityos/kernel/db/registry_models.py): compatibility levels, dead-letter replays.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schema_compatibility",
        sa.Column("dataset_id", sa.String(64), sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "deadletter_replays",
        sa.Column("deadletter_topic", sa.String(300), primary_key=True),
        sa.Column("deadletter_partition", sa.Integer(), primary_key=True),
        sa.Column("deadletter_offset", sa.BigInteger(), primary_key=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("dataset_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("target_topic", sa.String(300), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replayed_by", sa.String(200), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
    )
    op.create_index("ix_deadletter_replays_dataset_id", "deadletter_replays", ["dataset_id"])
    op.create_table(
        "deadletter_replay_tally",
        sa.Column("outcome", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deadletter_replay_tally")
    op.drop_table("deadletter_replays")
    op.drop_table("schema_compatibility")
