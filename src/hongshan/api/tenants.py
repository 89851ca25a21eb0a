"""``/api/tenants``: the towns sharing this Hongshan (make, list, show, delete), for the
admin token alone (``SYSTEM``): a tenant's own admin manages what is inside its tenant, never
the tenants. A tenant is deleted only once it holds nothing (409 while it has products,
users, keys, groups, rules, scenes or routes)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody

from hongshan.api.dependencies import Provided
from hongshan.api.paging import PAGED, Page, Paged
from hongshan.api.scope import Scope
from hongshan.store.registry.store import SQLRegistry
from hongshan.store.registry.tenants import Tenant

# a tenant's id is a level of its URL and a value of every row it owns
TenantId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class NewTenant(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: TenantId  # lower-case letters, digits, - and _, at most 64
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


@post("/api/tenants", status_code=201)
async def create_tenant(
    access: Provided[Scope], registry: Provided[SQLRegistry], data: JSONBody[NewTenant]
) -> Tenant:
    access.system_only("making a tenant")
    return await registry.tenants.create(data.id, data.name)


@get("/api/tenants", dependencies=PAGED)
async def list_tenants(
    access: Provided[Scope], registry: Provided[SQLRegistry], paging: Paged
) -> Page[Tenant]:
    """Sorted by ``id`` (or ``name``, ``createdAt``); ``q`` in the id or name."""
    access.system_only("the list of tenants")
    return paging.in_memory(
        await registry.tenants.list_tenants(),
        {"id": lambda x: x.id, "name": lambda x: x.name, "createdAt": lambda x: x.created_at},
        default="id",
        text=lambda tenant: f"{tenant.id} {tenant.name}",
    )


@get("/api/tenants/{tenant_id:str}")
async def show_tenant(
    access: Provided[Scope], registry: Provided[SQLRegistry], tenant_id: FromPath[str]
) -> Tenant:
    access.system_only("a tenant")
    return await registry.tenants.get(tenant_id)


@delete("/api/tenants/{tenant_id:str}", status_code=204)
async def delete_tenant(
    access: Provided[Scope], registry: Provided[SQLRegistry], tenant_id: FromPath[str]
) -> None:
    access.system_only("deleting a tenant")
    await registry.tenants.delete(tenant_id)


ROUTES = (create_tenant, list_tenants, show_tenant, delete_tenant)
