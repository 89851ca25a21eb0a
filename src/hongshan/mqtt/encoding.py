"""Packets to bytes: ``encode(packet, protocol_level)`` writes the canonical bytes of a packet for
a protocol level, and ``encode_publish`` is the lean path the broker's fan-out uses.

Fields that exist only in MQTT 5.0 take their 3.1.1 meaning below level 5: properties are left
out, reason codes of acknowledgements are dropped, a SUBACK failure is 0x80 and a 5.0 CONNACK
reason code becomes the closest 3.1.1 return code. What no level can carry raises
``LocalProtocolError``: whatever ``encode`` accepts, the decoder reads back unchanged.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from hongshan.mqtt.datatypes import (
    AUTH_REASONS,
    CONNACK_REASONS,
    CONNACK_V3_RETURN_CODES,
    DISCONNECT_REASONS,
    PUBACK_REASONS,
    PUBREL_REASONS,
    SUBACK_REASONS,
    UNSUBACK_REASONS,
    check_packet_id,
    encode_bin,
    encode_str,
    encode_varint,
    pack_u16,
    refuse,
)
from hongshan.mqtt.packets import (
    MQTT_3_1,
    MQTT_5,
    PROTOCOL_LEVELS,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from hongshan.mqtt.properties import WILL, properties_body, property_block
from hongshan.mqtt.reason_codes import connack_code_for_v3

_P = PacketType
_pack_small_header = struct.Struct(">BBH").pack  # first byte, Remaining Length < 128, topic length


def encode(packet: Packet, protocol_level: int) -> bytes:
    """The bytes of ``packet`` at ``protocol_level`` (3, 4 or 5). Raises
    ``LocalProtocolError`` for a packet that is not valid MQTT at that level."""
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        refuse(f"{packet!r} is not an MQTT packet")
    if protocol_level not in PROTOCOL_LEVELS:
        refuse(f"protocol level {protocol_level} is not 3, 4 or 5")
    return encoder(packet, protocol_level)


def encode_publish(
    topic: bytes,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    properties: bytes,
    protocol_level: int,
) -> bytes:
    """A PUBLISH from parts already checked: ``topic`` is a valid Topic Name, UTF-8 encoded;
    ``properties`` is an encoded property block WITHOUT its length prefix (``b""`` for none),
    ignored below level 5. ``packet_id`` is ignored at QoS 0. Only what is cheap is checked
    here (QoS, packet identifier, DUP at QoS 0, lengths); ``encode(Publish(...))`` checks all."""
    topic_length = len(topic)
    if topic_length > 0xFFFF:
        refuse("topic name longer than 65,535 bytes")
    first = 0x30 | (qos << 1) | retain
    if qos:
        if not (0 < qos < 3 and 0 < packet_id < 0x10000):  # MQTT-3.3.1-4, MQTT-2.2.1-3
            refuse(f"PUBLISH with QoS {qos} and packet identifier {packet_id}")
        if dup:
            first |= 0x08
        after_topic = pack_u16(packet_id)
    elif dup:  # MQTT-3.3.1-2
        refuse("PUBLISH with DUP set at QoS 0")
    else:
        after_topic = b""
    if protocol_level == MQTT_5:
        after_topic += encode_varint(len(properties)) + properties if properties else b"\x00"
    remaining = 2 + topic_length + len(after_topic) + len(payload)
    if remaining < 0x80:  # the common small message: one struct call for three fields
        return b"".join(
            (_pack_small_header(first, remaining, topic_length), topic, after_topic, payload)
        )
    return b"".join(
        (
            bytes((first,)),
            encode_varint(remaining),
            pack_u16(topic_length),
            topic,
            after_topic,
            payload,
        )
    )


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def _check_topic_name(topic: str) -> None:
    if "+" in topic or "#" in topic:  # MQTT-3.3.2-2
        refuse(f"topic name {topic!r} contains a wildcard")


def _connect(packet: Connect, level: int) -> bytes:
    if packet.protocol_level != level:
        refuse(f"a level {packet.protocol_level} CONNECT encoded at level {level}")
    if not 0 <= packet.keep_alive <= 0xFFFF:
        refuse(f"keep alive {packet.keep_alive} is not in 0..65535")
    flags = 0x02 if packet.clean_start else 0
    payload = [encode_str(packet.client_id)]
    will = packet.will
    if will is not None:
        if not 0 <= will.qos <= 2:  # MQTT-3.1.2-12
            refuse(f"Will QoS {will.qos}")
        if not will.topic:
            refuse("empty Will Topic")
        _check_topic_name(will.topic)
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        if level == MQTT_5:
            payload.append(property_block(will.properties, WILL))
        payload.append(encode_str(will.topic))
        payload.append(encode_bin(will.payload))
    if packet.username is not None:
        flags |= 0x80
        payload.append(encode_str(packet.username))
    if packet.password is not None:
        if packet.username is None and level != MQTT_5:  # 3.1.1 MQTT-3.1.2-22
            refuse("a password without a user name needs MQTT 5.0")
        flags |= 0x40
        payload.append(encode_bin(packet.password))
    # The protocol name follows the level (3.1.2.1); ``packet.protocol_name`` is not consulted.
    name = b"\x00\x06MQIsdp" if level == MQTT_3_1 else b"\x00\x04MQTT"
    head = name + bytes((level, flags)) + pack_u16(packet.keep_alive)
    if level == MQTT_5:
        props = packet.properties
        if props.authentication_data is not None and props.authentication_method is None:
            refuse("Authentication Data without Authentication Method")  # 3.1.2.11.10
        head += property_block(props, 1 << _P.CONNECT)
    return _packet(0x10, head + b"".join(payload))


def _connack(packet: ConnAck, level: int) -> bytes:
    code = packet.reason_code
    if level == MQTT_5:
        if code not in CONNACK_REASONS:
            refuse(f"CONNACK reason code 0x{code:02X}")
    elif code not in CONNACK_V3_RETURN_CODES:
        if code < 0x80 or code > 0xFF:
            refuse(f"CONNACK return code 0x{code:02X}")
        code = connack_code_for_v3(code)
    if packet.session_present and code:  # MQTT-3.2.2-6 (3.1.1 MQTT-3.2.2-4)
        refuse("a refusing CONNACK may not say a session is present")
    body = bytes((1 if packet.session_present else 0, code))
    if level == MQTT_5:
        body += property_block(packet.properties, 1 << _P.CONNACK)
    return _packet(0x20, body)


def _publish(packet: Publish, level: int) -> bytes:
    topic = packet.topic
    properties = b""
    if level == MQTT_5:
        properties = properties_body(packet.properties, 1 << _P.PUBLISH)
        if not topic and packet.properties.topic_alias is None:  # section 3.3.2.1
            refuse("PUBLISH with an empty topic name and no Topic Alias")
    elif not topic:  # MQTT-4.7.3-1
        refuse("PUBLISH with an empty topic name")
    _check_topic_name(topic)
    raw_topic = encode_str(topic)[2:]
    return encode_publish(
        raw_topic,
        packet.payload,
        packet.qos,
        packet.retain,
        packet.dup,
        packet.packet_id,
        properties,
        level,
    )


def _ack(first: int, reasons: frozenset[int]) -> Callable[[Any, int], bytes]:
    bit = 1 << (first >> 4)

    def encode_ack(packet: PubAck | PubRec | PubRel | PubComp, level: int) -> bytes:
        check_packet_id(packet.packet_id)
        short = bytes((first, 2)) + pack_u16(packet.packet_id)
        if level != MQTT_5:
            return short
        code = packet.reason_code
        if code not in reasons:
            refuse(f"{type(packet).__name__.upper()} reason code 0x{code:02X}")
        properties = properties_body(packet.properties, bit)
        if properties:
            block = encode_varint(len(properties)) + properties
            return _packet(first, pack_u16(packet.packet_id) + bytes((code,)) + block)
        if code:  # section 3.4.2.2.1: the property length may be left out
            return bytes((first, 3)) + pack_u16(packet.packet_id) + bytes((code,))
        return short  # section 3.4.2.1: success without properties may leave out the code too

    return encode_ack


def _subscribe(packet: Subscribe, level: int) -> bytes:
    check_packet_id(packet.packet_id)
    if not packet.subscriptions:  # MQTT-3.8.3-2
        refuse("SUBSCRIBE without topic filters")
    parts = [pack_u16(packet.packet_id)]
    if level == MQTT_5:
        parts.append(property_block(packet.properties, 1 << _P.SUBSCRIBE))
    for subscription in packet.subscriptions:
        options = subscription.qos
        if not 0 <= options <= 2:
            refuse(f"SUBSCRIBE with QoS {options}")
        if level == MQTT_5:
            if not 0 <= subscription.retain_handling <= 2:
                refuse(f"Retain Handling {subscription.retain_handling}")
            if subscription.no_local and subscription.topic_filter.startswith("$share/"):
                refuse("No Local on a shared subscription")  # MQTT-3.8.3-4
            options |= subscription.retain_handling << 4
            options |= (0x04 if subscription.no_local else 0) | (
                0x08 if subscription.retain_as_published else 0
            )
        parts.append(encode_str(subscription.topic_filter))
        parts.append(bytes((options,)))
    return _packet(0x82, b"".join(parts))


def _suback(packet: SubAck, level: int) -> bytes:
    check_packet_id(packet.packet_id)
    if not packet.reason_codes:
        refuse("SUBACK without reason codes")
    if level == MQTT_5:
        for code in packet.reason_codes:
            if code not in SUBACK_REASONS:
                refuse(f"SUBACK reason code 0x{code:02X}")
        codes = bytes(packet.reason_codes)
        block = property_block(packet.properties, 1 << _P.SUBACK)
        return _packet(0x90, pack_u16(packet.packet_id) + block + codes)
    v3_codes = bytearray()
    for code in packet.reason_codes:
        if 0x80 <= code <= 0xFF:  # MQTT-3.9.3-2: 0x80 is the one 3.1.1 failure
            code = 0x80
        elif not 0 <= code <= 2:
            refuse(f"SUBACK return code 0x{code:02X}")
        v3_codes.append(code)
    return _packet(0x90, pack_u16(packet.packet_id) + v3_codes)


def _unsubscribe(packet: Unsubscribe, level: int) -> bytes:
    check_packet_id(packet.packet_id)
    if not packet.topic_filters:  # MQTT-3.10.3-2
        refuse("UNSUBSCRIBE without topic filters")
    parts = [pack_u16(packet.packet_id)]
    if level == MQTT_5:
        parts.append(property_block(packet.properties, 1 << _P.UNSUBSCRIBE))
    parts.extend(encode_str(topic_filter) for topic_filter in packet.topic_filters)
    return _packet(0xA2, b"".join(parts))


def _unsuback(packet: UnsubAck, level: int) -> bytes:
    check_packet_id(packet.packet_id)
    if level != MQTT_5:  # 3.1.1 section 3.11.3: no payload
        return b"\xb0\x02" + pack_u16(packet.packet_id)
    if not packet.reason_codes:
        refuse("UNSUBACK without reason codes")
    for code in packet.reason_codes:
        if code not in UNSUBACK_REASONS:
            refuse(f"UNSUBACK reason code 0x{code:02X}")
    block = property_block(packet.properties, 1 << _P.UNSUBACK)
    return _packet(0xB0, pack_u16(packet.packet_id) + block + bytes(packet.reason_codes))


def _ping_req(packet: PingReq, level: int) -> bytes:
    return b"\xc0\x00"


def _ping_resp(packet: PingResp, level: int) -> bytes:
    return b"\xd0\x00"


def _disconnect(packet: Disconnect, level: int) -> bytes:
    if level != MQTT_5:
        return b"\xe0\x00"
    code = packet.reason_code
    if code not in DISCONNECT_REASONS:
        refuse(f"DISCONNECT reason code 0x{code:02X}")
    properties = properties_body(packet.properties, 1 << _P.DISCONNECT)
    if properties:
        return _packet(0xE0, bytes((code,)) + encode_varint(len(properties)) + properties)
    if code:  # section 3.14.2.2.1: the property length may be left out
        return bytes((0xE0, 1, code))
    return b"\xe0\x00"  # section 3.14.2.1: normal disconnection may leave out the code too


def _auth(packet: Auth, level: int) -> bytes:
    if level != MQTT_5:
        refuse("AUTH needs MQTT 5.0")
    code = packet.reason_code
    if code not in AUTH_REASONS:
        refuse(f"AUTH reason code 0x{code:02X}")
    properties = properties_body(packet.properties, 1 << _P.AUTH)
    if not code and not properties:  # section 3.15.2.1
        return b"\xf0\x00"
    return _packet(0xF0, bytes((code,)) + encode_varint(len(properties)) + properties)


_ENCODERS: Final[dict[type, Callable[[Any, int], bytes]]] = {
    Connect: _connect,
    ConnAck: _connack,
    Publish: _publish,
    PubAck: _ack(0x40, PUBACK_REASONS),
    PubRec: _ack(0x50, PUBACK_REASONS),
    PubRel: _ack(0x62, PUBREL_REASONS),  # MQTT-3.6.1-1
    PubComp: _ack(0x70, PUBREL_REASONS),
    Subscribe: _subscribe,
    SubAck: _suback,
    Unsubscribe: _unsubscribe,
    UnsubAck: _unsuback,
    PingReq: _ping_req,
    PingResp: _ping_resp,
    Disconnect: _disconnect,
    Auth: _auth,
}
