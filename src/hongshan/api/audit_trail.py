"""``AuditTrail``: the middleware that hands the audit log (``services.people.audit``) a record
of every request that would change something — POST, PUT, PATCH, DELETE on any route, refused
ones too (a 401 or 403 is an attempt worth knowing of) and logins.

A record says who (the principal the guard found, or that a login's handler set; else
``anonymous``), what (the method and the route's template as ``action``, the concrete path as
``target``: never the query, never the body — they may hold passwords and keys), the status
answered, when, and from where: the peer's address, or the client that a trusted proxy
(``trusted_proxies``) says it forwards in ``X-Forwarded-For``. A handler may add safe facts
(``note_detail``: the id of a key it made). The record is handed over once the answer is sent
and the handing over never waits, so no answer is slower for it.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from hongshan.api.auth import principal_in
from hongshan.services.people.audit import AuditLog
from hongshan.store.registry.audit import AuditEntry

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DETAIL = "hongshan.audit_detail"  # (the key of a handler's facts in the scope's state)


def note_detail(scope: Scope, **facts: Any) -> None:
    """Safe facts for the request's audit record (ids, names; never a secret)."""
    scope.setdefault("state", {}).setdefault(_DETAIL, {}).update(facts)


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` is believed (addresses or networks)."""

    def __init__(self, networks: Sequence[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_of(self, peer: str, forwarded_for: str) -> str:
        """Who the request came from. Read right to left, each trusted proxy naming the hop
        before it: the first hop no trusted proxy is is the client (a client can write
        anything at the left end of the header; only what our proxies appended is true)."""
        if not forwarded_for or not self.trusts(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else peer


class AuditTrail(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, audit: AuditLog, proxies: TrustedProxies) -> None:
        self._audit = audit
        self._proxies = proxies

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        method = scope.get("method", "GET")
        if method not in UNSAFE:
            await next_app(scope, receive, send)
            return
        status = 500  # (until an answer starts: one that never does was a failure)

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await next_app(scope, receive, sending)
        finally:
            self._audit.record(self._entry(scope, method, status))

    def _entry(self, scope: Scope, method: str, status: int) -> AuditEntry:
        principal = principal_in(scope)
        client = scope.get("client")
        peer = client[0] if client else ""
        forwarded = ",".join(
            v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"
        )
        detail = scope.get("state", {}).get(_DETAIL)
        return AuditEntry(
            at=int(time.time() * 1000),
            actor=principal.name if principal else "anonymous",
            actor_kind=principal.kind if principal else "anonymous",
            tenant=principal.tenant if principal else None,
            address=self._proxies.client_of(peer, forwarded),
            action=f"{method} {scope.get('path_template') or scope['path']}",
            target=scope["path"],
            status=status,
            detail=detail,
        )
