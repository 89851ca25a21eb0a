"""The two questions the broker asks of the rest of the platform: *who is this?* and *may they?*

The broker knows nothing of users files, device secrets or ACLs. It calls an ``Authenticator``
once per CONNECT, then asks the ``Authorizer`` once for that client's ``Access`` — its rules,
worked out once (patterns expanded for its client id and username) — and asks the ``Access``
per SUBSCRIBE filter and per PUBLISH topic. They are small Protocols so that the device registry
(Alibaba-signed CONNECT, per-device topic ACLs) plugs in the same way the users and ACL files do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from hongshan.mqtt.reason_codes import ReasonCode


class Client(msgspec.Struct, frozen=True, kw_only=True):
    """Who a connection is, once authenticated."""

    client_id: str
    username: str | None
    address: str = ""
    protocol_level: int = 4
    labels: frozenset[str] = frozenset()  # from the authenticator's Verdict


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    username: str | None
    password: bytes | None
    address: str
    tls: bool = False  # whether it came on a TLS listener (what a device's securemode=2 claims)


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to a CONNECT: ``reason_code`` 0 accepts; anything else is the CONNACK code."""

    reason_code: int = ReasonCode.SUCCESS
    username: str | None = None  # the identity to authorize as (may differ from the packet's)
    # the client identifier to keep the session under, when the authenticator decides it (one
    # session per Alibaba device, whatever id its firmware connects with); None keeps the packet's
    client_id: str | None = None
    # what the authenticator learned of the client that the platform may act on (a device's
    # SDK asking for Alibaba's automatic subscriptions); carried in ``Client.labels``
    labels: frozenset[str] = frozenset()


ACCEPTED = Verdict()


class Authenticator(Protocol):
    async def authenticate(self, credentials: Credentials) -> Verdict: ...


ReceiveFilter = Callable[[str], bool]


class Access(Protocol):
    """What one authenticated client may do."""

    def may_publish(self, topic: str) -> bool: ...

    def may_subscribe(self, topic_filter: str) -> bool: ...

    @property
    def receive_filter(self) -> ReceiveFilter | None:
        """A test each topic delivered to this client must pass, or None when every topic its
        subscriptions can match may be delivered (the common case, which costs nothing)."""


class Authorizer(Protocol):
    def access(self, client: Client) -> Access: ...


class AllowAnonymous:
    """Everyone is welcome: the sandbox mode (``--allow-anonymous``) with no users file. No
    username is verified, so every client is anonymous to the ACL."""

    async def authenticate(self, credentials: Credentials) -> Verdict:
        return ACCEPTED


class FullAccess:
    receive_filter: ReceiveFilter | None = None

    def may_publish(self, topic: str) -> bool:
        return True

    def may_subscribe(self, topic_filter: str) -> bool:
        return True


FULL_ACCESS = FullAccess()


class NoAccess:
    """What a connection may do before its CONNECT is accepted: nothing."""

    receive_filter: ReceiveFilter | None = None

    def may_publish(self, topic: str) -> bool:
        return False

    def may_subscribe(self, topic_filter: str) -> bool:
        return False


NO_ACCESS = NoAccess()


class AllowAll:
    """No ACL: every client may do everything (one shared ``Access`` for all)."""

    def access(self, client: Client) -> Access:
        return FULL_ACCESS
