"""Alibaba Cloud IoT's signed CONNECT: what a device built for it sends, and how to check it.

A device with the triple (ProductKey, DeviceName, DeviceSecret) connects with::

    client id  {clientId}|securemode=3,signmethod=hmacsha1,timestamp=1539421321846|
    username   {deviceName}&{productKey}
    password   hex(HMAC(deviceSecret, content))

where ``content`` is the parameters the device submits — clientId, deviceName, productKey and,
when it sends one, timestamp — sorted by name and concatenated as ``name value`` pairs with no
separators: ``clientId…deviceName…productKey…timestamp…``. Extended parameters between the
bars (``securemode``, ``signmethod``, ``timestamp``, and SDK extras such as ``_v``, ``lan``,
``ext``, ``authType``) are comma-separated ``key=value`` pairs; only ``timestamp`` is signed.
(Alibaba Cloud IoT Platform documentation, "Establish MQTT connections over TCP", and its worked
example, which the tests reproduce.)

``securemode`` 2 is TLS, 3 plain TCP, -2 dynamic registration; ``signmethod`` is ``hmacmd5``
(the default), ``hmacsha1``, ``hmacsha256`` or ``sha256``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import msgspec

from hongshan.errors import HongshanError

# hashlib constructors by signmethod; "sha256" is taken as HMAC-SHA256 as Alibaba's C SDK does
_DIGESTS: dict[str, Callable[..., Any]] = {
    "hmacmd5": hashlib.md5,
    "hmacsha1": hashlib.sha1,
    "hmacsha256": hashlib.sha256,
    "sha256": hashlib.sha256,
}
SIGN_METHODS = frozenset(_DIGESTS)


class SignatureFormatError(HongshanError):
    """A CONNECT that claims Alibaba's scheme but does not follow it."""


class AlibabaConnect(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of an Alibaba-style CONNECT."""

    client_id: str  # the device's own id, without the |…| parameters
    product_key: str
    device_name: str
    params: dict[str, str]  # securemode, signmethod, timestamp and any extras

    @property
    def sign_method(self) -> str:
        return self.params.get("signmethod", "hmacmd5")

    @property
    def timestamp(self) -> str | None:
        return self.params.get("timestamp")


def split_client_id(mqtt_client_id: str) -> tuple[str, dict[str, str]]:
    """``"SN1|securemode=3,signmethod=hmacsha1|"`` → ``("SN1", {...})``; no bars → no params."""
    if "|" not in mqtt_client_id:
        return mqtt_client_id, {}
    client_id, _, rest = mqtt_client_id.partition("|")
    if not rest.endswith("|") or "|" in rest[:-1]:
        raise SignatureFormatError(f"client id {mqtt_client_id!r}: parameters must end with '|'")
    params: dict[str, str] = {}
    for pair in filter(None, rest[:-1].split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SignatureFormatError(f"client id parameter {pair!r} is not key=value")
        params[key.strip()] = value.strip()
    return client_id, params


def parse_connect(mqtt_client_id: str, username: str) -> AlibabaConnect:
    client_id, params = split_client_id(mqtt_client_id)
    device_name, sep, product_key = username.rpartition("&")
    if not sep or not device_name or not product_key:
        raise SignatureFormatError(f"username {username!r} is not deviceName&productKey")
    method = params.get("signmethod", "hmacmd5").lower()
    if method not in SIGN_METHODS:
        raise SignatureFormatError(f"signmethod {method!r} is not one of {sorted(SIGN_METHODS)}")
    params["signmethod"] = method
    return AlibabaConnect(
        client_id=client_id, product_key=product_key, device_name=device_name, params=params
    )


def sign_content(fields: dict[str, str]) -> str:
    """The signed string: fields sorted by name, each name followed by its value."""
    return "".join(f"{name}{fields[name]}" for name in sorted(fields))


def sign(secret: str, method: str, fields: dict[str, str]) -> str:
    """The password a device computes: lower-case hex of the HMAC of ``sign_content``."""
    digest = _DIGESTS[method]
    return hmac.new(secret.encode(), sign_content(fields).encode(), digest).hexdigest()


def connect_fields(connect: AlibabaConnect) -> dict[str, str]:
    fields = {
        "clientId": connect.client_id,
        "deviceName": connect.device_name,
        "productKey": connect.product_key,
    }
    if connect.timestamp is not None:
        fields["timestamp"] = connect.timestamp
    return fields


def verify_password(connect: AlibabaConnect, secret: str, password: bytes | None) -> bool:
    """Whether ``password`` is the signature of this CONNECT under ``secret`` (constant time;
    hex in either case, as devices differ)."""
    if password is None:
        return False
    try:
        given = password.decode("ascii")
    except UnicodeDecodeError:
        return False
    return verify_fields(secret, connect.sign_method, connect_fields(connect), given)


def timestamp_fresh(timestamp: str | None, now: float, max_skew: float | None) -> bool:
    """Whether a signed ``timestamp`` (milliseconds since the epoch, as Alibaba's pages say) is
    within ``max_skew`` seconds of ``now`` — the one clock window for signed CONNECTs and for
    the sub-device signatures a gateway sends (topology add, sub-device login), so that a
    captured signature cannot be replayed later. ``max_skew`` None: no window (any or no
    timestamp). Alibaba's own Python SDK (aliyun-iot-linkkit 1.2) signs its CONNECT with
    *seconds*; a value below 10^11 cannot be milliseconds of any date after March 1973, so it
    is read as seconds."""
    if max_skew is None:
        return True
    if timestamp is None or not timestamp.isdigit() or len(timestamp) > 16:
        return False
    value = int(timestamp)
    seconds = value if value < 100_000_000_000 else value / 1000
    return abs(now - seconds) <= max_skew


def verify_fields(secret: str, method: str, fields: dict[str, str], given: str) -> bool:
    """Whether ``given`` signs ``fields`` under ``secret`` — also how a gateway vouches for a
    sub-device (topology add, sub-device login), where the SDKs write the method in camel case
    (``hmacSha256``)."""
    method = method.lower()
    if method not in _DIGESTS:
        return False
    # bytes: compare_digest refuses str with non-ASCII characters (a device's garbage)
    return hmac.compare_digest(given.lower().encode(), sign(secret, method, fields).encode())
