"""How a request proves who it is, and what each route asks of it.

``RequestAuth.principal`` finds the ``Principal`` behind a connection (HTTP or WebSocket):
today the admin token (``Authorization: Bearer``, the CLI's: ``SYSTEM``). The guard
``require_role`` answers 401 without one and 403 when its role is below the route's: a route
names the least role in its ``opt`` (``opt={"role": Role.OPERATOR}``); without one a read
(GET, HEAD) needs a viewer and anything else an admin, so a route forgotten is closed, not
open. The principal is kept in the connection's scope (``scope["user"]``, Litestar's slot) and
handlers that need it name a ``principal`` parameter (``dependencies.providers``).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.types import Guard, Scope

from hongshan.api.token import token_matches
from hongshan.identity.principals import SYSTEM, Principal, Role

READS = frozenset({"GET", "HEAD"})


class RequestAuth:
    def __init__(self, admin_token: str) -> None:
        self._admin_token = admin_token

    async def principal(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
        """Who sent it; None: nobody the platform knows (no credentials, or wrong ones)."""
        if token_matches(self._admin_token, connection.headers.get("authorization")):
            return SYSTEM
        return None


def least_role(handler: BaseRouteHandler) -> Role:
    named = handler.opt.get("role")
    if isinstance(named, Role):
        return named
    if isinstance(handler, HTTPRouteHandler) and not handler.http_methods <= READS:
        return Role.ADMIN
    return Role.VIEWER


def require_role(auth: RequestAuth) -> Guard:
    """The guard of every route that needs someone: ``least_role`` of the route's."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        principal = await auth.principal(connection)
        if principal is None:
            raise NotAuthorizedException(
                "send credentials: 'Authorization: Bearer …' with the admin token "
                "(DATA_DIR/admin.token)"
            )
        need = least_role(handler)
        if not principal.may(need):
            raise PermissionDeniedException(
                f"this needs the role {need.label}; {principal.name} is {principal.role.label}"
            )
        connection.scope["user"] = principal

    return guard


def note_principal(auth: RequestAuth) -> Guard:
    """The guard of routes open to callers the platform does not know (a scene's trigger with
    its own token): the principal when there is one, else nothing."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        connection.scope["user"] = await auth.principal(connection)

    return guard


def principal_in(scope: Scope) -> Principal | None:
    user = scope.get("user")
    return user if isinstance(user, Principal) else None
