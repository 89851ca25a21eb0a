"""Who people and applications are and what they may do: the users file (or anonymous access)
and the ACL file. Devices are their dialects' to answer for (``hongshan.dialects.access``),
before these are asked."""

from __future__ import annotations

import logging

from hongshan.broker.auth import AllowAll, AllowAnonymous, Authenticator, Authorizer
from hongshan.config import Settings
from hongshan.identity.acl import AclFile
from hongshan.identity.passwords import PasswordFileAuthenticator, read_users

log = logging.getLogger("hongshan")

ANONYMOUS_WARNING = (
    "ANONYMOUS ACCESS IS ON (--allow-anonymous): any client that can reach this server may "
    "connect without a password. Use it for a sandbox only."
)


def people_access(settings: Settings) -> tuple[Authenticator, Authorizer]:
    """Who may connect and what they may do, from ``password_file``, ``allow_anonymous`` and
    ``acl_file`` (without one, everything is allowed)."""
    authenticator: Authenticator
    if settings.password_file:
        authenticator = PasswordFileAuthenticator(
            read_users(settings.password_file), allow_anonymous=settings.allow_anonymous
        )
    elif settings.allow_anonymous:
        authenticator = AllowAnonymous()
    else:
        authenticator = PasswordFileAuthenticator({}, allow_anonymous=False)
        log.warning("no password_file and allow_anonymous is off: every client will be refused")
    if settings.allow_anonymous:
        log.warning(ANONYMOUS_WARNING)
    authorizer: Authorizer = AclFile.read(settings.acl_file) if settings.acl_file else AllowAll()
    return authenticator, authorizer
