"""How a request proves who it is, and what each route asks of it.

``RequestAuth.principal`` finds the ``Principal`` behind a connection (HTTP or WebSocket):
the admin token (``Authorization: Bearer``, the CLI's: ``SYSTEM``), an integration's API key
(``Authorization: Bearer hsk_…`` or ``X-API-Key: hsk_…``, checked by ``KeyCheck``), or a
user's access token (``services.people``), as ``Authorization: Bearer`` or as the browser's
cookie ``hongshan_access``. A browser cannot set headers on a WebSocket, so an upgrade may carry the
token as subprotocols instead (``Sec-WebSocket-Protocol: bearer, <token>``: ``bearer_token``);
its cookie works too. A cookie is sent by the browser whoever made the page, so a request it
authenticates that changes something (not GET, HEAD, OPTIONS) must also carry
``X-Requested-With: hongshan``: a page of another origin cannot add that header without a
CORS preflight, which this server never allows (cross-site request forgery). The guard
``require_role`` answers 401 without one and 403 when its role is below the route's: a route
names the least role in its ``opt`` (``opt={"role": Role.OPERATOR}``); without one a read
(GET, HEAD) needs a viewer and anything else an admin, so a route forgotten is closed, not
open. The principal is kept in the connection's scope (``scope["user"]``, Litestar's slot) and
handlers that need it name a ``principal`` parameter (``dependencies.providers``). A WebSocket
upgrade refused is closed before it is accepted with 4000 + the status (4401, 4403), which
``refused_upgrades`` answers as that HTTP status.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, NoReturn, Protocol

import msgspec
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    WebSocketException,
)
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.types import ASGIApp, Guard, Message, Receive, Scope, Send
from litestar.types.asgi_types import WebSocketResponseStartEvent

from hongshan.api.token import token_matches
from hongshan.identity.api_keys import PREFIX as KEY_PREFIX
from hongshan.identity.principals import SYSTEM, Principal, Role
from hongshan.services.people.users import People

READS = frozenset({"GET", "HEAD"})
BEARER_SUBPROTOCOL = "bearer"
ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status.value >= 400)
OPERATOR = {"role": Role.OPERATOR}
"""The ``opt`` of a route an operator may use: controlling devices (property sets, service
calls, commands, shadows' and desired values), acknowledging, clearing, assigning, annotating
and raising alarms, and editing, enabling, disabling, checking and backtesting rules, scenes
and alarm conditions. Any other change is an admin's (the default)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ACCESS_COOKIE = "hongshan_access"
REFRESH_COOKIE = "hongshan_refresh"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "hongshan"


def bearer(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None for none or another scheme."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return given.strip() or None


def cookie_forgery_checked(
    connection: ASGIConnection[Any, Any, Any, Any], cookie: str = ACCESS_COOKIE
) -> None:
    """A request authenticated by a cookie that changes something must say it is ours."""
    method = connection.scope.get("method", "GET")
    if method not in SAFE_METHODS and connection.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise PermissionDeniedException(
            f"a {method} authenticated by the {cookie} cookie needs the header "
            f"'X-Requested-With: {CSRF_VALUE}' (protection against cross-site requests)"
        )


class KeyCheck(Protocol):
    """Who an API key is (``services.people.keys.ApiKeys``)."""

    def principal_of(self, text: str) -> Principal | None:
        """None: no key of ours; raises ``KeyRefused`` (401) for one revoked or expired."""


class RequestAuth:
    """Finds who a request is from what it carries; holds no state of its own (the users'
    sessions are ``People``'s) and decides nothing about routes (``require_role`` does)."""

    def __init__(self, admin_token: str, people: People, *, keys: KeyCheck | None = None) -> None:
        self._admin_token = admin_token
        self._people = people
        self._keys = keys

    async def principal(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
        """Who sent it; None: nobody the platform knows (no credentials, or wrong ones).
        ``PermissionDeniedException`` for a cookie's change without the header it needs."""
        authorization = bearer_token(connection)
        if token_matches(self._admin_token, authorization):
            return SYSTEM
        if self._keys is not None:  # (before access tokens: a key is a bearer token too)
            key = api_key_in(authorization, connection.headers.get("x-api-key"))
            if key is not None:
                return self._keys.principal_of(key)
        token = bearer(authorization)
        if token is not None:
            return self._people.principal(token)
        cookie = connection.cookies.get(ACCESS_COOKIE)
        if cookie:
            cookie_forgery_checked(connection)
            return self._people.principal(cookie)
        return None

    @staticmethod
    def access_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
        """The user's access token the request carries (header first, else the cookie)."""
        return bearer(connection.headers.get("authorization")) or connection.cookies.get(
            ACCESS_COOKIE
        )


def require(principal: Principal, role: Role, what: str) -> None:
    """For a part of a route that asks more than the route does (a secret shown)."""
    if not principal.may(role):
        raise PermissionDeniedException(
            f"{what} needs the role {role.label}; {principal.name} is {principal.role.label}"
        )


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """``Authorization``'s value; for a WebSocket without one, ``Bearer <token>`` from the
    subprotocols ``bearer, <token>`` (the upgrade is answered with ``bearer`` alone)."""
    authorization = connection.headers.get("authorization")
    if authorization is not None or connection.scope["type"] != ScopeType.WEBSOCKET:
        return authorization
    offered = connection.scope.get("subprotocols") or []
    if len(offered) == 2 and offered[0] == BEARER_SUBPROTOCOL:
        return f"Bearer {offered[1]}"
    return None


def api_key_in(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request carries: as its bearer, else in ``X-API-Key``."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and given.strip().startswith(KEY_PREFIX):
        return given.strip()
    if x_api_key is not None and x_api_key.strip().startswith(KEY_PREFIX):
        return x_api_key.strip()
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
            _refuse(
                connection,
                NotAuthorizedException(
                    "send credentials: 'Authorization: Bearer …' with the admin token "
                    "(DATA_DIR/admin.token), an API key (also as 'X-API-Key: hsk_…') or an "
                    "access token (POST /api/auth/login), which may have expired "
                    "(POST /api/auth/refresh)"
                ),
            )
        connection.scope["user"] = principal  # (a refusal is recorded as theirs too)
        need = least_role(handler)
        if not principal.may(need):
            _refuse(
                connection,
                PermissionDeniedException(
                    f"this needs the role {need.label}; {principal.name} is {principal.role.label}"
                ),
            )

    return guard


def _refuse(connection: ASGIConnection[Any, Any, Any, Any], refusal: HTTPException) -> NoReturn:
    """``refusal``; for a WebSocket, as the close code 4000 + its status (Litestar closes a
    WebSocket with 4500 for any other exception, and the status would be lost)."""
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        raise WebSocketException(detail=refusal.detail, code=4000 + refusal.status_code)
    raise refusal


def note_principal(auth: RequestAuth) -> Guard:
    """The guard of routes open to callers the platform does not know (a scene's trigger with
    its own token): the principal when there is one, else nothing."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        connection.scope["user"] = await auth.principal(connection)

    return guard


def principal_in(scope: Scope) -> Principal | None:
    user = scope.get("user")
    return user if isinstance(user, Principal) else None


def refused_upgrades(app: ASGIApp) -> ASGIApp:
    """``app`` with each WebSocket upgrade it refuses before accepting it (a close with
    4000 + an HTTP status: ``_refuse``, or the live API's socket limit) answered as that HTTP
    status with a problem+json body, the close's reason its detail (uvicorn would answer 403
    whatever the code). Everything else passes as it is."""

    async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.WEBSOCKET:
            await app(scope, receive, send)
            return
        accepted = False

        async def sending(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                status = int(message.get("code") or 0) - 4000
                if status in ERROR_STATUSES:
                    await _answer(send, status, str(message.get("reason") or ""))
                    return
            await send(message)

        await app(scope, receive, sending)

    return refusing


async def _answer(send: Send, status: int, detail: str) -> None:
    title = HTTPStatus(status).phrase
    body = msgspec.json.encode(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    )
    start: WebSocketResponseStartEvent = {
        "type": "websocket.http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/problem+json")],
    }
    await send(start)
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
