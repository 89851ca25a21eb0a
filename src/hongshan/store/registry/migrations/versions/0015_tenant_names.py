"""Per-tenant names: a device group's, a rule's, a scene's and an alarm notification route's
name is unique within its tenant (unique ``(tenant, name)``), no longer across the server.
Two towns may each have a group ``north``; one town's names no longer tell another's (a 409
did).

The old constraints were made unnamed (``unique=True``): PostgreSQL named them itself, so
their names are read back (``Inspector``); SQLite keeps such a constraint only in the table's
``CREATE TABLE``, so the table is copied (batch mode) with the constraint named for the copy
by a naming convention, then dropped. The copy drops the old table, and with foreign keys on
(the registry's connections) that deletes the rows referring to it (``ON DELETE CASCADE``: a
group's members and tags, a scene's waits, a route's owed deliveries): they are read before
and written back after. Every row is kept.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

NAMED = ("device_groups", "rules", "scenes", "alarm_routes")

# The tables whose rows refer to one of NAMED with ON DELETE CASCADE (SQLite's copy).
REFERRING = {
    "device_groups": ("group_members", "group_tags"),
    "rules": (),
    "scenes": ("scene_waits",),
    "alarm_routes": ("alarm_deliveries",),
}

CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    _replace(old=["name"], new=["tenant", "name"])


def downgrade() -> None:
    # (fails, as it should, where two tenants share a name)
    _replace(old=["tenant", "name"], new=["name"])


def _replace(old: list[str], new: list[str]) -> None:
    bind = op.get_bind()
    for table in NAMED:
        if bind.dialect.name == "sqlite":
            _copy_sqlite(bind, table, old, new)
            continue
        for constraint in sa.inspect(bind).get_unique_constraints(table):
            if constraint["column_names"] == old and constraint["name"]:
                op.drop_constraint(constraint["name"], table, type_="unique")
        op.create_unique_constraint(_name(table, new), table, new)


def _copy_sqlite(bind: sa.Connection, table: str, old: list[str], new: list[str]) -> None:
    kept: dict[str, list[dict[str, Any]]] = {}
    for referring in REFERRING[table]:
        found = bind.execute(sa.text(f"SELECT * FROM {referring}"))  # (our own names)
        kept[referring] = [dict(row._mapping) for row in found]
    with op.batch_alter_table(table, recreate="always", naming_convention=CONVENTION) as batch:
        if old == ["name"]:
            batch.drop_constraint(f"uq_{table}_name", type_="unique")
        else:
            batch.drop_constraint(_name(table, old), type_="unique")
        batch.create_unique_constraint(_name(table, new), new)
    for referring, rows in kept.items():
        if not rows:
            continue
        table_of = sa.Table(referring, sa.MetaData(), autoload_with=bind)
        bind.execute(table_of.delete())  # (what the copy's cascade left, if anything)
        bind.execute(table_of.insert(), rows)


def _name(table: str, columns: list[str]) -> str:
    return f"uq_{table}_{'_'.join(columns)}"
