"""``/api/keys``: integrations' API keys — made (the key shown in that answer only), listed,
shown, revoked. An admin's, within their tenant (the admin token's: any); another tenant's
key is 404, as one that does not exist. A key never asks for more than its maker may do
(403). Revoked keys are kept, marked, and shown so."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.types import Scope

from hongshan.api.audit_trail import note_detail
from hongshan.api.dependencies import Provided
from hongshan.identity.api_keys import StoredKey
from hongshan.identity.principals import Principal, Role
from hongshan.services.people.keys import ApiKeys, KeySpec

KEY = "/api/keys/{key_id:int}"

RoleLabel = Annotated[str, msgspec.Meta(pattern="^(viewer|operator|admin)$")]


class NewKey(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """``groups``: the device groups it is limited to (absent: its maker's limit, if any);
    ``expiresAt`` (ms) or ``expiresInDays`` (neither: it does not expire); ``tenant``: the
    admin token's choice (default ``default``)."""

    name: str
    role: RoleLabel
    groups: list[str] | None = None
    expires_at: int | None = None
    expires_in_days: float | None = None
    tenant: str | None = None


class KeyView(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """A key as the API shows it: ``key`` only in the answer that made it."""

    id: int
    name: str
    tenant: str
    role: str
    groups: list[str] | None
    created_by: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    used_at: int | None
    key: str | None = None


def _view(key: StoredKey, text: str | None = None) -> KeyView:
    return KeyView(
        id=key.id,
        name=key.name,
        tenant=key.tenant,
        role=key.role.label,
        groups=None if key.groups is None else sorted(key.groups),
        created_by=key.created_by,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        used_at=key.used_at,
        key=text,
    )


@post("/api/keys", status_code=201)
async def create_key(
    api_keys: Provided[ApiKeys],
    principal: Provided[Principal],
    scope: Scope,
    data: JSONBody[NewKey],
) -> KeyView:
    """A new key; the answer holds it (``key``), and nothing ever will again."""
    spec = KeySpec(
        name=data.name,
        role=Role.named(data.role),
        groups=None if data.groups is None else frozenset(data.groups),
        expires_at=data.expires_at,
        expires_in_days=data.expires_in_days,
        tenant=data.tenant,
    )
    key, text = await api_keys.create(principal, spec)
    note_detail(scope, keyId=key.id, name=key.name, role=key.role.label)
    return _view(key, text)


@get("/api/keys", opt={"role": Role.ADMIN})
async def list_keys(api_keys: Provided[ApiKeys], principal: Provided[Principal]) -> list[KeyView]:
    return [_view(key) for key in api_keys.listed(principal)]


@get(KEY, opt={"role": Role.ADMIN})
async def show_key(
    api_keys: Provided[ApiKeys], principal: Provided[Principal], key_id: FromPath[int]
) -> KeyView:
    return _view(api_keys.get(principal, key_id))


@delete(KEY, status_code=200)
async def revoke_key(
    api_keys: Provided[ApiKeys], principal: Provided[Principal], key_id: FromPath[int]
) -> KeyView:
    """Revoke the key: refused from now on, kept and shown with ``revokedAt``."""
    return _view(await api_keys.revoke(principal, key_id))


ROUTES = (create_key, list_keys, show_key, revoke_key)
