"""Who people and applications are and what they may do: the users file (or anonymous access)
and the ACL file, a user of a tenant held to its tenant's topics (``tenant_topics``). Devices
are their dialects' to answer for (``hongshan.dialects.access``), before these are asked."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from hongshan.broker.auth import AllowAll, AllowAnonymous, Authenticator, Authorizer
from hongshan.config import Settings
from hongshan.identity.acl import AclFile
from hongshan.identity.passwords import PasswordFileAuthenticator, UserEntry, read_entries
from hongshan.identity.tenant_topics import TenantUsers

log = logging.getLogger("hongshan")

ANONYMOUS_WARNING = (
    "ANONYMOUS ACCESS IS ON (--allow-anonymous): any client that can reach this server may "
    "connect without a password. Use it for a sandbox only."
)


def people_access(
    settings: Settings, tenant_of: Callable[[str], str | None]
) -> tuple[Authenticator, Authorizer]:
    """Who may connect and what they may do, from ``password_file``, ``allow_anonymous`` and
    ``acl_file`` (without one, everything is allowed); a user the users file gives a tenant is
    held to the topics of its tenant's products (``tenant_of``: a product key's tenant,
    ``Directory.tenant_of``) and its free prefix."""
    authenticator: Authenticator
    users: dict[str, UserEntry] = {}
    if settings.password_file:
        users = read_entries(settings.password_file)
        authenticator = PasswordFileAuthenticator(
            {name: entry.hashed for name, entry in users.items()},
            allow_anonymous=settings.allow_anonymous,
        )
    elif settings.allow_anonymous:
        authenticator = AllowAnonymous()
    else:
        authenticator = PasswordFileAuthenticator({}, allow_anonymous=False)
        log.warning("no password_file and allow_anonymous is off: every client will be refused")
    if settings.allow_anonymous:
        log.warning(ANONYMOUS_WARNING)
    authorizer: Authorizer = AclFile.read(settings.acl_file) if settings.acl_file else AllowAll()
    tenants = {name: entry.tenant for name, entry in users.items() if entry.tenant is not None}
    if tenants:  # (else the ACL's answers as they are: nothing more to pay per delivery)
        authorizer = TenantUsers(authorizer, tenants, tenant_of)
    return authenticator, authorizer


def warn_of_unknown_tenants(authorizer: Authorizer, known: Collection[str]) -> list[str]:
    """Log a warning for each users-file user whose tenant is none of ``known`` (the
    registry's tenants at start): it reaches no device, only its free prefix, which is most
    likely a typing error. Returns the users warned of."""
    if not isinstance(authorizer, TenantUsers):
        return []
    strays = sorted(name for name, tenant in authorizer.tenants.items() if tenant not in known)
    for name in strays:
        log.warning(
            "users file: %r is a user of the tenant %r, which does not exist: it reaches no "
            "device's topics, only tenants/%s/#",
            name,
            authorizer.tenants[name],
            authorizer.tenants[name],
        )
    return strays
