"""MQTT control packets as immutable values (MQTT 3.1, 3.1.1 and 5.0).

One type per control packet. They are ``msgspec.Struct(frozen=True)`` rather than frozen
dataclasses: the broker builds one ``Publish`` per message on its hot path, and a frozen Struct is
constructed several times faster than a frozen dataclass. Fields that exist only in MQTT 5.0
(reason codes on acknowledgements, properties) take their 3.1.1 meaning when encoded for an
older protocol level: a reason code of 0 and no properties.

Protocol levels: 3 is MQTT 3.1 (protocol name ``MQIsdp``), 4 is MQTT 3.1.1, 5 is MQTT 5.0.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeAlias

import msgspec

MQTT_3_1: Final = 3
MQTT_3_1_1: Final = 4
MQTT_5: Final = 5
PROTOCOL_LEVELS: Final = frozenset({MQTT_3_1, MQTT_3_1_1, MQTT_5})


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


UserProperties: TypeAlias = tuple[tuple[str, str], ...]


class Properties(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """MQTT 5.0 properties (section 2.2.2.2). ``None`` means absent.

    Which properties a packet may carry is checked by the codec (section 2.2.2.2, table 2-4);
    a property that is not allowed in a packet, or appears twice where it may not, is a
    Protocol Error (0x82)."""

    payload_format_indicator: int | None = None  # 0x01
    message_expiry_interval: int | None = None  # 0x02
    content_type: str | None = None  # 0x03
    response_topic: str | None = None  # 0x08
    correlation_data: bytes | None = None  # 0x09
    subscription_identifiers: tuple[int, ...] = ()  # 0x0B, several allowed in PUBLISH
    session_expiry_interval: int | None = None  # 0x11
    assigned_client_identifier: str | None = None  # 0x12
    server_keep_alive: int | None = None  # 0x13
    authentication_method: str | None = None  # 0x15
    authentication_data: bytes | None = None  # 0x16
    request_problem_information: int | None = None  # 0x17
    will_delay_interval: int | None = None  # 0x18
    request_response_information: int | None = None  # 0x19
    response_information: str | None = None  # 0x1A
    server_reference: str | None = None  # 0x1C
    reason_string: str | None = None  # 0x1F
    receive_maximum: int | None = None  # 0x21
    topic_alias_maximum: int | None = None  # 0x22
    topic_alias: int | None = None  # 0x23
    maximum_qos: int | None = None  # 0x24
    retain_available: int | None = None  # 0x25
    user_properties: UserProperties = ()  # 0x26, several allowed, order kept
    maximum_packet_size: int | None = None  # 0x27
    wildcard_subscription_available: int | None = None  # 0x28
    subscription_identifier_available: int | None = None  # 0x29
    shared_subscription_available: int | None = None  # 0x2A


NO_PROPERTIES: Final = Properties()


class Will(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = NO_PROPERTIES


class Connect(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    client_id: str
    protocol_level: int = MQTT_3_1_1
    protocol_name: str = "MQTT"  # "MQIsdp" for level 3
    clean_start: bool = True  # "clean session" before 5.0
    keep_alive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = NO_PROPERTIES


class ConnAck(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    session_present: bool = False
    reason_code: int = 0  # at levels 3/4: the CONNACK return code (0..5)
    properties: Properties = NO_PROPERTIES


class Publish(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    topic: str  # may be "" in 5.0 when a topic alias is given
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int = 0  # 0 for QoS 0; 1..65535 otherwise
    properties: Properties = NO_PROPERTIES


class PubAck(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


class PubRec(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


class PubRel(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


class PubComp(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


class RetainHandling(IntEnum):
    SEND_ON_SUBSCRIBE = 0
    SEND_IF_NEW_SUBSCRIPTION = 1
    DO_NOT_SEND = 2


class Subscription(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    topic_filter: str
    qos: int = 0  # the maximum QoS asked for
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = RetainHandling.SEND_ON_SUBSCRIBE


class Subscribe(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = NO_PROPERTIES


class SubAck(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    reason_codes: tuple[int, ...]  # 3.1.1: granted QoS 0/1/2 or 0x80 failure
    properties: Properties = NO_PROPERTIES


class Unsubscribe(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = NO_PROPERTIES


class UnsubAck(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    packet_id: int
    reason_codes: tuple[int, ...] = ()  # 5.0 only; empty at levels 3/4
    properties: Properties = NO_PROPERTIES


class PingReq(msgspec.Struct, frozen=True, gc=False):
    pass


class PingResp(msgspec.Struct, frozen=True, gc=False):
    pass


class Disconnect(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


class Auth(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    reason_code: int = 0
    properties: Properties = NO_PROPERTIES


Packet: TypeAlias = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | PubRec
    | PubRel
    | PubComp
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)
