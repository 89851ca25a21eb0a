"""The ``tenants`` table: towns sharing one Hongshan, each with its products (and so devices
and everything of theirs), groups, rules, scenes, routes, users and keys."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, now_ms
from hongshan.things.model import RegistryError


class Tenant(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    name: str
    created_at: int


OWNING = (
    ("products", t.products),
    ("users", t.users),
    ("API keys", t.api_keys),
    ("device groups", t.device_groups),
    ("rules", t.rules),
    ("scenes", t.scenes),
    ("alarm notification routes", t.alarm_routes),
)
"""What a tenant holds, by its ``tenant`` column: a tenant is deleted only once it holds none
of them (their foreign keys would refuse it anyway; this says why)."""


class TenantTable:
    """Tenants made, listed and deleted; never what they hold (each table keeps its rows'
    tenant)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant_id: str, name: str) -> Tenant:
        def insert() -> None:
            with self._db.engine.begin() as db:
                try:
                    db.execute(
                        t.tenants.insert().values(id=tenant_id, name=name, created_at=now_ms())
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(f"tenant {tenant_id} exists", "conflict") from None

        await self._db.run(insert)
        return await self.get(tenant_id)

    async def list_tenants(self) -> list[Tenant]:
        def query() -> list[Any]:
            with self._db.engine.connect() as db:
                return list(db.execute(sa.select(t.tenants).order_by(t.tenants.c.id)))

        return [_tenant(row) for row in await self._db.run(query)]

    async def get(self, tenant_id: str) -> Tenant:
        def query() -> Any:
            with self._db.engine.connect() as db:
                return db.execute(
                    sa.select(t.tenants).where(t.tenants.c.id == tenant_id)
                ).one_or_none()

        row = await self._db.run(query)
        if row is None:
            raise RegistryError(f"no tenant {tenant_id}", "not_found")
        return _tenant(row)

    async def delete(self, tenant_id: str) -> None:
        """``conflict`` while the tenant holds anything (``OWNING``)."""

        def delete() -> None:
            with self._db.engine.begin() as db:
                for what, table in OWNING:
                    held = db.execute(
                        sa.select(sa.func.count()).where(table.c.tenant == tenant_id)
                    ).scalar_one()
                    if held:
                        raise RegistryError(
                            f"tenant {tenant_id} still has {held} {what}", "conflict"
                        )
                result = db.execute(t.tenants.delete().where(t.tenants.c.id == tenant_id))
                if result.rowcount == 0:
                    raise RegistryError(f"no tenant {tenant_id}", "not_found")

        await self._db.run(delete)


def _tenant(row: Any) -> Tenant:
    return Tenant(id=row.id, name=row.name, created_at=row.created_at)
