"""MQTT 5.0 properties (section 2.2.2): one table says, for every property, its identifier, its
field of ``Properties``, its data type, the packets that may carry it (table 2-4) and the values
it may take; decoding and encoding both read that table.

Packets are named by a bit mask: ``1 << PacketType`` for a packet, ``1 << 0`` (``WILL``) for
the Will Properties of a CONNECT, since packet type 0 is reserved and never carries properties.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from hongshan.errors import RemoteProtocolError
from hongshan.mqtt.datatypes import (
    MAX_VARINT,
    encode_bin,
    encode_str,
    encode_varint,
    malformed,
    pack_u16,
    pack_u32,
    protocol_error,
    read_bin,
    read_str,
    read_u16,
    read_varint,
    refuse,
    unpack_u32_from,
)
from hongshan.mqtt.packets import NO_PROPERTIES, PacketType, Properties
from hongshan.mqtt.reason_codes import ReasonCode

WILL: Final = 1 << 0

# Data types (section 1.5)
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
# Value rules: any value of the type, 0 or 1 only, anything but 0, a Topic Name
_ANY, _BOOL, _NONZERO, _TOPIC_NAME = range(4)

_P = PacketType
_PUB_WILL = (_P.PUBLISH, 0)
_ACKS = (_P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP)
_UNSUB_ETC = (_P.UNSUBSCRIBE, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH)
# (identifier, field, data type, value rule, packets that may carry it): table 2-4
_TABLE: Final[tuple[tuple[int, str, int, int, tuple[int, ...]], ...]] = (
    (0x01, "payload_format_indicator", _BYTE, _BOOL, _PUB_WILL),
    (0x02, "message_expiry_interval", _U32, _ANY, _PUB_WILL),
    (0x03, "content_type", _STR, _ANY, _PUB_WILL),
    (0x08, "response_topic", _STR, _TOPIC_NAME, _PUB_WILL),  # MQTT-3.3.2-14
    (0x09, "correlation_data", _BIN, _ANY, _PUB_WILL),
    (0x0B, "subscription_identifiers", _VARINT, _NONZERO, (_P.PUBLISH, _P.SUBSCRIBE)),
    (0x11, "session_expiry_interval", _U32, _ANY, (_P.CONNECT, _P.CONNACK, _P.DISCONNECT)),
    (0x12, "assigned_client_identifier", _STR, _ANY, (_P.CONNACK,)),
    (0x13, "server_keep_alive", _U16, _ANY, (_P.CONNACK,)),
    (0x15, "authentication_method", _STR, _ANY, (_P.CONNECT, _P.CONNACK, _P.AUTH)),
    (0x16, "authentication_data", _BIN, _ANY, (_P.CONNECT, _P.CONNACK, _P.AUTH)),
    (0x17, "request_problem_information", _BYTE, _BOOL, (_P.CONNECT,)),
    (0x18, "will_delay_interval", _U32, _ANY, (0,)),
    (0x19, "request_response_information", _BYTE, _BOOL, (_P.CONNECT,)),
    (0x1A, "response_information", _STR, _ANY, (_P.CONNACK,)),
    (0x1C, "server_reference", _STR, _ANY, (_P.CONNACK, _P.DISCONNECT)),
    (
        0x1F,
        "reason_string",
        _STR,
        _ANY,
        (_P.CONNACK, *_ACKS, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH),
    ),
    (0x21, "receive_maximum", _U16, _NONZERO, (_P.CONNECT, _P.CONNACK)),
    (0x22, "topic_alias_maximum", _U16, _ANY, (_P.CONNECT, _P.CONNACK)),
    (0x23, "topic_alias", _U16, _NONZERO, (_P.PUBLISH,)),
    (0x24, "maximum_qos", _BYTE, _BOOL, (_P.CONNACK,)),
    (0x25, "retain_available", _BYTE, _BOOL, (_P.CONNACK,)),
    (
        0x26,
        "user_properties",
        _PAIR,
        _ANY,
        (_P.CONNECT, _P.CONNACK, *_PUB_WILL, *_ACKS, _P.SUBSCRIBE, _P.SUBACK, *_UNSUB_ETC),
    ),
    (0x27, "maximum_packet_size", _U32, _NONZERO, (_P.CONNECT, _P.CONNACK)),
    (0x28, "wildcard_subscription_available", _BYTE, _BOOL, (_P.CONNACK,)),
    (0x29, "subscription_identifier_available", _BYTE, _BOOL, (_P.CONNACK,)),
    (0x2A, "shared_subscription_available", _BYTE, _BOOL, (_P.CONNACK,)),
)
_PUBLISH_BIT: Final = 1 << _P.PUBLISH


def _mask(packets: tuple[int, ...]) -> int:
    mask = 0
    for packet in packets:
        mask |= 1 << packet
    return mask


# Decoding looks properties up by identifier; identifiers are all below 128, so the one-byte
# Variable Byte Integer form is the only one a well-formed packet uses (MQTT-1.5.5-1).
_BY_ID: Final[list[tuple[str, int, int, int] | None]] = [None] * 128
for _pid, _field, _kind, _rule, _packets in _TABLE:
    _BY_ID[_pid] = (_field, _kind, _rule, _mask(_packets))

# Encoding walks the fields of Properties in their declared order.
_BY_FIELD = {field: (pid, kind, rule, _mask(packets)) for pid, field, kind, rule, packets in _TABLE}
_ENCODE_ORDER: Final = tuple((field, *_BY_FIELD[field]) for field in Properties.__struct_fields__)
assert len(_ENCODE_ORDER) == len(_TABLE)
del _pid, _field, _kind, _rule, _packets, _BY_FIELD

_TYPE_MAX: Final = {_BYTE: 0xFF, _U16: 0xFFFF, _U32: 0xFFFF_FFFF, _VARINT: MAX_VARINT}


def _context(bit: int) -> str:
    return "Will Properties" if bit == WILL else PacketType(bit.bit_length() - 1).name


def _acceptable(rule: int, value: Any) -> bool:
    if rule == _BOOL:
        return bool(value in (0, 1))
    if rule == _NONZERO:
        return bool(value != 0)
    if rule == _TOPIC_NAME:
        return bool(value != "" and "+" not in value and "#" not in value)
    return True


def _bad_value(field: str, value: Any) -> RemoteProtocolError:
    if field == "topic_alias":  # section 3.3.2.3.4: a Topic Alias of 0 is not permitted
        return RemoteProtocolError("Topic Alias 0", ReasonCode.TOPIC_ALIAS_INVALID)
    return protocol_error(f"{field} may not be {value!r}")


def read_properties(data: bytes, i: int, end: int, bit: int) -> tuple[Properties, int]:
    """Read a property block (its length, then the properties) from ``data[i:end]`` for the
    packet named by ``bit``. Returns the properties and the offset after the block."""
    length, i = read_varint(data, i, end)
    if length == 0:
        return NO_PROPERTIES, i
    stop = i + length
    if stop > end:
        raise malformed("property length runs past the end of the packet")
    values: dict[str, Any] = {}
    user: list[tuple[str, str]] = []
    subscription_ids: list[int] = []
    while i < stop:
        pid = data[i]
        spec = _BY_ID[pid] if pid < 128 else None
        if spec is None:
            raise malformed(f"unknown property identifier 0x{pid:02X}")
        field, kind, rule, mask = spec
        if not mask & bit:  # section 2.2.2.2
            raise protocol_error(f"{field} is not allowed in {_context(bit)}")
        i += 1
        value: Any
        if kind == _STR:
            value, i = read_str(data, i, stop)
        elif kind == _U32:
            if i + 4 > stop:
                raise malformed(f"{field} runs past the property block")
            value = unpack_u32_from(data, i)[0]
            i += 4
        elif kind == _PAIR:
            name, i = read_str(data, i, stop)
            text, i = read_str(data, i, stop)
            user.append((name, text))  # may appear many times, order kept (3.3.2.3.7)
            continue
        elif kind == _BYTE:
            if i >= stop:
                raise malformed(f"{field} runs past the property block")
            value = data[i]
            i += 1
        elif kind == _U16:
            value, i = read_u16(data, i, stop)
        elif kind == _BIN:
            value, i = read_bin(data, i, stop)
        else:  # _VARINT: only the Subscription Identifier
            value, i = read_varint(data, i, stop)
            if value == 0:  # section 3.8.2.1.2: a Subscription Identifier of 0
                raise protocol_error("Subscription Identifier 0")
            if subscription_ids and bit != _PUBLISH_BIT:  # one per SUBSCRIBE (3.8.2.1.2)
                raise protocol_error("Subscription Identifier given twice")
            subscription_ids.append(value)
            continue
        if rule and not _acceptable(rule, value):
            raise _bad_value(field, value)
        if field in values:  # section 2.2.2.2: only user properties may repeat
            raise protocol_error(f"{field} given twice")
        values[field] = value
    if user:
        values["user_properties"] = tuple(user)
    if subscription_ids:
        values["subscription_identifiers"] = tuple(subscription_ids)
    return Properties(**values), i


def encode_properties(props: Properties, packet_type: PacketType) -> bytes:
    """The property block of ``packet_type`` for ``props`` WITHOUT its length prefix.
    Raises ``LocalProtocolError`` for a property the packet may not carry or a bad value."""
    return properties_body(props, 1 << packet_type)


def property_block(props: Properties, bit: int) -> bytes:
    """The property block with its length prefix, for the packet named by ``bit``."""
    if props is NO_PROPERTIES:
        return b"\x00"
    body = properties_body(props, bit)
    return encode_varint(len(body)) + body


def properties_body(props: Properties, bit: int) -> bytes:
    if props is NO_PROPERTIES:
        return b""
    out = bytearray()
    for (field, pid, kind, rule, mask), value in zip(
        _ENCODE_ORDER, msgspec.structs.astuple(props), strict=True
    ):
        if value is None or value == ():
            continue
        if not mask & bit:
            refuse(f"{field} is not allowed in {_context(bit)}")
        if kind == _STR:
            if rule and not _acceptable(rule, value):
                refuse(f"{field} may not be {value!r}")
            out.append(pid)
            out += encode_str(value)
        elif kind == _BIN:
            out.append(pid)
            out += encode_bin(value)
        elif kind == _PAIR:
            for name, text in value:
                out.append(pid)
                out += encode_str(name)
                out += encode_str(text)
        elif kind == _VARINT:
            if len(value) > 1 and bit != _PUBLISH_BIT:
                refuse("only a PUBLISH may carry several Subscription Identifiers")
            for number in value:
                if not 0 < number <= MAX_VARINT:
                    refuse(f"Subscription Identifier {number} is not in 1..268,435,455")
                out.append(pid)
                out += encode_varint(number)
        else:
            if not 0 <= value <= _TYPE_MAX[kind] or not _acceptable(rule, value):
                refuse(f"{field} may not be {value}")
            out.append(pid)
            if kind == _BYTE:
                out.append(value)
            elif kind == _U16:
                out += pack_u16(value)
            else:
                out += pack_u32(value)
    return bytes(out)
