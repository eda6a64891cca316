"""Tables of the publish area (see cityos/kernel/db/publish_models.py): hourly usage counters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_counters",
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("dataset_id", sa.String(64), primary_key=True),
        sa.Column("key_class", sa.String(16), primary_key=True),
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("format", sa.String(16), primary_key=True),
        sa.Column("requests", _COUNT, nullable=False),
        sa.Column("rows", _COUNT, nullable=False),
        sa.Column("bytes", _COUNT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("usage_counters")
