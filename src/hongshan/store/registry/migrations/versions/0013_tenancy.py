"""Tenancy: products, device groups, rules, scenes and alarm notification routes belong to a
tenant (every one so far to ``default``). Everything else derives its tenant: a device, its
history, values, shadow, commands, alarms and alarm conditions from its product.

Names (of groups, rules, scenes, routes) stay unique across tenants: a group is named by its
name alone wherever a user or key is limited to it.

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

OWNED = ("products", "device_groups", "rules", "scenes", "alarm_routes")


def upgrade() -> None:
    for table in OWNED:
        # SQLite adds a foreign key only by copying the table: batch mode does that there
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("tenant", sa.String(64), nullable=False, server_default="default")
            )
            batch.create_foreign_key(
                f"fk_{table}_tenant", "tenants", ["tenant"], ["id"], ondelete="RESTRICT"
            )
            batch.create_index(f"ix_{table}_tenant", ["tenant"])


def downgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_tenant")
            batch.drop_constraint(f"fk_{table}_tenant", type_="foreignkey")
            batch.drop_column("tenant")
