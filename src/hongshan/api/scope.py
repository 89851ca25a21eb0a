"""What one request's principal may reach, asked by every handler before it reads or changes
anything: the one place where tenants and group limits are enforced for the API.

A handler names a parameter ``access: Provided[Scope]`` and asks it about what its path or
body names: ``access.product(pk)``, ``access.device(pk, dn)``, ``access.group(name)``,
``access.owned(tenant, "rule 5")`` (a rule's, a scene's, a route's tenant), and
``access.device_of(pk, dn, "alarm 7")`` (a row that derives its tenant from its device).
Anything out of reach is answered 404 with the same words as a thing that does not exist
(never 403: another tenant's ids are not confirmed to exist). Lists are narrowed in their
query by ``access.reach`` (``things.model.Reach``), which each store's filter takes.

A group-limited principal may read rules, scenes and alarm conditions of its tenant but not
edit them (``access.unlimited``): one could act on devices outside its groups.
"""

from __future__ import annotations

from litestar.exceptions import PermissionDeniedException

from hongshan.identity.principals import DEFAULT_TENANT, Principal
from hongshan.identity.visibility import Visibility
from hongshan.messages.commands import Target
from hongshan.things.directory import Directory
from hongshan.things.model import Reach, RegistryError


class Scope:
    """One request's reach: its principal and the lookups ``Visibility`` answers from (the
    directory's products and their tenants, the groups' members). Holds no state and never
    reads a database: every check is a dict lookup."""

    def __init__(self, principal: Principal, visibility: Visibility, directory: Directory) -> None:
        self.principal = principal
        self._visibility = visibility
        self._directory = directory
        self.reach = Reach(tenant=principal.tenant, groups=principal.groups)

    def product(self, product_key: str) -> None:
        """404 unless the product exists in the principal's tenant."""
        if self._directory.product_view(product_key) is None:
            raise RegistryError(f"no product {product_key}", "not_found")
        self.product_of(product_key, f"product {product_key}")

    def product_of(self, product_key: str, what: str) -> None:
        """404 (``no <what>``) for a row of a product of another tenant (an alarm
        condition)."""
        if not self._visibility.sees_product(self.principal, product_key):
            raise RegistryError(f"no {what}", "not_found")

    def device(self, product_key: str, device_name: str) -> None:
        """404 unless the device exists and the principal sees it (tenant and groups)."""
        what = f"device {device_name} in product {product_key}"
        if not self._directory.device_known(product_key, device_name):
            raise RegistryError(f"no {what}", "not_found")
        self.device_of(product_key, device_name, what)

    def device_of(self, product_key: str, device_name: str, what: str) -> None:
        """404 (``no <what>``) for a row of a device the principal does not see (an alarm,
        a command: they outlive their device, so only the tenant and groups are asked)."""
        if not self._visibility.sees(self.principal, product_key, device_name):
            raise RegistryError(f"no {what}", "not_found")

    def named_device(self, product_key: str, device_name: str) -> None:
        """400 for a body's device out of reach, in the words a device that is not there
        gets (an alarm raised by hand); one that is not there is the service's to refuse."""
        if not self._visibility.sees(self.principal, product_key, device_name):
            raise RegistryError(f"no device {device_name} in product {product_key}", "invalid")

    def sees(self, product_key: str, device_name: str) -> bool:
        """Whether the device is in reach (a backtest's filter of what it replays)."""
        return self._visibility.sees(self.principal, product_key, device_name)

    def target(self, target: Target) -> Reach:
        """404 for a command's target (a device, a product, a group) out of reach; a tag or
        a district is narrowed by ``reach`` when the devices are chosen. The reach to choose
        them in: a group's tenant's (the admin token's group is one tenant's)."""
        if target.product_key is not None and target.device_name is not None:
            self.device(target.product_key, target.device_name)
        elif target.product_key is not None:
            self.product(target.product_key)
        if target.group is not None:
            return self.group_reach(target.group)
        return self.reach

    def sees_target(self, target: Target) -> bool:
        """Whether the group or product a kept target names is in reach (a tag or a
        district names nothing of a tenant's)."""
        if target.group is not None and not self._visibility.group_tenants(
            self.principal, target.group
        ):
            return False
        pk = target.product_key
        return pk is None or self._visibility.sees_product(self.principal, pk)

    def group(self, name: str, tenant: str | None = None) -> str:
        """The tenant of the group ``name`` means: 404 unless it is of the principal's tenant
        (and one of its groups). A name is unique within a tenant only: the admin token (of
        every tenant) names the tenant (``tenant``) where several have a group so named, and
        is answered 409 where it does not."""
        return self._one_tenant(name, self._group_tenants(name, tenant))

    def list_reach(self, group: str | None, tenant: str | None = None) -> Reach:
        """The reach of a list narrowed to a group by name (``group=``): the group's tenant's;
        a name no group in reach has leaves it (the list is then empty); 409 for the admin
        token's name of several tenants' groups, with no ``tenant``."""
        if group is None:
            return self.reach
        found = self._group_tenants(group, tenant)
        if not found:
            return self.reach
        return Reach(tenant=self._one_tenant(group, found), groups=self.reach.groups)

    def _group_tenants(self, name: str, tenant: str | None) -> list[str]:
        """The tenants whose group ``name`` the principal may mean, narrowed to ``tenant``."""
        found = self._visibility.group_tenants(self.principal, name)
        if tenant is not None:
            found = [tenant] if tenant in found else []
        return found

    @staticmethod
    def _one_tenant(name: str, found: list[str]) -> str:
        if not found:
            raise RegistryError(f"no group {name}", "not_found")
        if len(found) > 1:
            raise RegistryError(
                f"group {name}: tenants {', '.join(found)} each have one; name the tenant "
                "(the query's tenant=…)",
                "conflict",
            )
        return found[0]

    def group_reach(self, name: str, tenant: str | None = None) -> Reach:
        """``reach`` narrowed to the tenant of the group ``name`` means (``group``)."""
        return Reach(tenant=self.group(name, tenant), groups=self.reach.groups)

    def owned(self, tenant: str, what: str) -> None:
        """404 (``no <what>``) for a rule, scene or route of another tenant."""
        if not self.principal.in_tenant(tenant):
            raise RegistryError(f"no {what}", "not_found")

    def tenant_for_new(self, given: str | None) -> str:
        """The tenant a new product, group, rule, scene or route is made in: the principal's
        own; ``SYSTEM`` (of no tenant) names one, else ``default``."""
        own = self.principal.tenant
        if own is None:
            return given or DEFAULT_TENANT
        if given is not None and given != own:
            raise RegistryError(f"tenant: you act in {own!r} only", "invalid")
        return own

    def system_only(self, what: str) -> None:
        """403 for anyone but the admin token (the tenants themselves are its alone)."""
        if self.principal.tenant is not None:
            raise PermissionDeniedException(
                f"{what}: only the admin token (DATA_DIR/admin.token) manages tenants"
            )

    def unlimited(self, what: str) -> None:
        """403 for a group-limited principal: ``what`` (a rule, a scene, an alarm condition)
        could act on devices outside its groups."""
        if self.principal.groups is not None:
            raise PermissionDeniedException(
                f"{what}: {self.principal.name} is limited to device groups, and may read "
                "rules, scenes and alarm conditions but not change them"
            )
