"""Packet bodies to packets: one parser per packet type and protocol level. Which parser reads
which packet type on which side of a connection is the decoder's state table, in ``codec``.

A parser takes the packet body (the bytes after the fixed header) and the four flag bits of the
fixed header, and returns a packet or raises ``RemoteProtocolError``. Levels 3 (MQTT 3.1) and 4
(MQTT 3.1.1) share their parsers; CONNECT alone tells them apart, by its protocol name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeAlias

from hongshan.errors import RemoteProtocolError
from hongshan.mqtt.datatypes import (
    AUTH_REASONS,
    CONNACK_REASONS,
    CONNACK_V3_RETURN_CODES,
    DISCONNECT_REASONS,
    SUBACK_REASONS,
    SUBACK_V3_RETURN_CODES,
    UNSUBACK_REASONS,
    malformed,
    protocol_error,
    read_bin,
    read_str,
    read_u16,
)
from hongshan.mqtt.packets import (
    MQTT_5,
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)
from hongshan.mqtt.properties import WILL, read_properties
from hongshan.mqtt.reason_codes import ReasonCode

Parser: TypeAlias = Callable[[bytes, int], Packet]

_P = PacketType
_PUBLISH: Final = 1 << _P.PUBLISH
_PING_REQ: Final = PingReq()
_PING_RESP: Final = PingResp()
_DISCONNECT: Final = Disconnect()
_AUTH: Final = Auth()
# (protocol name, level) pairs a CONNECT may carry (MQTT 3.1 section 3.1; 3.1.2.1, 3.1.2.2)
_PROTOCOLS: Final = frozenset({("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)})


def _topic_invalid(topic: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"invalid topic name {topic!r}", ReasonCode.TOPIC_NAME_INVALID)


def _check_flags(flags: int, expected: int, packet: str) -> None:
    # MQTT-2.1.3-1 (3.1.1 MQTT-2.2.2-2): reserved fixed-header flag bits hold fixed values
    if flags != expected:
        raise malformed(f"{packet} fixed-header flags 0x{flags:X}, expected 0x{expected:X}")


def _packet_id(data: bytes, i: int, end: int) -> tuple[int, int]:
    packet_id, i = read_u16(data, i, end)
    if not packet_id:  # MQTT-2.2.1-3 (3.1.1 MQTT-2.3.1-1): packet identifiers are non-zero
        raise protocol_error("packet identifier 0")
    return packet_id, i


def _no_trailing_bytes(i: int, end: int, packet: str) -> None:
    if i != end:
        raise malformed(f"{packet} has {end - i} trailing byte(s)")


# -- CONNECT (server side) ----------------------------------------------------------------------


def read_connect_protocol(data: bytes) -> tuple[str, int]:
    """The protocol name and level at the start of a CONNECT body. An unknown pair is 0x84,
    which the server answers with CONNACK 0x84 (5.0) or return code 1 (3.1.1, MQTT-3.1.2-2)."""
    name, i = read_str(data, 0, len(data))
    if i >= len(data):
        raise malformed("CONNECT ends before its protocol level")
    level = data[i]
    if (name, level) not in _PROTOCOLS:
        raise RemoteProtocolError(
            f"unsupported protocol {name!r} level {level}", ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
        )
    return name, level


def parse_connect(data: bytes, flags: int, name: str, level: int) -> Connect:
    """The rest of a CONNECT whose protocol ``read_connect_protocol`` has read."""
    _check_flags(flags, 0, "CONNECT")
    end = len(data)
    i = len(name) + 3  # the name is ASCII: 2 length bytes, the name, the level byte
    if i + 3 > end:
        raise malformed("CONNECT ends inside its variable header")
    connect_flags = data[i]
    keep_alive = (data[i + 1] << 8) | data[i + 2]
    i += 3
    if connect_flags & 0x01:  # MQTT-3.1.2-3
        raise malformed("CONNECT reserved flag is set")
    will_flag = connect_flags & 0x04
    will_qos = (connect_flags >> 3) & 0x03
    will_retain = connect_flags & 0x20
    if will_flag:
        if will_qos == 3:  # MQTT-3.1.2-12
            raise malformed("Will QoS 3")
    elif will_qos or will_retain:  # MQTT-3.1.2-11, MQTT-3.1.2-13
        raise malformed("Will QoS or Will Retain set without the Will Flag")
    if connect_flags & 0x40 and not connect_flags & 0x80 and level != MQTT_5:
        raise malformed("Password Flag without User Name Flag")  # 3.1.1 MQTT-3.1.2-22
    properties = NO_PROPERTIES
    if level == MQTT_5:
        properties, i = read_properties(data, i, end, 1 << _P.CONNECT)
        if properties.authentication_data is not None and properties.authentication_method is None:
            raise protocol_error("Authentication Data without Authentication Method")  # 3.1.2.11.10
    client_id, i = read_str(data, i, end)
    will = None
    if will_flag:
        will_properties = NO_PROPERTIES
        if level == MQTT_5:
            will_properties, i = read_properties(data, i, end, WILL)
        topic, i = read_str(data, i, end)
        if not topic or "+" in topic or "#" in topic:  # MQTT-3.1.3-11: a Topic Name
            raise _topic_invalid(topic)
        payload, i = read_bin(data, i, end)
        will = Will(
            topic=topic,
            payload=payload,
            qos=will_qos,
            retain=bool(will_retain),
            properties=will_properties,
        )
    username = password = None
    if connect_flags & 0x80:
        username, i = read_str(data, i, end)
    if connect_flags & 0x40:
        password, i = read_bin(data, i, end)
    _no_trailing_bytes(i, end, "CONNECT")
    return Connect(
        client_id=client_id,
        protocol_level=level,
        protocol_name=name,
        clean_start=bool(connect_flags & 0x02),
        keep_alive=keep_alive,
        username=username,
        password=password,
        will=will,
        properties=properties,
    )


# -- CONNACK (client side) ----------------------------------------------------------------------


def _connack(data: bytes, flags: int, v5: bool) -> ConnAck:
    _check_flags(flags, 0, "CONNACK")
    end = len(data)
    if end < 2:
        raise malformed("CONNACK shorter than 2 bytes")
    ack_flags, code = data[0], data[1]
    if ack_flags & 0xFE:  # MQTT-3.2.2-1
        raise malformed("CONNACK reserved flags are set")
    if code not in (CONNACK_REASONS if v5 else CONNACK_V3_RETURN_CODES):
        raise protocol_error(f"CONNACK reason code 0x{code:02X}")
    if ack_flags and code:  # MQTT-3.2.2-6 (3.1.1 MQTT-3.2.2-4)
        raise protocol_error("CONNACK refuses the connection but says a session is present")
    properties = NO_PROPERTIES
    i = 2
    if v5:
        properties, i = read_properties(data, i, end, 1 << _P.CONNACK)
    _no_trailing_bytes(i, end, "CONNACK")
    return ConnAck(session_present=bool(ack_flags), reason_code=code, properties=properties)


def connack_v4(data: bytes, flags: int) -> ConnAck:
    return _connack(data, flags, False)


def connack_v5(data: bytes, flags: int) -> ConnAck:
    return _connack(data, flags, True)


# -- PUBLISH (both sides): the hot path, so the topic is read inline -----------------------------


def publish_v4(data: bytes, flags: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:  # MQTT-3.3.1-4
        raise malformed("PUBLISH with QoS 3")
    if flags & 0x08 and not qos:  # MQTT-3.3.1-2
        raise malformed("PUBLISH with DUP set at QoS 0")
    end = len(data)
    if end < 2:
        raise malformed("PUBLISH ends before its topic name")
    i = 2 + ((data[0] << 8) | data[1])
    if i > end:
        raise malformed("PUBLISH topic name runs past the end of the packet")
    try:
        topic = data[2:i].decode()
    except UnicodeDecodeError:  # MQTT-1.5.4-1
        raise malformed("PUBLISH topic name is not well-formed UTF-8") from None
    if not topic or "+" in topic or "#" in topic:  # MQTT-4.7.3-1, MQTT-3.3.2-2
        raise _topic_invalid(topic)
    if "\x00" in topic:  # MQTT-1.5.4-2
        raise malformed("PUBLISH topic name contains U+0000")
    if not qos:
        return Publish(topic=topic, payload=data[i:], retain=bool(flags & 0x01))
    packet_id, i = _packet_id(data, i, end)
    return Publish(
        topic=topic,
        payload=data[i:],
        qos=qos,
        retain=bool(flags & 0x01),
        dup=bool(flags & 0x08),
        packet_id=packet_id,
    )


def publish_v5(data: bytes, flags: int) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:  # MQTT-3.3.1-4
        raise malformed("PUBLISH with QoS 3")
    if flags & 0x08 and not qos:  # MQTT-3.3.1-2
        raise malformed("PUBLISH with DUP set at QoS 0")
    end = len(data)
    if end < 2:
        raise malformed("PUBLISH ends before its topic name")
    i = 2 + ((data[0] << 8) | data[1])
    if i > end:
        raise malformed("PUBLISH topic name runs past the end of the packet")
    try:
        topic = data[2:i].decode()
    except UnicodeDecodeError:  # MQTT-1.5.4-1
        raise malformed("PUBLISH topic name is not well-formed UTF-8") from None
    if "+" in topic or "#" in topic:  # MQTT-3.3.2-2
        raise _topic_invalid(topic)
    if "\x00" in topic:  # MQTT-1.5.4-2
        raise malformed("PUBLISH topic name contains U+0000")
    packet_id = 0
    if qos:
        packet_id, i = _packet_id(data, i, end)
    if i < end and not data[i]:  # no properties: the common case
        properties = NO_PROPERTIES
        i += 1
    else:
        properties, i = read_properties(data, i, end, _PUBLISH)
    if not topic and properties.topic_alias is None:
        # section 3.3.2.1: a zero-length Topic Name without a Topic Alias is a Protocol Error
        raise protocol_error("PUBLISH with an empty topic name and no Topic Alias")
    return Publish(
        topic=topic,
        payload=data[i:],
        qos=qos,
        retain=bool(flags & 0x01),
        dup=bool(flags & 0x08),
        packet_id=packet_id,
        properties=properties,
    )


def publish_v5_from_client(data: bytes, flags: int) -> Publish:
    publish = publish_v5(data, flags)
    if publish.properties.subscription_identifiers:  # MQTT-3.3.4-6
        raise protocol_error("a client's PUBLISH may not carry a Subscription Identifier")
    return publish


# -- PUBACK, PUBREC, PUBREL, PUBCOMP ------------------------------------------------------------

_AckType: TypeAlias = type[PubAck] | type[PubRec] | type[PubRel] | type[PubComp]


def ack_v4(cls: _AckType, expected_flags: int) -> Parser:
    name = cls.__name__.upper()

    def parse(data: bytes, flags: int) -> Packet:
        _check_flags(flags, expected_flags, name)
        if len(data) != 2:
            raise malformed(f"{name} remaining length {len(data)}, expected 2")
        return cls(packet_id=_packet_id(data, 0, 2)[0])

    return parse


def ack_v5(cls: _AckType, expected_flags: int, reasons: frozenset[int]) -> Parser:
    name = cls.__name__.upper()
    bit = 1 << _P.__members__[name]

    def parse(data: bytes, flags: int) -> Packet:
        _check_flags(flags, expected_flags, name)
        end = len(data)
        packet_id, i = _packet_id(data, 0, end)
        if end == 2:  # section 3.4.2.1: no reason code means success, no properties
            return cls(packet_id=packet_id)
        code = data[2]
        if code not in reasons:
            raise protocol_error(f"{name} reason code 0x{code:02X}")
        if end == 3:  # section 3.4.2.2.1: no property length means no properties
            return cls(packet_id=packet_id, reason_code=code)
        properties, i = read_properties(data, 3, end, bit)
        _no_trailing_bytes(i, end, name)
        return cls(packet_id=packet_id, reason_code=code, properties=properties)

    return parse


# -- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ---------------------------------------------------


def _subscribe(data: bytes, flags: int, v5: bool) -> Subscribe:
    _check_flags(flags, 0x02, "SUBSCRIBE")  # MQTT-3.8.1-1
    end = len(data)
    packet_id, i = _packet_id(data, 0, end)
    properties = NO_PROPERTIES
    if v5:
        properties, i = read_properties(data, i, end, 1 << _P.SUBSCRIBE)
    subscriptions = []
    while i < end:
        topic_filter, i = read_str(data, i, end)
        if i >= end:
            raise malformed("SUBSCRIBE topic filter without subscription options")
        options = data[i]
        i += 1
        qos = options & 0x03
        if not v5:
            if options & 0xFC or qos == 3:  # 3.1.1 MQTT-3.8.3-4
                raise malformed(f"SUBSCRIBE requested QoS byte 0x{options:02X}")
            subscriptions.append(Subscription(topic_filter=topic_filter, qos=qos))
            continue
        if options & 0xC0:  # MQTT-3.8.3-5
            raise malformed("SUBSCRIBE subscription options reserved bits are set")
        retain_handling = (options >> 4) & 0x03
        if qos == 3 or retain_handling == 3:  # section 3.8.3.1
            raise protocol_error(f"SUBSCRIBE subscription options 0x{options:02X}")
        no_local = bool(options & 0x04)
        if no_local and topic_filter.startswith("$share/"):  # MQTT-3.8.3-4
            raise protocol_error("No Local on a shared subscription")
        subscriptions.append(
            Subscription(
                topic_filter=topic_filter,
                qos=qos,
                no_local=no_local,
                retain_as_published=bool(options & 0x08),
                retain_handling=retain_handling,
            )
        )
    if not subscriptions:  # MQTT-3.8.3-2 (3.1.1 MQTT-3.8.3-3)
        raise protocol_error("SUBSCRIBE without topic filters")
    return Subscribe(packet_id=packet_id, subscriptions=tuple(subscriptions), properties=properties)


def subscribe_v4(data: bytes, flags: int) -> Subscribe:
    return _subscribe(data, flags, False)


def subscribe_v5(data: bytes, flags: int) -> Subscribe:
    return _subscribe(data, flags, True)


def _unsubscribe(data: bytes, flags: int, v5: bool) -> Unsubscribe:
    _check_flags(flags, 0x02, "UNSUBSCRIBE")  # MQTT-3.10.1-1
    end = len(data)
    packet_id, i = _packet_id(data, 0, end)
    properties = NO_PROPERTIES
    if v5:
        properties, i = read_properties(data, i, end, 1 << _P.UNSUBSCRIBE)
    topic_filters = []
    while i < end:
        topic_filter, i = read_str(data, i, end)
        topic_filters.append(topic_filter)
    if not topic_filters:  # MQTT-3.10.3-2
        raise protocol_error("UNSUBSCRIBE without topic filters")
    return Unsubscribe(
        packet_id=packet_id, topic_filters=tuple(topic_filters), properties=properties
    )


def unsubscribe_v4(data: bytes, flags: int) -> Unsubscribe:
    return _unsubscribe(data, flags, False)


def unsubscribe_v5(data: bytes, flags: int) -> Unsubscribe:
    return _unsubscribe(data, flags, True)


def _read_codes(data: bytes, i: int, allowed: frozenset[int], packet: str) -> tuple[int, ...]:
    codes = tuple(data[i:])
    if not codes:  # one reason code per topic filter, and there is at least one filter
        raise protocol_error(f"{packet} without reason codes")
    for code in codes:
        if code not in allowed:  # 3.1.1 MQTT-3.9.3-2; 5.0 sections 3.9.3, 3.11.3
            raise protocol_error(f"{packet} reason code 0x{code:02X}")
    return codes


def suback_v4(data: bytes, flags: int) -> SubAck:
    _check_flags(flags, 0, "SUBACK")
    packet_id, i = _packet_id(data, 0, len(data))
    codes = _read_codes(data, i, SUBACK_V3_RETURN_CODES, "SUBACK")
    return SubAck(packet_id=packet_id, reason_codes=codes)


def suback_v5(data: bytes, flags: int) -> SubAck:
    _check_flags(flags, 0, "SUBACK")
    packet_id, i = _packet_id(data, 0, len(data))
    properties, i = read_properties(data, i, len(data), 1 << _P.SUBACK)
    codes = _read_codes(data, i, SUBACK_REASONS, "SUBACK")
    return SubAck(packet_id=packet_id, reason_codes=codes, properties=properties)


def unsuback_v4(data: bytes, flags: int) -> UnsubAck:
    _check_flags(flags, 0, "UNSUBACK")
    if len(data) != 2:
        raise malformed(f"UNSUBACK remaining length {len(data)}, expected 2")
    return UnsubAck(packet_id=_packet_id(data, 0, 2)[0])


def unsuback_v5(data: bytes, flags: int) -> UnsubAck:
    _check_flags(flags, 0, "UNSUBACK")
    packet_id, i = _packet_id(data, 0, len(data))
    properties, i = read_properties(data, i, len(data), 1 << _P.UNSUBACK)
    codes = _read_codes(data, i, UNSUBACK_REASONS, "UNSUBACK")
    return UnsubAck(packet_id=packet_id, reason_codes=codes, properties=properties)


# -- PINGREQ, PINGRESP, DISCONNECT, AUTH ---------------------------------------------------------


def pingreq(data: bytes, flags: int) -> PingReq:
    _check_flags(flags, 0, "PINGREQ")
    if data:
        raise malformed("PINGREQ with a body")
    return _PING_REQ


def pingresp(data: bytes, flags: int) -> PingResp:
    _check_flags(flags, 0, "PINGRESP")
    if data:
        raise malformed("PINGRESP with a body")
    return _PING_RESP


def disconnect_v4(data: bytes, flags: int) -> Disconnect:
    _check_flags(flags, 0, "DISCONNECT")  # 3.1.1 MQTT-3.14.1-1
    if data:
        raise malformed("DISCONNECT with a body")
    return _DISCONNECT


def _reason_and_properties(
    data: bytes, packet: str, reasons: frozenset[int]
) -> tuple[int, Properties]:
    """Reason code and properties of a 5.0 DISCONNECT or AUTH: a remaining length of 0 means
    success without properties, of 1 a reason code without properties (3.14.2.1, 3.15.2.1)."""
    end = len(data)
    code = data[0]
    if code not in reasons:
        raise protocol_error(f"{packet} reason code 0x{code:02X}")
    if end == 1:
        return code, NO_PROPERTIES
    properties, i = read_properties(data, 1, end, 1 << _P.__members__[packet])
    _no_trailing_bytes(i, end, packet)
    return code, properties


def disconnect_v5(data: bytes, flags: int) -> Disconnect:
    _check_flags(flags, 0, "DISCONNECT")  # MQTT-3.14.1-1
    if not data:
        return _DISCONNECT
    code, properties = _reason_and_properties(data, "DISCONNECT", DISCONNECT_REASONS)
    return Disconnect(reason_code=code, properties=properties)


def disconnect_v5_from_server(data: bytes, flags: int) -> Disconnect:
    disconnect = disconnect_v5(data, flags)
    if disconnect.properties.session_expiry_interval is not None:  # MQTT-3.14.2-2
        raise protocol_error("a server's DISCONNECT may not carry a Session Expiry Interval")
    return disconnect


def auth(data: bytes, flags: int) -> Auth:
    _check_flags(flags, 0, "AUTH")  # MQTT-3.15.1-1
    if not data:
        return _AUTH
    code, properties = _reason_and_properties(data, "AUTH", AUTH_REASONS)
    return Auth(reason_code=code, properties=properties)
