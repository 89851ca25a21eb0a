"""ThingsBoard's MQTT device API as a table: every topic, who speaks on it, what it carries.

ThingsBoard's topics name no device: ``v1/devices/me/…`` is whichever device the connection
logged in as, and ``v1/gateway/…`` the gateway's sub-devices, named in the payload. So nothing
on them is routed between clients: the dialect takes every publish on them (its taps consume
it) and sends its answers to the one connection they are for (``BrokerPort.send_to``).

=========================================  ===  ====  =============================================
topic                                      up   down  what for
=========================================  ===  ====  =============================================
``v1/devices/me/telemetry``                yes        time series: ``{k: v}``, ``{"ts", "values"}``,
                                                      or an array of either
``v1/devices/me/attributes``               yes  yes   client attributes up; shared ones down
``v1/devices/me/attributes/request/N``     yes        ``{"clientKeys": "a,b", "sharedKeys": "c"}``
``v1/devices/me/attributes/response/N``         yes   ``{"client": {…}, "shared": {…}}``
``v1/devices/me/rpc/request/N``            yes  yes   client-side RPC up; server-side RPC down
``v1/devices/me/rpc/response/N``           yes  yes   the answer to the other side's request
``v1/gateway/connect``                     yes        ``{"device": name, "type": t}``
``v1/gateway/disconnect``                  yes        ``{"device": name}``
``v1/gateway/telemetry``                   yes        ``{name: [telemetry, …]}``
``v1/gateway/attributes``                  yes  yes   ``{name: {…}}`` up; ``{"device", "data"}``
                                                      down
``v1/gateway/attributes/request``          yes        ``{"id", "device", "client", "key"|"keys"}``
``v1/gateway/attributes/response``              yes   ``{"id", "device", "value"|"values"}``
``v1/gateway/rpc``                         yes  yes   ``{"device", "id", "data"}`` answers up;
                                                      ``{"device", "data": {"id", "method",
                                                      "params"}}`` requests down
=========================================  ===  ====  =============================================

(*up*: the device publishes it; *down*: the platform sends it, and the device may subscribe.)
Only a gateway (a device of a product whose node type is ``gateway``) has the ``v1/gateway/``
rows. ThingsBoard's claiming, provisioning and firmware topics (``v1/devices/me/claim``,
``/provision``, ``v2/fw/…``) are not served: a device may not publish or subscribe to them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hongshan.identity.acl import filter_covers


class Kind(enum.Enum):
    TELEMETRY = "telemetry"
    ATTRIBUTES = "attributes"
    ATTRIBUTE_REQUEST = "attribute request"
    ATTRIBUTE_RESPONSE = "attribute response"
    RPC_REQUEST = "rpc request"
    RPC_RESPONSE = "rpc response"
    GATEWAY_CONNECT = "gateway connect"
    GATEWAY_DISCONNECT = "gateway disconnect"
    GATEWAY_TELEMETRY = "gateway telemetry"
    GATEWAY_ATTRIBUTES = "gateway attributes"
    GATEWAY_ATTRIBUTE_REQUEST = "gateway attribute request"
    GATEWAY_ATTRIBUTE_RESPONSE = "gateway attribute response"
    GATEWAY_RPC = "gateway rpc"


@dataclass(frozen=True, kw_only=True)
class Row:
    """One topic of the API: ``topic`` as a filter (``+`` is the request id), whether the
    device publishes on it (``up``), whether the platform sends on it (``down``: the device
    may subscribe), and whether only a gateway has it."""

    topic: str
    kind: Kind
    up: bool
    down: bool
    gateway: bool = False


DEVICE_ME = "v1/devices/me/"
GATEWAY = "v1/gateway/"

ROWS = (
    Row(topic="v1/devices/me/telemetry", kind=Kind.TELEMETRY, up=True, down=False),
    Row(topic="v1/devices/me/attributes", kind=Kind.ATTRIBUTES, up=True, down=True),
    Row(
        topic="v1/devices/me/attributes/request/+",
        kind=Kind.ATTRIBUTE_REQUEST,
        up=True,
        down=False,
    ),
    Row(
        topic="v1/devices/me/attributes/response/+",
        kind=Kind.ATTRIBUTE_RESPONSE,
        up=False,
        down=True,
    ),
    Row(topic="v1/devices/me/rpc/request/+", kind=Kind.RPC_REQUEST, up=True, down=True),
    Row(topic="v1/devices/me/rpc/response/+", kind=Kind.RPC_RESPONSE, up=True, down=True),
    Row(topic="v1/gateway/connect", kind=Kind.GATEWAY_CONNECT, up=True, down=False, gateway=True),
    Row(
        topic="v1/gateway/disconnect",
        kind=Kind.GATEWAY_DISCONNECT,
        up=True,
        down=False,
        gateway=True,
    ),
    Row(
        topic="v1/gateway/telemetry",
        kind=Kind.GATEWAY_TELEMETRY,
        up=True,
        down=False,
        gateway=True,
    ),
    Row(
        topic="v1/gateway/attributes",
        kind=Kind.GATEWAY_ATTRIBUTES,
        up=True,
        down=True,
        gateway=True,
    ),
    Row(
        topic="v1/gateway/attributes/request",
        kind=Kind.GATEWAY_ATTRIBUTE_REQUEST,
        up=True,
        down=False,
        gateway=True,
    ),
    Row(
        topic="v1/gateway/attributes/response",
        kind=Kind.GATEWAY_ATTRIBUTE_RESPONSE,
        up=False,
        down=True,
        gateway=True,
    ),
    Row(topic="v1/gateway/rpc", kind=Kind.GATEWAY_RPC, up=True, down=True, gateway=True),
)

# what the broker hands the dialect: everything on the API's two branches
TAPS = ("v1/devices/me/#", "v1/gateway/#")

_EXACT = {row.topic: row for row in ROWS if not row.topic.endswith("/+")}
_BY_ID = {row.topic[:-1]: row for row in ROWS if row.topic.endswith("/+")}  # prefix -> row


def classify(topic: str) -> tuple[Row, str] | None:
    """The row of ``topic`` and its request id ("" where it has none); None for a topic that
    is not the API's. An id is ThingsBoard's integer, but any one level is taken: the device
    chooses its own, and the answer goes back on the same."""
    row = _EXACT.get(topic)
    if row is not None:
        return row, ""
    prefix, slash, request_id = topic.rpartition("/")
    if slash:
        row = _BY_ID.get(prefix + "/")
        if row is not None and request_id:
            return row, request_id
    return None


class ApiRights:
    """The topic rights of a ThingsBoard device's connection (``broker.auth.Access``): the
    rows it may publish on, and subscriptions only to what the platform sends it. Two
    instances serve every connection: a device's and a gateway's."""

    receive_filter = None  # nothing is routed to these topics: only the dialect sends there

    def __init__(self, *, gateway: bool) -> None:
        self.gateway = gateway
        self._down = tuple(row.topic for row in ROWS if row.down and (gateway or not row.gateway))

    def may_publish(self, topic: str) -> bool:
        found = classify(topic)
        return found is not None and found[0].up and (self.gateway or not found[0].gateway)

    def may_subscribe(self, topic_filter: str) -> bool:
        return any(filter_covers(rule, topic_filter) for rule in self._down)


DEVICE_RIGHTS = ApiRights(gateway=False)
GATEWAY_RIGHTS = ApiRights(gateway=True)
