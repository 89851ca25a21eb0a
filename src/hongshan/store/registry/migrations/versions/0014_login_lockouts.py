"""Failed logins per username, kept across restarts (``login_lockouts``): a lock, and the
failures counted towards one, outlive a deploy. Addresses' counts stay in memory.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_lockouts",
        sa.Column("name_hash", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Text, nullable=False),
        sa.Column("locked_until", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_lockouts")
