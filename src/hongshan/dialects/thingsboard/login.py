"""How a ThingsBoard device logs in: an access token as the MQTT username (no password), or
ThingsBoard's basic MQTT credentials (a client id, a username, or both, and a password when
one is set) — looked up in the registry, in memory.

A token login is this dialect's whatever follows: a username that could be an access token
(``_TOKEN``) without a password. A wrong one is refused as ThingsBoard refuses it — CONNACK
0x86 Bad user name or password (MQTT 3.1.1: 4) — with anonymous access on too: a device with a
mistyped token is told so, not let in as an anonymous client that hears nothing. Nobody else
loses by it: a person or an application always logs in with a password (the users file has
no other kind), and anonymous access is a CONNECT without a username (or, without a users
file, one with a password too). Any other login that is none of a ThingsBoard device's (basic
MQTT credentials it does not know) is not answered here (``None``): the next dialect, then
people and applications, are asked.

A device's session is kept under the client id ``productKey&deviceName`` whatever the
CONNECT said (ThingsBoard's SDK sends an empty one): one session per device, as for Alink's
devices, so a second connection with the same token takes the first one's place. The
connection is labelled as this dialect's (``LABEL``, and ``GATEWAY`` for a gateway: a device
of a product whose node type is ``gateway``), which is how its rights and its comings and
goings are known as a ThingsBoard device's.
"""

from __future__ import annotations

import logging
import re

from hongshan.broker.auth import Client, Credentials, Verdict
from hongshan.dialects.thingsboard.directory import Device, DeviceDirectory, speaks_thingsboard
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.things.model import NodeType

log = logging.getLogger("hongshan.thingsboard")

LABEL = "thingsboard"
GATEWAY = "thingsboard-gateway"
# what an access token may be (URL-safe: ThingsBoard's HTTP API puts it in the path); a
# username with anything else (an Alink device's "dn&pk") is not looked up as one
_TOKEN = re.compile(r"[A-Za-z0-9\-._~]{1,128}")


def session_id(device: Device) -> str:
    """The client id a device's session is kept under (a '&' is the platform's own: no
    client can choose it)."""
    return f"{device[0]}&{device[1]}"


def device_of(client: Client) -> tuple[Device, bool] | None:
    """(the device, whether it is a gateway) of a connection this dialect logged in."""
    if LABEL not in client.labels:
        return None
    pk, _, dn = client.client_id.partition("&")
    return (pk, dn), GATEWAY in client.labels


async def authenticate(directory: DeviceDirectory, credentials: Credentials) -> Verdict | None:
    """The verdict on a token login (any, known or not) or on one of its devices' basic MQTT
    credentials; None for any other CONNECT (none of this dialect's)."""
    username, password = credentials.username, credentials.password
    token = username if username and not password and _TOKEN.fullmatch(username) else None
    device = directory.device_by_token(token) if token else None
    if device is None and (username or credentials.client_id):
        device = directory.device_by_basic(credentials.client_id, username, password)
    if device is not None:
        view = directory.product_view(device[0])
        state = await directory.credentials(*device)
        if view is not None and speaks_thingsboard(view) and state is not None:
            if not state.enabled:
                log.info(
                    "refused %s&%s from %s: disabled", device[1], device[0], credentials.address
                )
                return Verdict(reason_code=ReasonCode.BANNED)  # (3.1.1: 5, not authorized)
            labels = {LABEL, GATEWAY} if view.node_type is NodeType.GATEWAY else {LABEL}
            return Verdict(client_id=session_id(device), labels=frozenset(labels))
        # (deleted, or its product no longer speaks ThingsBoard's API: none of its devices)
    if token is None:
        return None
    log.info("refused a token login from %s: no device has that token", credentials.address)
    return Verdict(reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
