"""Groups of devices (a district, a street) in the registry, with their tags.

A group's name is unique within its tenant (migration 0015): every method names a group by
its tenant and its name. A group's members are devices of its tenant."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, now_ms, row_id_of
from hongshan.store.registry.reach import owned, tenant_known
from hongshan.things.directory import DeviceKey
from hongshan.things.model import EVERYWHERE, Group, Reach, RegistryError
from hongshan.things.tag_directory import TagDirectory


class GroupTable:
    """The ``device_groups`` table, their members (``group_members``) and tags
    (``group_tags``); tells the registry's ``TagDirectory`` each change once committed (and
    fills it at open, ``load``), so that the message path reads a device's groups and their
    tags with no query. What it answers the API is read of the database."""

    def __init__(self, db: Database, tags: TagDirectory) -> None:
        self._db = db
        self._tags = tags

    def load(self, db: sa.Connection) -> None:
        """Every group, its tags and its members into the tag directory (at open)."""
        groups = list(db.execute(sa.select(t.device_groups)))
        names = {group.id: (group.name, group.tenant) for group in groups}
        for group in groups:
            self._tags.put_group(group.name, group.tenant)
        tags: dict[int, dict[str, str]] = {}
        for row in db.execute(sa.select(t.group_tags)):
            tags.setdefault(row.group_id, {})[row.key] = row.value
        for group_id, found in tags.items():
            if group_id in names:
                name, tenant = names[group_id]
                self._tags.change_group(name, found, tenant=tenant)
        d, m = t.devices, t.group_members
        members: dict[int, list[DeviceKey]] = {}
        rows = db.execute(
            sa.select(m.c.group_id, d.c.product_key, d.c.device_name).join(
                d, d.c.id == m.c.device_id
            )
        )
        for row in rows:
            members.setdefault(row.group_id, []).append((row.product_key, row.device_name))
        for group_id, keys in members.items():
            if group_id in names:
                name, tenant = names[group_id]
                self._tags.add_members(name, keys, tenant)

    async def create(
        self, name: str, description: str = "", *, tenant: str = DEFAULT_TENANT
    ) -> Group:
        """A group of ``tenant``. Its name is unique within the tenant (another tenant's group
        may have it: a user or key is limited to groups by name within its tenant)."""
        if not name.strip() or len(name) > 64:
            raise RegistryError("a group name is 1 to 64 characters", "invalid")

        def insert() -> None:
            with self._db.engine.begin() as db:
                tenant_known(db, tenant)
                try:
                    db.execute(
                        t.device_groups.insert().values(
                            name=name, description=description, created_at=now_ms(), tenant=tenant
                        )
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(f"group {name} exists", "conflict") from None

        await self._db.run(insert)
        self._tags.put_group(name, tenant)
        return await self.get(name, tenant)

    async def list_groups(self, reach: Reach = EVERYWHERE) -> list[Group]:
        """The groups of ``reach``'s tenant (a group-limited reach: only its groups)."""

        def query() -> list[Group]:
            g, m = t.device_groups, t.group_members
            size = sa.select(sa.func.count()).where(m.c.group_id == g.c.id).scalar_subquery()
            select = sa.select(g, size.label("size")).where(owned(reach, g.c.tenant))
            if reach.groups is not None:
                select = select.where(g.c.name.in_(sorted(reach.groups)))
            with self._db.engine.connect() as db:
                rows = db.execute(select.order_by(g.c.name))
                tags: dict[int, dict[str, str]] = {}
                for tag in db.execute(sa.select(t.group_tags)):
                    tags.setdefault(tag.group_id, {})[tag.key] = tag.value
                return [
                    Group(
                        name=r.name,
                        tenant=r.tenant,
                        description=r.description,
                        created_at=r.created_at,
                        size=r.size,
                        tags=tags.get(r.id, {}),
                    )
                    for r in rows
                ]

        return await self._db.run(query)

    async def get(self, name: str, tenant: str = DEFAULT_TENANT) -> Group:
        for group in await self.list_groups(Reach(tenant=tenant)):
            if group.name == name:
                return group
        raise RegistryError(f"no group {name}", "not_found")

    def tenants_named(self, name: str) -> list[str]:
        """The tenants that have a group ``name``, in order (read in memory)."""
        return self._tags.tenants_of_group(name)

    async def members(self, name: str, tenant: str = DEFAULT_TENANT) -> list[DeviceKey]:
        """The group's devices, (productKey, deviceName) in that order."""

        def query() -> list[DeviceKey] | None:
            m, d = t.group_members, t.devices
            with self._db.engine.connect() as db:
                group_id = _group_id(db, name, tenant)
                if group_id is None:
                    return None
                rows = db.execute(
                    sa.select(d.c.product_key, d.c.device_name)
                    .join(m, m.c.device_id == d.c.id)
                    .where(m.c.group_id == group_id)
                    .order_by(d.c.product_key, d.c.device_name)
                )
                return [(row.product_key, row.device_name) for row in rows]

        found = await self._db.run(query)
        if found is None:
            raise RegistryError(f"no group {name}", "not_found")
        return found

    async def delete(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        def delete() -> None:
            with self._db.engine.begin() as db:
                group_id = _group_id(db, name, tenant)
                if group_id is None:
                    raise RegistryError(f"no group {name}", "not_found")
                db.execute(t.group_tags.delete().where(t.group_tags.c.group_id == group_id))
                db.execute(t.device_groups.delete().where(t.device_groups.c.id == group_id))

        await self._db.run(delete)
        self._tags.drop_group(name, tenant)

    async def add(
        self, name: str, members: Iterable[DeviceKey], tenant: str = DEFAULT_TENANT
    ) -> Group:
        """Devices put in the group: each must be of the group's tenant (400)."""
        return await self._change_group(name, tenant, members, add=True)

    async def remove(
        self, name: str, members: Iterable[DeviceKey], tenant: str = DEFAULT_TENANT
    ) -> Group:
        return await self._change_group(name, tenant, members, add=False)

    async def change_tags(
        self,
        name: str,
        tags: dict[str, str],
        remove: Iterable[str],
        tenant: str = DEFAULT_TENANT,
    ) -> Group:
        """Set ``tags`` (a key given again takes the new value) and drop the keys ``remove``
        names."""
        gone = list(remove)

        def change() -> None:
            gt = t.group_tags
            with self._db.engine.begin() as db:
                group_id = _group_id(db, name, tenant)
                if group_id is None:
                    raise RegistryError(f"no group {name}", "not_found")
                keys = [*gone, *tags]
                if keys:
                    db.execute(gt.delete().where(gt.c.group_id == group_id, gt.c.key.in_(keys)))
                for key, value in tags.items():
                    db.execute(gt.insert().values(group_id=group_id, key=key, value=value))

        await self._db.run(change)
        self._tags.change_group(name, tags, gone, tenant=tenant)
        return await self.get(name, tenant)

    async def _change_group(
        self, name: str, tenant: str, members: Iterable[DeviceKey], *, add: bool
    ) -> Group:
        keys = list(members)

        def change() -> None:
            m = t.group_members
            with self._db.engine.begin() as db:
                group_id = _group_id(db, name, tenant)
                if group_id is None:
                    raise RegistryError(f"no group {name}", "not_found")
                for key in keys:
                    device_id = row_id_of(db, key)
                    if add and _tenant_of_product(db, key[0]) != tenant:
                        # (a group's devices are of its tenant: a device's groups are then
                        # named within one tenant, its own)
                        raise RegistryError(
                            f"device {key[1]} of product {key[0]} is not of tenant {tenant}",
                            "invalid",
                        )
                    db.execute(
                        m.delete().where(m.c.group_id == group_id, m.c.device_id == device_id)
                    )
                    if add:
                        db.execute(m.insert().values(group_id=group_id, device_id=device_id))

        await self._db.run(change)
        if add:
            self._tags.add_members(name, keys, tenant)
        else:
            self._tags.remove_members(name, keys, tenant)
        return await self.get(name, tenant)


def _group_id(db: sa.Connection, name: str, tenant: str) -> int | None:
    g = t.device_groups
    found = db.execute(
        sa.select(g.c.id).where(g.c.tenant == tenant, g.c.name == name)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def _tenant_of_product(db: sa.Connection, product_key: str) -> str | None:
    p = t.products
    found = db.execute(sa.select(p.c.tenant).where(p.c.product_key == product_key))
    return found.scalar_one_or_none()
