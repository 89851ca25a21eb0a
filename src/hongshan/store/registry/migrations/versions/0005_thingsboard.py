"""Products that speak a protocol (Alink or ThingsBoard's) and may be schemaless; the access
tokens and basic MQTT credentials of a thingsboard product's devices.

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
    op.create_table(
        "device_credentials",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("token_digest", sa.String(64), nullable=True),
        sa.Column("access_token", sa.Text, nullable=True),
        sa.Column("client_id", sa.String(128), nullable=True),
        sa.Column("username", sa.String(128), nullable=True),
        sa.Column("password", sa.Text, nullable=True),
        sa.UniqueConstraint("client_id", "username", name="uq_device_credentials_login"),
    )
    op.create_index(
        "ix_device_credentials_token", "device_credentials", ["token_digest"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_device_credentials_token", "device_credentials")
    op.drop_table("device_credentials")
    # SQLite drops a column only by copying the table: batch mode does that there
    with op.batch_alter_table("products") as batch:
        batch.drop_column("schemaless")
        batch.drop_column("protocol")
