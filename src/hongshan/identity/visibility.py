"""Which devices a ``Principal`` may see: the one answer every live message and every API
request about a device asks (``api.scope.Scope`` for requests), so that a tenant or group
limit is written once.

A principal sees a device when the device's product is in its tenant and, if it is limited
to groups (``Principal.groups`` not None), the device is a member of one of them (a group's
name is unique within its tenant only, and a device's groups are all of its own tenant, so
the names of a principal's groups and of a device's meet only within one tenant). A product's
tenant is the directory's (``Directory.tenant_of``); a product there is none of is no
tenant's, seen by ``SYSTEM`` alone. Asked once per message per subscriber: dict and set
lookups only, no query.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Protocol

from hongshan.identity.principals import Principal


class Memberships(Protocol):
    """The groups a device is in, and each group's tenant
    (``things.tag_directory.TagDirectory``)."""

    def memberships(self, product_key: str, device_name: str) -> Set[str]: ...

    def has_group(self, name: str, tenant: str = ...) -> bool: ...

    def tenants_of_group(self, name: str) -> list[str]: ...


class Visibility:
    """Answers ``sees``; owns nothing but the two lookups it is given (a product's tenant, a
    device's groups). Never reads a database."""

    def __init__(self, groups: Memberships, tenant_of: Callable[[str], str | None]) -> None:
        self._groups = groups
        self._tenant_of = tenant_of

    def sees(self, principal: Principal, product_key: str, device_name: str) -> bool:
        if not self.sees_product(principal, product_key):
            return False
        limit = principal.groups
        if limit is None:
            return True
        # (an empty limit sees nothing: the limit fails closed)
        return not limit.isdisjoint(self._groups.memberships(product_key, device_name))

    def sees_product(self, principal: Principal, product_key: str) -> bool:
        """Whether the product's tenant is the principal's (a group-limited principal is then
        filtered device by device)."""
        if principal.tenant is None:
            return True
        return self._tenant_of(product_key) == principal.tenant

    def group_tenants(self, principal: Principal, name: str) -> list[str]:
        """The tenants whose group ``name`` the principal may mean, in order: its own
        tenant's, if it has one so named (for a group-limited principal, one of its groups);
        for ``SYSTEM`` (of every tenant), each tenant that has one — more than one is for the
        caller to ask which."""
        if principal.tenant is None:
            return self._groups.tenants_of_group(name)
        if principal.groups is not None and name not in principal.groups:
            return []
        return [principal.tenant] if self._groups.has_group(name, principal.tenant) else []
