"""Who is asking, once the HTTP side has found out: a ``Principal``, with the tenant it acts
in, its role and the device groups it is limited to. Pure: how a request proves who it is
(the admin token, a user's access token, an API key) is ``api.auth``'s; what a principal may
see of the registry is asked of it by each query.

Roles are ordered: a viewer reads; an operator also controls devices, acknowledges alarms and
edits rules and scenes; an admin also manages products, devices, groups, people and keys. The
admin token of ``DATA_DIR/admin.token`` is ``SYSTEM``: an admin of every tenant (the CLI's).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

DEFAULT_TENANT = "default"


class Role(enum.IntEnum):
    """Ordered: each role may do what the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def named(cls, label: str) -> Role:
        """``viewer``, ``operator`` or ``admin``; ValueError for anything else."""
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"no role {label!r}: viewer, operator or admin") from None


PrincipalKind = Literal["token", "user", "key"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """``tenant`` None: every tenant (``SYSTEM`` only). ``groups`` None: not limited to
    groups; a set (even empty) limits what it sees to the devices of those groups, by name
    (a group deleted since is simply not seen: the limit fails closed)."""

    kind: PrincipalKind
    name: str
    role: Role
    tenant: str | None
    groups: frozenset[str] | None = None
    id: int | None = None  # the user's or the key's row, None for SYSTEM

    def may(self, role: Role) -> bool:
        return self.role >= role

    def in_tenant(self, tenant: str) -> bool:
        return self.tenant is None or self.tenant == tenant


SYSTEM = Principal(kind="token", name="admin-token", role=Role.ADMIN, tenant=None)
