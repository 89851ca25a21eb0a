"""Tenancy: products, device groups, rules, scenes and alarm notification routes belong to a
tenant (every one so far to ``default``). Everything else derives its tenant: a device, its
history, values, shadow, commands, alarms and alarm conditions from its product.

Names (of groups, rules, scenes, routes) stay unique across tenants: a group is named by its
name alone wherever a user or key is limited to it.

On SQLite the column gets no foreign key: SQLite adds a column with a REFERENCES clause only
with a NULL default while foreign keys are enforced (the registry's connections enforce
them), and batch mode's copy of a table would have to drop ``products``, which ``devices``
refers to. The registry checks a tenant exists before it writes one (``reach.tenant_known``)
and a tenant is deleted only once it holds nothing (``TenantTable.delete``); PostgreSQL keeps
the foreign key as well.

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
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in OWNED:
        op.add_column(
            table, sa.Column("tenant", sa.String(64), nullable=False, server_default="default")
        )
        op.create_index(f"ix_{table}_tenant", table, ["tenant"])
        if not sqlite:
            op.create_foreign_key(
                f"fk_{table}_tenant", table, "tenants", ["tenant"], ["id"], ondelete="RESTRICT"
            )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in OWNED:
        if not sqlite:
            op.drop_constraint(f"fk_{table}_tenant", table, type_="foreignkey")
        op.drop_index(f"ix_{table}_tenant", table)
        # (SQLite drops a column only by copying the table: batch mode does that there)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant")
