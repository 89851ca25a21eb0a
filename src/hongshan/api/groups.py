"""``/api/groups``: groups of devices (a district, a street) and their members.

A group's name is unique within its tenant: ``/api/groups/{name}`` is the asker's tenant's
group. The admin token (of every tenant) names a group by its name where one tenant has it,
and adds ``?tenant=`` where several do (409 without it)."""

from __future__ import annotations

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from hongshan.api.dependencies import Provided
from hongshan.api.devices import MAX_TAGS, TagKey, Tags
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.store.registry.store import SQLRegistry
from hongshan.things import naming
from hongshan.things.model import Group, RegistryError


class NewGroup(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str  # unique within its tenant
    description: str = ""
    tenant: str | None = None  # the admin token's choice (default: "default"); else one's own


class Member(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    product_key: str
    device_name: str


class Members(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    devices: list[Member]


@post("/api/groups", status_code=201)
async def create_group(
    access: Provided[Scope], registry: Provided[SQLRegistry], data: JSONBody[NewGroup]
) -> Group:
    tenant = access.tenant_for_new(data.tenant)
    naming.check_group_name(data.name)
    return await registry.groups.create(data.name, data.description, tenant=tenant)


@get("/api/groups", dependencies=PAGED)
async def list_groups(
    access: Provided[Scope], registry: Provided[SQLRegistry], paging: Paged
) -> Page[Group]:
    """The tenant's (a group-limited principal's own); sorted by ``name`` (or ``size``,
    ``createdAt``); ``q`` in the name."""
    return paging.in_memory(
        await registry.groups.list_groups(access.reach),
        {"name": lambda g: g.name, "size": lambda g: g.size, "createdAt": lambda g: g.created_at},
        default="name",
        text=lambda group: group.name,
    )


@get("/api/groups/{name:str}")
async def show_group(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    name: FromPath[str],
    tenant: FromQuery[str | None] = None,
) -> Group:
    return await registry.groups.get(name, access.group(name, tenant))


@delete("/api/groups/{name:str}", status_code=204)
async def delete_group(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    name: FromPath[str],
    tenant: FromQuery[str | None] = None,
) -> None:
    await registry.groups.delete(name, access.group(name, tenant))


class GroupChange(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A group's tags: set (``tags``) and dropped (``removeTags``); thresholds its devices'
    alarm conditions may read after a device's own."""

    tags: Tags = {}
    remove_tags: list[TagKey] = []


@patch("/api/groups/{name:str}")
async def change_group(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    name: FromPath[str],
    data: JSONBody[GroupChange],
    tenant: FromQuery[str | None] = None,
) -> Group:
    owner = access.group(name, tenant)
    kept = (await registry.groups.get(name, owner)).tags.keys() - set(data.remove_tags)
    if len(kept | data.tags.keys()) > MAX_TAGS:
        raise RegistryError(f"tags: a group has at most {MAX_TAGS}", "invalid")
    return await registry.groups.change_tags(name, data.tags, data.remove_tags, owner)


@post("/api/groups/{name:str}/devices", status_code=200)
async def add_members(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    name: FromPath[str],
    data: JSONBody[Members],
    tenant: FromQuery[str | None] = None,
) -> Group:
    owner = access.group(name, tenant)
    keys = [(m.product_key, m.device_name) for m in data.devices]
    for key in keys:
        access.device(*key)
    return await registry.groups.add(name, keys, owner)


@post("/api/groups/{name:str}/devices/remove", status_code=200)
async def remove_members(
    access: Provided[Scope],
    registry: Provided[SQLRegistry],
    name: FromPath[str],
    data: JSONBody[Members],
    tenant: FromQuery[str | None] = None,
) -> Group:
    owner = access.group(name, tenant)
    keys = [(m.product_key, m.device_name) for m in data.devices]
    for key in keys:
        access.device(*key)
    return await registry.groups.remove(name, keys, owner)


ROUTES = (
    create_group,
    list_groups,
    show_group,
    change_group,
    delete_group,
    add_members,
    remove_members,
)
