"""Alarms, their notes, the routes of their notifications and the notifications owed.

At most one open alarm per device and type: a partial unique index (SQLite and PostgreSQL
both have them). Indexes for the open alarm of a device and type, and for listing by status,
severity and time, or by device.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("product_key", sa.String(32), nullable=False),
        sa.Column("device_name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("cleared", sa.Boolean, nullable=False),
        sa.Column("originator_kind", sa.String(16), nullable=False),
        sa.Column("originator_id", sa.String(64), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("escalation", sa.Text, nullable=True),
        sa.Column("first_raised_at", sa.BigInteger, nullable=False),
        sa.Column("last_raised_at", sa.BigInteger, nullable=False),
        sa.Column("repeats", sa.Integer, nullable=False),
        sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.Column("cleared_at", sa.BigInteger, nullable=True),
        sa.Column("cleared_by", sa.String(128), nullable=True),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("escalated_at", sa.BigInteger, nullable=True),
        sa.Column("reminded_at", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    open_only = sa.text("NOT cleared")
    op.create_index(
        "alarms_open",
        "alarms",
        ["product_key", "device_name", "type"],
        unique=True,
        sqlite_where=open_only,
        postgresql_where=open_only,
    )
    op.create_index("alarms_by_status", "alarms", ["status", "severity_rank", "last_raised_at"])
    op.create_index("alarms_by_device", "alarms", ["product_key", "device_name", "last_raised_at"])
    op.create_table(
        "alarm_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "alarm_id",
            sa.Integer,
            sa.ForeignKey("alarms.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("by", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("alarm_notes_of", "alarm_notes", ["alarm_id", "id"])
    op.create_table(
        "alarm_routes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("min_severity", sa.String(16), nullable=False),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("changes", sa.Text, nullable=False),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("backoff", sa.Float, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alarm_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "route_id",
            sa.Integer,
            sa.ForeignKey("alarm_routes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alarm_deliveries")
    op.drop_table("alarm_routes")
    op.drop_table("alarm_notes")
    op.drop_table("alarms")
