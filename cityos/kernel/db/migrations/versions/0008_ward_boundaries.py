"""Ward boundaries (see cityos/kernel/db/geo_models.py): one row per ward, outlines as GeoJSON.

Per-ward aggregation and the site's maps read them; ``cityos geo load-wards`` fills the table from the
national boundary files.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ward_boundaries",
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("n03_code", sa.String(length=5), nullable=False),
        sa.Column("name_ja", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("geometry", _json(), nullable=False),
        sa.Column("display_geometry", _json(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
        sa.UniqueConstraint("n03_code"),
    )


def downgrade() -> None:
    op.drop_table("ward_boundaries")
