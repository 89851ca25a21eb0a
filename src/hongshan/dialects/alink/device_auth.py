"""Authenticating devices built for Alibaba Cloud IoT by their signed CONNECT, and what they
may then do.

A CONNECT whose client id carries Alibaba's ``|…|`` parameters and whose username is
``deviceName&productKey`` is checked against the device's secret from a ``DeviceDirectory``
(the registry); any other CONNECT is none of Alink's (``None``: the platform asks its next
dialect, then its people and applications — or the ``fallback`` given here), so people,
applications and devices share one listener. What a refusal says does not tell an unknown
device from a wrong secret.

A device's session is kept under the client id ``productKey&deviceName`` whatever id its
firmware sends (Alibaba's rule: one connection per device, a second one takes over); a client
id with ``&`` is the platform's (``hongshan.dialects.access.DialectLogins`` refuses it to any
client no dialect claims), so nobody can take a device's session over or be mistaken for it.
``device_access`` gives a device its own topics (``DeviceTopics``), and a device being
registered nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from hongshan.broker.auth import NO_ACCESS, Access, Authenticator, Client, Credentials, Verdict
from hongshan.dialects.alink.device_topics import DeviceTopics
from hongshan.dialects.alink.registration import (
    FORBIDDEN,
    NO_PREREGISTRATION,
    REGISTER,
    TOKEN_LOGIN,
    registration_refusal,
    token_valid,
)
from hongshan.identity.alibaba import (
    AlibabaConnect,
    SignatureFormatError,
    parse_connect,
    timestamp_fresh,
    verify_password,
)
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.things.model import DeviceCredentials, TopicClass
from hongshan.things.naming import InvalidName, check_device_name

log = logging.getLogger("hongshan.alink")

AUTO_SUBSCRIBE = "auto-subscribe"  # the label of a device whose SDK asked for them (``_ss=1``)


class DeviceDirectory(Protocol):
    async def credentials(self, product_key: str, device_name: str) -> DeviceCredentials | None: ...

    async def registration_secret(self, product_key: str) -> str | None:
        """The product secret, when the product allows dynamic registration; else None."""

    def activated(self, product_key: str, device_name: str) -> bool | None:
        """Whether the device ever came online; None when there is no such device."""


def device_identity(product_key: str, device_name: str) -> str:
    """The identity a signed CONNECT authenticates as (Alibaba's username form)."""
    return f"{device_name}&{product_key}"


def device_client_id(product_key: str, device_name: str) -> str:
    """The client id a device's session is kept under."""
    return f"{product_key}&{device_name}"


def registration_client_id(product_key: str, device_name: str, auth_type: str) -> str:
    """The session of a device being registered ('&': no plain client can take it)."""
    return f"{product_key}&{device_name}&{auth_type}"


def registration_of(client: Client) -> tuple[str, str, str] | None:
    """(product key, device name, authType) of a client being registered, else None."""
    parts = client.client_id.split("&")
    if len(parts) == 3 and client.username is None and parts[2] in (REGISTER, NO_PREREGISTRATION):
        return parts[0], parts[1], parts[2]
    return None


def device_of(client: Client) -> tuple[str, str] | None:
    """(product key, device name) of a client that logged in as a device, else None."""
    pk, amp, dn = client.client_id.partition("&")
    if amp and client.username == device_identity(pk, dn):
        return pk, dn
    return None


class SignedConnectAuthenticator:
    """Alink's login flavours: a signed CONNECT with the device secret, a token login after
    registration without pre-registration, and dynamic registration itself (accepted only to
    be answered). Answers None for credentials that are none of Alink's, unless it was given a
    ``fallback`` to ask for them (the platform asks its other dialects and people instead)."""

    def __init__(
        self,
        directory: DeviceDirectory,
        *,
        fallback: Authenticator | None = None,
        max_clock_skew: float | None = None,
        clock: Callable[[], float] = time.time,
        require_tls_for_securemode2: bool = False,
    ) -> None:
        """``max_clock_skew`` (seconds) refuses a signed timestamp further than that from now,
        so a captured CONNECT cannot be replayed later. Off by default: many devices have no
        clock worth trusting at boot, and Alibaba's SDKs send fixed timestamps.
        ``require_tls_for_securemode2`` refuses a CONNECT that says ``securemode=2`` (TLS)
        but did not come over TLS: the device believes its secret-signed login is private."""
        self._require_tls = require_tls_for_securemode2
        self._directory = directory
        self._fallback = fallback
        self._max_clock_skew = max_clock_skew
        self._clock = clock

    async def authenticate(self, credentials: Credentials) -> Verdict | None:
        username = credentials.username
        if "|" not in credentials.client_id or username is None or "&" not in username:
            # not Alibaba's shape (a client id with "|…|" parameters, "deviceName&productKey")
            if self._fallback is None:
                return None
            return await self._fallback.authenticate(credentials)
        refused = Verdict(reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        try:
            connect = parse_connect(credentials.client_id, username)
        except SignatureFormatError as exc:
            log.info("refused a signed CONNECT from %s: %s", credentials.address, exc)
            return refused
        if self._require_tls and connect.params.get("securemode") == "2" and not credentials.tls:
            # before the signature is looked at: the answer says nothing of the device
            log.info("refused %s from %s: securemode=2 without TLS", username, credentials.address)
            return refused
        auth_type = connect.params.get("authType")
        if auth_type in (REGISTER, NO_PREREGISTRATION):
            return await self._registration(connect, credentials, auth_type)
        record = await self._directory.credentials(connect.product_key, connect.device_name)
        if auth_type == TOKEN_LOGIN:
            password = (credentials.password or b"").decode("ascii", "replace")
            valid = record is not None and token_valid(
                record.device_secret, connect.client_id, password
            )
        elif connect.params.get("securemode") == "-2":
            log.info("refused %s: securemode=-2 with authType %r", username, auth_type)
            return Verdict(reason_code=ReasonCode.NOT_AUTHORIZED)
        else:
            valid = record is not None and verify_password(
                connect, record.device_secret, credentials.password
            )
        if record is None or not valid:
            log.info(
                "refused %s from %s: unknown device or bad signature", username, credentials.address
            )
            return refused
        if not self._fresh(connect.timestamp):
            log.info(
                "refused %s: timestamp %s outside the allowed skew", username, connect.timestamp
            )
            return refused
        if not record.enabled:
            # MQTT 5.0 0x8A Banned; a 3.1.1 client is told "not authorized" (5)
            return Verdict(reason_code=ReasonCode.BANNED)
        pk, dn = connect.product_key, connect.device_name
        # _ss=1: the Link SDKs rely on Alibaba subscribing them to their system topics
        labels = frozenset({AUTO_SUBSCRIBE}) if connect.params.get("_ss") == "1" else frozenset()
        return Verdict(
            username=device_identity(pk, dn), client_id=device_client_id(pk, dn), labels=labels
        )

    async def _registration(
        self, connect: AlibabaConnect, credentials: Credentials, auth_type: str
    ) -> Verdict:
        """A device asking for its credentials: accepted only to be answered (it may do
        nothing else) when the product allows it and the product secret signed the request."""
        pk, dn = connect.product_key, connect.device_name
        try:
            check_device_name(dn)
        except InvalidName as exc:
            # Refused in the CONNACK, not accepted and then closed unanswered (the SDKs then
            # retry for ever): 0x85 Client Identifier not valid (3.1.1: 2, identifier
            # rejected) — the identity it asks to be registered under is what is wrong, and
            # it reads apart from 0x86, which tells the device its product secret is.
            # Alibaba's naming rules are public: saying so reveals nothing.
            log.info("refused %s of %s&%s: %s", auth_type, dn, pk, exc)
            return Verdict(reason_code=ReasonCode.CLIENT_IDENTIFIER_NOT_VALID)
        password = (credentials.password or b"").decode("ascii", "replace")
        signature = (connect.sign_method, connect.params.get("random", ""), password)
        refusal = await registration_refusal(
            self._directory, pk, dn, create=auth_type == NO_PREREGISTRATION, signature=signature
        )
        if refusal is not None:
            log.info("refused %s of %s&%s: %s", auth_type, dn, pk, refusal)
            banned = refusal == FORBIDDEN
            return Verdict(reason_code=ReasonCode.BANNED if banned else ReasonCode.NOT_AUTHORIZED)
        return Verdict(client_id=registration_client_id(pk, dn, auth_type))

    def _fresh(self, timestamp: str | None) -> bool:
        return timestamp_fresh(timestamp, self._clock(), self._max_clock_skew)


def device_access(
    client: Client, topic_classes: Callable[[str], tuple[TopicClass, ...]]
) -> Access | None:
    """What a connection Alink authenticated may do: a device its own topics (a gateway's
    ``DeviceTopics`` is its connection's own, and carries the sub-devices logged in through
    it: ``carry``/``drop``); a device being registered nothing. None for anyone else's."""
    device = device_of(client)
    if device is None:
        # a device being registered may do nothing but wait for its answer
        return NO_ACCESS if registration_of(client) is not None else None
    pk, dn = device
    return DeviceTopics(pk, dn, topic_classes(pk))
