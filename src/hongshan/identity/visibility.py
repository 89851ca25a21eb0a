"""Which devices a ``Principal`` may see: the one answer every live message and (later) every
query of devices asks, so that a tenant or group limit is written once.

A principal sees a device when the device's product is in one of its tenants and, if it is
limited to groups (``Principal.groups`` not None), the device is a member of one of them. Every
product is in the tenant ``default`` for now; when products gain tenants, ``tenant_of`` is
given here and nothing else changes. Asked once per message per subscriber: dict and set
lookups only, no query.
"""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Protocol

from hongshan.identity.principals import DEFAULT_TENANT, Principal


class Memberships(Protocol):
    """The groups a device is in (``things.tag_directory.TagDirectory``)."""

    def memberships(self, product_key: str, device_name: str) -> Set[str]: ...


def _default_tenant(product_key: str) -> str:
    return DEFAULT_TENANT


class Visibility:
    """Answers ``sees``; owns nothing but the two lookups it is given (a product's tenant, a
    device's groups). Never reads a database."""

    def __init__(
        self, groups: Memberships, tenant_of: Callable[[str], str] = _default_tenant
    ) -> None:
        self._groups = groups
        self._tenant_of = tenant_of

    def sees(self, principal: Principal, product_key: str, device_name: str) -> bool:
        if not principal.in_tenant(self._tenant_of(product_key)):
            return False
        limit = principal.groups
        if limit is None:
            return True
        # (an empty limit sees nothing: the limit fails closed)
        return not limit.isdisjoint(self._groups.memberships(product_key, device_name))

    def sees_product(self, principal: Principal, product_key: str) -> bool:
        """Whether some device of the product may be seen: its tenant is the principal's (a
        group-limited principal is then filtered device by device)."""
        return principal.in_tenant(self._tenant_of(product_key))
