"""Dynamic registration ("one secret per product"): a device that knows only its product's
ProductKey and ProductSecret obtains its own credentials.

Over MQTT (Alibaba, "Dynamic registration based on MQTT"), the device connects with::

    client id  {deviceName}.{productKey}|random={r},authType=register|regnwl,securemode=2|-2,
                signmethod=hmacsha256|
    username   {deviceName}&{productKey}
    password   hex(HMAC(productSecret, "deviceName{dn}productKey{pk}random{r}"))

and the platform publishes the answer to that connection alone, without a subscription:

- ``authType=register`` (the device was created beforehand and never came online):
  ``/ext/register`` ``{"productKey", "deviceName", "deviceSecret"}``;
- ``authType=regnwl`` (no pre-registration; the device is created now): ``/ext/regnwl``
  ``{"clientId", "productKey", "deviceName", "deviceToken"}``, and the device then logs in with
  client id ``{clientId}|securemode=-2,authType=connwl|`` and the token as password.

Over HTTP (``POST /auth/register/device``, form fields ``productKey``, ``deviceName``,
``random``, ``sign``, ``signMethod``) the answer is the same triple as JSON. Either way only a
product with dynamic registration switched on, and for ``register`` only a device that never
came online, gets an answer — else anyone with the product secret could take an active
device's secret.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

from hongshan.identity.alibaba import verify_fields

REGISTER = "register"  # pre-registered: the answer is the device secret
NO_PREREGISTRATION = "regnwl"  # created on the fly: the answer is a token
TOKEN_LOGIN = "connwl"  # logging in with that token


def registration_signed(
    product_secret: str, method: str, product_key: str, device_name: str, random: str, sign: str
) -> bool:
    fields = {"deviceName": device_name, "productKey": product_key, "random": random}
    return verify_fields(product_secret, method, fields, sign)


# why a registration is refused
NOT_ALLOWED = "not allowed"  # the product does not allow it, or its secret did not sign it
FORBIDDEN = "device forbidden"  # the device is disabled
ACTIVE = "no such device, or already active"


class _Credentials(Protocol):
    @property
    def enabled(self) -> bool: ...


class RegistrationDirectory(Protocol):
    """What deciding a registration needs of the registry."""

    async def registration_secret(self, product_key: str) -> str | None: ...

    def activated(self, product_key: str, device_name: str) -> bool | None: ...

    async def credentials(self, product_key: str, device_name: str) -> _Credentials | None: ...


async def registration_refusal(
    directory: RegistrationDirectory,
    product_key: str,
    device_name: str,
    *,
    create: bool,
    signature: tuple[str, str, str] | None,
) -> str | None:
    """Why this registration may not go ahead (``NOT_ALLOWED``, ``FORBIDDEN``, ``ACTIVE``), or
    None. One rule for MQTT, HTTP and gateways: the product allows dynamic registration; the
    request is signed with its secret (``signature`` = (method, random, sign); a gateway vouches
    instead); the device is not disabled; it never came online — and exists already, unless
    ``create`` (no pre-registration: it is made now)."""
    secret = await directory.registration_secret(product_key)
    if secret is None:
        return NOT_ALLOWED
    if signature is not None:
        method, random, sign = signature
        if not registration_signed(secret, method, product_key, device_name, random, sign):
            return NOT_ALLOWED
    existing = await directory.credentials(product_key, device_name)
    if existing is not None and not existing.enabled:
        return FORBIDDEN
    activated = directory.activated(product_key, device_name)
    if activated or (activated is None and not create):
        return ACTIVE
    return None


def token_client_id(product_key: str, device_name: str) -> str:
    """The client id a device registered without pre-registration logs in with."""
    return f"{product_key}.{device_name}"


def device_token(device_secret: str, client_id: str) -> str:
    """The token of a device registered without pre-registration: derived from the secret the
    registry keeps for it, so nothing more is stored and a new secret revokes it."""
    message = f"connwl|{client_id}".encode()
    return hmac.new(device_secret.encode(), message, hashlib.sha256).hexdigest()


def token_valid(device_secret: str, client_id: str, token: str) -> bool:
    return hmac.compare_digest(
        token.lower().encode(), device_token(device_secret, client_id).encode()
    )
