"""What the registry holds: products, devices and groups, as plain data.

These are the registry's answers (never rows or ORM objects); the store behind them is
``hongshan.store.registry``. They are also the REST API's bodies, in camelCase as Alibaba's
APIs write them (``productKey``, ``deviceSecret``). Secrets appear here in the clear only where
an operator asked for a device's credentials; everywhere else they are left out
(``Device.device_secret``, ``access_token`` and ``mqtt_basic`` are None).
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec

from hongshan.errors import HongshanError
from hongshan.identity.principals import DEFAULT_TENANT


class NodeType(enum.StrEnum):
    """Alibaba's node types: a directly connected device, a gateway, or a sub-device that
    reaches the platform only through a gateway."""

    DEVICE = "device"
    GATEWAY = "gateway"
    SUBDEVICE = "subdevice"


class DataFormat(enum.StrEnum):
    ALINK = "alink"  # Alink JSON (dialects/alink/messages.py)
    RAW = "raw"  # bytes the product's own script would parse (kept, not interpreted)


class Protocol(enum.StrEnum):
    """What a product's devices speak, and so how they log in."""

    ALINK = "alink"  # Alibaba's: a signed CONNECT with the device secret (dialects/alink/)
    # ThingsBoard's MQTT device API: v1/devices/me/... topics, logging in with an access token
    # (the MQTT username) or basic MQTT credentials
    THINGSBOARD = "thingsboard"


class DeviceState(enum.StrEnum):
    """Alibaba's device statuses (UNACTIVE, ONLINE, OFFLINE, DISABLE); see ``lifecycle``."""

    INACTIVE = "inactive"  # created, never connected
    ONLINE = "online"
    OFFLINE = "offline"
    DISABLED = "disabled"  # refused at CONNECT until enabled again


_STATUS = {"not_found": 404, "conflict": 409, "invalid": 400}  # the API's answer to each kind


class RegistryError(HongshanError):
    """A registry request that cannot be done; ``kind`` says why, and so the API's status."""

    def __init__(self, message: str, kind: Literal["not_found", "conflict", "invalid"]) -> None:
        super().__init__(message)
        self.kind = kind
        self.http_status = _STATUS[kind]


Right = Literal["pub", "sub", "all"]


class TopicClass(msgspec.Struct, frozen=True):
    """A custom topic class of a product: ``/${productKey}/${deviceName}/user/…``, and what
    its devices may do on it (the dialect that speaks them turns it into their rights)."""

    pattern: str  # as Alibaba writes it, e.g. "/${productKey}/${deviceName}/user/get"
    right: Right


class DeviceCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """What logging a device in needs of the registry: its secret, and whether it may."""

    product_key: str
    device_name: str
    device_secret: str
    enabled: bool = True


class Product(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    product_key: str
    name: str
    description: str = ""
    node_type: NodeType = NodeType.DEVICE
    data_format: DataFormat = DataFormat.ALINK
    dynamic_registration: bool = False
    topic_classes: tuple[TopicClass, ...] = ()
    created_at: int = 0  # ms since the epoch, as Alibaba reports times
    protocol: Protocol = Protocol.ALINK
    # properties are added to the thing model as devices first report them
    schemaless: bool = False
    product_secret: str | None = None  # only when asked for
    tenant: str = DEFAULT_TENANT  # whose it is: its devices and all of theirs are too


# A cell that starts with one of these is a formula to a spreadsheet (OWASP, "CSV Injection");
# a district is a CSV cell of aggregates per district, and a place's name never means one.
NOT_A_FORMULA = "^(?![=+\\-@\t\r])"


class Location(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    district: Annotated[str, msgspec.Meta(max_length=64, pattern=NOT_A_FORMULA)] = ""


class MqttBasic(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """ThingsBoard's basic MQTT credentials: a CONNECT with this client id, or this username,
    or both, and the password when one is set. None (or "") leaves a field out."""

    client_id: str | None = None
    username: str | None = None
    password: str | None = None


class Device(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    product_key: str
    device_name: str
    nickname: str = ""
    state: DeviceState = DeviceState.INACTIVE
    created_at: int = 0
    first_online_at: int | None = None
    last_online_at: int | None = None
    last_ip: str = ""
    gateway: tuple[str, str] | None = None  # (product key, device name) of its parent
    tags: dict[str, str] = {}
    firmware: dict[str, str] = {}  # module -> version ("default" for the main firmware)
    location: Location | None = None
    device_secret: str | None = None  # only when asked for
    # a thingsboard product's device logs in with one of these (only when asked for)
    access_token: str | None = None
    mqtt_basic: MqttBasic | None = None

    @property
    def enabled(self) -> bool:
        return self.state != DeviceState.DISABLED


class DevicePlace(msgspec.Struct, frozen=True, array_like=True):
    """Where a device is, and nothing else (the console's map, aggregates per district)."""

    product_key: str
    device_name: str
    lat: float | None
    lon: float | None
    district: str


class Reach(msgspec.Struct, frozen=True, kw_only=True):
    """The devices a query may reach at most, whatever else it asks: those of the products of
    ``tenant`` (None: every tenant's) that, when ``groups`` is not None, are members of one
    of those groups (an empty set reaches no device). Built from a principal by
    ``api.scope.Scope``; every store query of devices or of what derives from them (alarms,
    commands, history's device lists) narrows by it."""

    tenant: str | None = None
    groups: frozenset[str] | None = None


EVERYWHERE = Reach()


class DeviceFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What ``list_devices`` narrows by; every field left None matches everything."""

    product_key: str | None = None
    state: DeviceState | None = None
    name_prefix: str | None = None
    group: str | None = None
    tags: dict[str, str] | None = None  # every tag given must be present with that value
    gateway: tuple[str, str] | None = None  # the sub-devices of this gateway
    text: str | None = None  # in the name or the nickname, case-insensitive
    order: tuple[str, bool] = ("createdAt", False)  # (a field of DEVICE_ORDERS, descending)
    limit: int = 100
    offset: int = 0
    reach: Reach = EVERYWHERE


class Group(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    name: str
    tenant: str = DEFAULT_TENANT
    description: str = ""
    created_at: int = 0
    size: int = 0
    tags: dict[str, str] = {}  # thresholds its devices' alarm conditions may read
