"""Who a client is and what it may do, asked of each dialect first, then of people.

The broker asks one ``Authenticator`` and one ``Authorizer``. The platform's are these: each
dialect, in the order of ``hongshan.dialects.DIALECTS``, answers for its own devices' logins and
connections (``Dialect.authenticate``, ``Dialect.access``) and None for anyone else's; what no
dialect claims is a person's or an application's (the users and ACL files), who may do what
the ACL grants — except speak for a device: no dialect's device uplink may be published by
anyone but the device or its gateway (``SpeaksForNoDevice``).

The order does not change an answer: a dialect answers None for a CONNECT that is not in its
shape and refuses only one that is and is wrong, and what belongs to no dialect in particular
is decided here, after all of them: a client id with ``&`` is the platform's (its devices'
sessions are kept under ``productKey&deviceName``), and no other client may use one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from hongshan.broker.auth import (
    Access,
    Authenticator,
    Authorizer,
    Client,
    Credentials,
    ReceiveFilter,
    Verdict,
)
from hongshan.mqtt.reason_codes import ReasonCode

log = logging.getLogger("hongshan.identity")


class Login(Protocol):
    """A dialect's side of a CONNECT (``Dialect.authenticate``)."""

    async def authenticate(self, credentials: Credentials) -> Verdict | None: ...


class Rights(Protocol):
    """A dialect's side of authorization (``Dialect.access``, ``Dialect.refuses_others``)."""

    def access(self, client: Client) -> Access | None: ...

    def refuses_others(self, topic: str) -> bool: ...


class DialectLogins:
    """An ``Authenticator``: the dialect that answers decides; credentials none of them claims
    are refused with a device's client id (0x85 Client Identifier not valid; 3.1.1: 2), else
    go to ``people`` (the users file, or anonymous access)."""

    def __init__(self, dialects: Sequence[Login], people: Authenticator) -> None:
        self._dialects = tuple(dialects)
        self._people = people

    async def authenticate(self, credentials: Credentials) -> Verdict:
        for dialect in self._dialects:
            verdict = await dialect.authenticate(credentials)
            if verdict is not None:
                return verdict
        if "&" in credentials.client_id:  # (a device's session: nobody else may take it)
            log.info(
                "refused %r from %s: a client id with '&' is a device's",
                credentials.client_id,
                credentials.address,
            )
            return Verdict(reason_code=ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)
        return await self._people.authenticate(credentials)


class DialectAccess:
    """An ``Authorizer``: a dialect's own connections get the rights it gives them; every
    other client the ACL's answer, without the right to speak for any dialect's device."""

    def __init__(self, dialects: Sequence[Rights], acl: Authorizer) -> None:
        self._dialects = tuple(dialects)
        self._acl = acl
        self._refusals = tuple(dialect.refuses_others for dialect in self._dialects)

    def access(self, client: Client) -> Access:
        for dialect in self._dialects:
            rights = dialect.access(client)
            if rights is not None:
                return rights
        return SpeaksForNoDevice(self._acl.access(client), self._refusals)


class SpeaksForNoDevice:
    """What a person or an application may do: the ACL's answer (or all without one), except
    publishing a device's uplink — only the device, or the gateway it is logged in through,
    speaks for it (the platform stores what arrives there as its values). Each dialect says
    which topics those are (``refuses_others``).

    Downlinks (property set, service calls, a custom topic a device subscribes to) stay as the
    ACL says: on Alibaba's platform, say, the owner's applications send them through the cloud
    API, never a device; an ACL that grants an application such a topic is its owner's choice."""

    def __init__(self, granted: Access, refusals: Sequence[Callable[[str], bool]]) -> None:
        self._granted = granted
        self._refusals = refusals

    def may_publish(self, topic: str) -> bool:
        for refuses in self._refusals:
            if refuses(topic):
                return False
        return self._granted.may_publish(topic)

    def may_subscribe(self, topic_filter: str) -> bool:
        return self._granted.may_subscribe(topic_filter)

    @property
    def receive_filter(self) -> ReceiveFilter | None:
        return self._granted.receive_filter
