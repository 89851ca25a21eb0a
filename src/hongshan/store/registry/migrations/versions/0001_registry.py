"""The registry: products, devices, their tags and firmware, groups.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_key", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("node_type", sa.String(16), nullable=False),
        sa.Column("data_format", sa.String(16), nullable=False),
        sa.Column("dynamic_registration", sa.Boolean, nullable=False),
        sa.Column("product_secret", sa.Text, nullable=False),
        sa.Column("topic_classes", sa.JSON, nullable=False),
        sa.Column("thing_model", sa.Text, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "product_key",
            sa.String(32),
            sa.ForeignKey("products.product_key", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("device_name", sa.String(32), nullable=False),
        sa.Column("device_secret", sa.Text, nullable=False),
        sa.Column("nickname", sa.String(64), nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("first_online_at", sa.BigInteger, nullable=True),
        sa.Column("last_online_at", sa.BigInteger, nullable=True),
        sa.Column("last_ip", sa.String(64), nullable=False, server_default=""),
        sa.Column("gateway_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="SET NULL")),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("district", sa.String(64), nullable=False, server_default=""),
        sa.UniqueConstraint("product_key", "device_name", name="uq_devices_product_name"),
    )
    op.create_index("ix_devices_state", "devices", ["state"])
    op.create_index("ix_devices_gateway", "devices", ["gateway_id"])
    op.create_table(
        "device_tags",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_index("ix_device_tags_key_value", "device_tags", ["key", "value"])
    op.create_table(
        "device_firmware",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("module", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
    )
    op.create_table(
        "device_groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column(
            "group_id",
            sa.Integer,
            sa.ForeignKey("device_groups.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )


def downgrade() -> None:
    for table in ("group_members", "device_groups", "device_firmware", "device_tags"):
        op.drop_table(table)
    op.drop_index("ix_devices_gateway", "devices")
    op.drop_index("ix_devices_state", "devices")
    op.drop_table("devices")
    op.drop_table("products")
