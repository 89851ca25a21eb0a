"""A ``Reach`` (the devices a principal's query may reach: a tenant's, within some groups)
as one SQL condition, the same for every table that names devices by product key and device
name (devices, alarms, commands, alarm conditions): so that scoping is written once and a
query narrowed by it never returns a row another tenant owns."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.things.model import Reach, RegistryError


def group_limit_column(groups: frozenset[str] | None) -> str | None:
    """A user's or a key's group limit as its ``groups`` column keeps it: a JSON list of the
    names, sorted; NULL for no limit (an empty list limits to nothing)."""
    return None if groups is None else json.dumps(sorted(groups))


def group_limit_of(column: str | None) -> frozenset[str] | None:
    """The group limit a ``groups`` column keeps (``group_limit_column``'s inverse)."""
    return None if column is None else frozenset(json.loads(column))


def tenant_products(tenant: str) -> Any:
    """The keys of the tenant's products, as a subquery."""
    return sa.select(t.products.c.product_key).where(t.products.c.tenant == tenant)


def within(reach: Reach, product_key: Any, device_name: Any | None = None) -> Any:
    """The condition that the row's device (``product_key``, ``device_name`` columns) is in
    ``reach``; a table without a device name (a product's) is narrowed by tenant alone."""
    conditions = []
    if reach.tenant is not None:
        conditions.append(product_key.in_(tenant_products(reach.tenant)))
    if reach.groups is not None and device_name is not None:
        d, m, g = t.devices, t.group_members, t.device_groups
        members = (
            sa.select(d.c.product_key, d.c.device_name)
            .join(m, m.c.device_id == d.c.id)
            .join(g, g.c.id == m.c.group_id)
            .where(g.c.name.in_(sorted(reach.groups)))
        )
        if reach.tenant is not None:  # (a group's name is unique within its tenant only)
            members = members.where(g.c.tenant == reach.tenant)
        conditions.append(sa.tuple_(product_key, device_name).in_(members))
    return sa.and_(sa.true(), *conditions)


def owned(reach: Reach, tenant: Any) -> Any:
    """The condition that a row with a ``tenant`` column (a group's, a rule's) is in reach."""
    return sa.true() if reach.tenant is None else tenant == reach.tenant


def tenant_known(db: sa.Connection, tenant: str) -> None:
    """``RegistryError`` (invalid) unless ``tenant`` exists: what a row's foreign key would
    refuse, said as a fault of the caller's rather than a conflict."""
    known = db.execute(sa.select(t.tenants.c.id).where(t.tenants.c.id == tenant))
    if known.first() is None:
        raise RegistryError(f"tenant: no tenant {tenant!r}", "invalid")
