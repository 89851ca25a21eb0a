"""Products that speak a protocol (Alink or ThingsBoard's) and may be schemaless.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every product so far is Alibaba's, with a thing model given to it
    op.add_column(
        "products", sa.Column("protocol", sa.String(16), nullable=False, server_default="alink")
    )
    op.add_column(
        "products",
        sa.Column("schemaless", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # SQLite drops a column only by copying the table: batch mode does that there
    with op.batch_alter_table("products") as batch:
        batch.drop_column("schemaless")
        batch.drop_column("protocol")
