"""Records: index the time each record was last applied within its dataset.

An export's validators (ETag, Last-Modified) ask for a dataset's last applied change before the first
byte; with (dataset_id, updated_at) that is one index probe instead of a walk over every record of
the dataset. The index on updated_at alone served no query and goes, so writes keep one index each.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_records_dataset_id_updated_at", "records", ["dataset_id", "updated_at"], unique=False)
    op.drop_index("ix_records_updated_at", table_name="records")


def downgrade() -> None:
    op.create_index("ix_records_updated_at", "records", ["updated_at"], unique=False)
    op.drop_index("ix_records_dataset_id_updated_at", table_name="records")
