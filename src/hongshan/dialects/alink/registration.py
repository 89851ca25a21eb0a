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

Over HTTPS (Alibaba, "Dynamic registration based on HTTPS"): ``POST /auth/register/device``
(served by the API, answered by ``HttpRegistration``) with form fields ``productKey``,
``deviceName``, ``random``, ``sign`` (HMAC of ``deviceName{dn}productKey{pk}random{r}`` under
the product secret) and ``signMethod``; the answer is ``{"code": 200, "data": {productKey,
deviceName, deviceSecret}, "message": "success"}``, or a ``code`` and ``message`` saying why not
(always HTTP 200, as the SDKs read ``code``). Pre-registered devices only.

Either way only a product with dynamic registration switched on, and for ``register`` only a
device that never came online, gets an answer — else anyone with the product secret could take
an active device's secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Protocol

from hongshan.dialects.alink.messages import AUTH_FAILED, REQUEST_INVALID, SUCCESS
from hongshan.identity.alibaba import verify_fields
from hongshan.things.model import Device

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


class HttpRegistry(RegistrationDirectory, Protocol):
    """What answering a registration over HTTPS needs of the registry."""

    async def get_device(
        self, product_key: str, device_name: str, *, with_secret: bool = False
    ) -> Device: ...


class HttpRegistration:
    """Answers a device's dynamic registration over HTTPS: its form in, the JSON body Alibaba's
    SDKs read out. Never creates a device (the HTTPS way is for pre-registered ones)."""

    def __init__(self, registry: HttpRegistry) -> None:
        self._registry = registry

    async def answer(self, form: Mapping[str, str]) -> dict[str, Any]:
        fields = {k: form.get(k, "") for k in ("productKey", "deviceName", "random", "sign")}
        if not all(fields.values()):
            missing = ", ".join(k for k, v in fields.items() if not v)
            return _answer(REQUEST_INVALID, f"request parameter error: missing {missing}")
        pk, dn = fields["productKey"], fields["deviceName"]
        method = form.get("signMethod") or form.get("signmethod") or "hmacmd5"
        signature = (method, fields["random"], fields["sign"])
        refusal = await registration_refusal(
            self._registry, pk, dn, create=False, signature=signature
        )
        if refusal == NOT_ALLOWED:
            return _answer(AUTH_FAILED, "request auth error")
        if refusal is not None:
            return _answer(AUTH_FAILED, f"request auth error: {refusal}")
        device = await self._registry.get_device(pk, dn, with_secret=True)
        triple = {"productKey": pk, "deviceName": dn, "deviceSecret": device.device_secret}
        return _answer(SUCCESS, "success", triple)


def _answer(code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"code": code, "data": data, "message": message}
