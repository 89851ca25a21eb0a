"""MQTT data representation (section 1.5): integers, Variable Byte Integers, UTF-8 strings and
binary data, read from and written to the wire, and the reason codes each packet may carry.

Readers take the packet body and an offset and return ``(value, next offset)``; they raise
``RemoteProtocolError`` (0x81 Malformed Packet) when a field runs past the end or is not
well-formed. Writers raise ``LocalProtocolError`` for values MQTT cannot carry.
"""

from __future__ import annotations

import struct
from typing import Final, NoReturn

from hongshan.errors import LocalProtocolError, RemoteProtocolError
from hongshan.mqtt.reason_codes import ReasonCode

MAX_VARINT: Final = 268_435_455  # four bytes of seven bits (section 1.5.5)

pack_u16 = struct.Struct(">H").pack
pack_u32 = struct.Struct(">I").pack
unpack_u32_from = struct.Struct(">I").unpack_from

_ONE_BYTE: Final = tuple(bytes((n,)) for n in range(128))


def malformed(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, ReasonCode.MALFORMED_PACKET)


def protocol_error(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, ReasonCode.PROTOCOL_ERROR)


def refuse(message: str) -> NoReturn:
    """Raise ``LocalProtocolError``: we were asked to encode something MQTT cannot carry."""
    raise LocalProtocolError(message)


# -- Variable Byte Integer (section 1.5.5) ----------------------------------------------------


def encode_varint(n: int) -> bytes:
    """The Variable Byte Integer for ``n`` (0..268,435,455) in the fewest bytes (MQTT-1.5.5-1)."""
    if 0 <= n < 128:
        return _ONE_BYTE[n]
    if 128 <= n < 16_384:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    if not 0 <= n <= MAX_VARINT:
        refuse(f"{n} does not fit a Variable Byte Integer")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes, i: int, end: int) -> tuple[int, int]:
    """Read a Variable Byte Integer from ``data[i:end]``. More than four bytes is malformed."""
    value = 0
    shift = 0
    while True:
        if i >= end:
            raise malformed("Variable Byte Integer runs past the end of the packet")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7
        if shift == 28:
            raise malformed("Variable Byte Integer longer than four bytes")


# -- Two Byte Integer, UTF-8 Encoded String, Binary Data (sections 1.5.2, 1.5.4, 1.5.6) --------


def read_u16(data: bytes, i: int, end: int) -> tuple[int, int]:
    if i + 2 > end:
        raise malformed("Two Byte Integer runs past the end of the packet")
    return (data[i] << 8) | data[i + 1], i + 2


def read_str(data: bytes, i: int, end: int) -> tuple[str, int]:
    """Read a UTF-8 Encoded String. Ill-formed UTF-8 (including encoded surrogates, which
    Python's strict decoder refuses) is malformed (MQTT-1.5.4-1), and so is U+0000
    (MQTT-1.5.4-2). A BOM is kept as the character U+FEFF (MQTT-1.5.4-3)."""
    if i + 2 > end:
        raise malformed("string length runs past the end of the packet")
    j = i + 2 + ((data[i] << 8) | data[i + 1])
    if j > end:
        raise malformed("string runs past the end of the packet")
    try:
        text = data[i + 2 : j].decode()
    except UnicodeDecodeError:
        raise malformed("string is not well-formed UTF-8") from None
    if "\x00" in text:
        raise malformed("string contains U+0000")
    return text, j


def read_bin(data: bytes, i: int, end: int) -> tuple[bytes, int]:
    if i + 2 > end:
        raise malformed("binary data length runs past the end of the packet")
    j = i + 2 + ((data[i] << 8) | data[i + 1])
    if j > end:
        raise malformed("binary data runs past the end of the packet")
    return data[i + 2 : j], j


def encode_str(text: str) -> bytes:
    """A UTF-8 Encoded String with its two-byte length prefix."""
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # lone surrogates: MQTT-1.5.4-1
        refuse(f"{text!r} is not encodable as UTF-8")
    if "\x00" in text:  # MQTT-1.5.4-2
        refuse(f"{text!r} contains U+0000")
    if len(raw) > 0xFFFF:
        refuse("string longer than 65,535 bytes")
    return pack_u16(len(raw)) + raw


def encode_bin(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        refuse("binary data longer than 65,535 bytes")
    return pack_u16(len(data)) + data


def check_packet_id(packet_id: int) -> None:
    """Packet Identifiers are 1..65535 (MQTT-2.2.1-3)."""
    if not 0 < packet_id <= 0xFFFF:
        refuse(f"packet identifier {packet_id} is not in 1..65535")


# -- Reason codes each packet may carry at level 5 (section 2.4, and each packet's section) -----

R = ReasonCode
CONNACK_REASONS: Final = frozenset(
    {R.SUCCESS, R.UNSPECIFIED_ERROR, R.MALFORMED_PACKET, R.PROTOCOL_ERROR}
    | {R.IMPLEMENTATION_SPECIFIC_ERROR, R.UNSUPPORTED_PROTOCOL_VERSION}
    | {R.CLIENT_IDENTIFIER_NOT_VALID, R.BAD_USER_NAME_OR_PASSWORD, R.NOT_AUTHORIZED}
    | {R.SERVER_UNAVAILABLE, R.SERVER_BUSY, R.BANNED, R.BAD_AUTHENTICATION_METHOD}
    | {R.TOPIC_NAME_INVALID, R.PACKET_TOO_LARGE, R.QUOTA_EXCEEDED, R.PAYLOAD_FORMAT_INVALID}
    | {R.RETAIN_NOT_SUPPORTED, R.QOS_NOT_SUPPORTED, R.USE_ANOTHER_SERVER, R.SERVER_MOVED}
    | {R.CONNECTION_RATE_EXCEEDED}
)
PUBACK_REASONS: Final = frozenset(  # PUBACK and PUBREC (sections 3.4.2.1, 3.5.2.1)
    {R.SUCCESS, R.NO_MATCHING_SUBSCRIBERS, R.UNSPECIFIED_ERROR, R.IMPLEMENTATION_SPECIFIC_ERROR}
    | {R.NOT_AUTHORIZED, R.TOPIC_NAME_INVALID, R.PACKET_IDENTIFIER_IN_USE, R.QUOTA_EXCEEDED}
    | {R.PAYLOAD_FORMAT_INVALID}
)
PUBREL_REASONS: Final = frozenset({R.SUCCESS, R.PACKET_IDENTIFIER_NOT_FOUND})  # and PUBCOMP
SUBACK_REASONS: Final = frozenset(
    {R.SUCCESS, R.GRANTED_QOS_1, R.GRANTED_QOS_2, R.UNSPECIFIED_ERROR}
    | {R.IMPLEMENTATION_SPECIFIC_ERROR, R.NOT_AUTHORIZED, R.TOPIC_FILTER_INVALID}
    | {R.PACKET_IDENTIFIER_IN_USE, R.QUOTA_EXCEEDED, R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED}
    | {R.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED}
)
SUBACK_V3_RETURN_CODES: Final = frozenset({0x00, 0x01, 0x02, 0x80})  # MQTT-3.9.3-2 (3.1.1)
UNSUBACK_REASONS: Final = frozenset(
    {R.SUCCESS, R.NO_SUBSCRIPTION_EXISTED, R.UNSPECIFIED_ERROR}
    | {R.IMPLEMENTATION_SPECIFIC_ERROR, R.NOT_AUTHORIZED, R.TOPIC_FILTER_INVALID}
    | {R.PACKET_IDENTIFIER_IN_USE}
)
DISCONNECT_REASONS: Final = frozenset(
    {R.SUCCESS, R.DISCONNECT_WITH_WILL_MESSAGE}
    | {code for code in ReasonCode if code >= R.UNSPECIFIED_ERROR}
    - {R.UNSUPPORTED_PROTOCOL_VERSION, R.CLIENT_IDENTIFIER_NOT_VALID}
    - {R.BAD_USER_NAME_OR_PASSWORD, R.SERVER_UNAVAILABLE, R.BANNED}
    - {R.BAD_AUTHENTICATION_METHOD, R.PACKET_IDENTIFIER_IN_USE, R.PACKET_IDENTIFIER_NOT_FOUND}
)
AUTH_REASONS: Final = frozenset({R.SUCCESS, R.CONTINUE_AUTHENTICATION, R.RE_AUTHENTICATE})
CONNACK_V3_RETURN_CODES: Final = frozenset(range(6))  # 3.1.1 section 3.2.2.3; 6..255 reserved
del R
