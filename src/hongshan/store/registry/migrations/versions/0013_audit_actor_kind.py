"""The audit log's ``actor_kind`` holds ``anonymous`` (9 characters: 0012 gave it 8).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # (SQLite changes a column's type only by copying the table: batch mode does that there)
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("actor_kind", type_=sa.String(16), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("actor_kind", type_=sa.String(8), existing_nullable=False)
