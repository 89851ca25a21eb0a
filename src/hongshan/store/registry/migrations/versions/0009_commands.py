"""Tracked commands: one row per command to one device (its states' times and result), and
the batches that send one command to many devices.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "command_batches",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("wait", sa.Float, nullable=True),
        sa.Column("ttl", sa.Float, nullable=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "commands",
        sa.Column("id", _id, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.BigInteger, nullable=True),
        sa.Column("product_key", sa.String(32), nullable=False),
        sa.Column("device_name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("origin", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("wait", sa.Float, nullable=True),
        sa.Column("ttl", sa.Float, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.BigInteger, nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("expires_at", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False, server_default=""),
        sa.Column("code", sa.Integer, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_commands_device", "commands", ["product_key", "device_name", "id"])
    op.create_index("ix_commands_state", "commands", ["state"])
    op.create_index("ix_commands_batch", "commands", ["batch_id"])
    op.create_index("ix_commands_created", "commands", ["created_at"])


def downgrade() -> None:
    op.drop_table("commands")
    op.drop_table("command_batches")
