"""The sans-IO MQTT codec: bytes in, packets out (``Decoder``); packets in, bytes out
(``encode``). Modelled on h11: ``receive_data()`` buffers what the network gave,
``next_packet()`` returns one packet or ``NEED_DATA``. Nothing here touches a socket.

A peer's malformed or forbidden input raises ``RemoteProtocolError`` carrying the reason code
to answer with; asking to encode an invalid packet raises ``LocalProtocolError``.

The decoder's state is one table per side and protocol level, indexed by packet type: which
parser reads that packet, or which error it is to receive it. A server starts with
``AWAITING_CONNECT`` (MQTT-3.1.0-1) and moves to the table of the level its CONNECT names,
where a second CONNECT is an error (MQTT-3.1.0-2).
"""

from __future__ import annotations

import enum
from typing import Final

from hongshan.errors import RemoteProtocolError
from hongshan.mqtt.datatypes import (
    PUBACK_REASONS,
    PUBREL_REASONS,
    encode_varint,
    malformed,
    protocol_error,
)
from hongshan.mqtt.decoding import (
    Parser,
    ack_v4,
    ack_v5,
    auth,
    connack_v4,
    connack_v5,
    disconnect_v4,
    disconnect_v5,
    disconnect_v5_from_server,
    parse_connect,
    pingreq,
    pingresp,
    publish_v4,
    publish_v5,
    publish_v5_from_client,
    read_connect_protocol,
    suback_v4,
    suback_v5,
    subscribe_v4,
    subscribe_v5,
    unsuback_v4,
    unsuback_v5,
    unsubscribe_v4,
    unsubscribe_v5,
)
from hongshan.mqtt.encoding import encode, encode_publish
from hongshan.mqtt.packets import (
    PROTOCOL_LEVELS,
    Packet,
    PubAck,
    PubComp,
    PubRec,
    PubRel,
)
from hongshan.mqtt.properties import encode_properties
from hongshan.mqtt.reason_codes import ReasonCode

__all__ = [
    "MAX_PACKET_SIZE",
    "NEED_DATA",
    "Decoder",
    "NeedData",
    "encode",
    "encode_properties",
    "encode_publish",
    "encode_varint",
]

MAX_PACKET_SIZE: Final = 268_435_460  # 1 + 4 bytes of fixed header + 268,435,455 (2.1.4)


class NeedData(enum.Enum):
    """The type of ``NEED_DATA``: the decoder needs more bytes before the next packet."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"

    __str__ = __repr__


NEED_DATA: Final = NeedData.NEED_DATA


# -- The decoder's state: which parser for which packet type -----------------------------------


def _reserved(data: bytes, flags: int) -> Packet:
    raise malformed("reserved control packet type")  # section 2.1.2


def _not_from(sender: str, packet: str) -> Parser:
    def parse(data: bytes, flags: int) -> Packet:
        raise protocol_error(f"a {sender} may not send {packet}")

    return parse


def _first_not_connect(data: bytes, flags: int) -> Packet:
    raise protocol_error("the first packet must be CONNECT")  # MQTT-3.1.0-1


def _second_connect(data: bytes, flags: int) -> Packet:
    raise protocol_error("a second CONNECT")  # MQTT-3.1.0-2


_C = "client"  # the sender of what a server decodes
_S = "server"  # the sender of what a client decodes

# Indexed by packet type. ``None`` at index 1 of AWAITING_CONNECT: the Decoder reads a CONNECT
# itself, because it learns the protocol level from it.
AWAITING_CONNECT: Final[tuple[Parser | None, ...]] = (
    _first_not_connect,
    None,
    *(_first_not_connect,) * 14,
)
SERVER_V4: Final[tuple[Parser | None, ...]] = (
    _reserved,
    _second_connect,
    _not_from(_C, "CONNACK"),
    publish_v4,
    ack_v4(PubAck, 0),
    ack_v4(PubRec, 0),
    ack_v4(PubRel, 0x02),  # MQTT-3.6.1-1
    ack_v4(PubComp, 0),
    subscribe_v4,
    _not_from(_C, "SUBACK"),
    unsubscribe_v4,
    _not_from(_C, "UNSUBACK"),
    pingreq,
    _not_from(_C, "PINGRESP"),
    disconnect_v4,
    _reserved,  # AUTH is new in 5.0
)
SERVER_V5: Final[tuple[Parser | None, ...]] = (
    _reserved,
    _second_connect,
    _not_from(_C, "CONNACK"),
    publish_v5_from_client,
    ack_v5(PubAck, 0, PUBACK_REASONS),
    ack_v5(PubRec, 0, PUBACK_REASONS),
    ack_v5(PubRel, 0x02, PUBREL_REASONS),  # MQTT-3.6.1-1
    ack_v5(PubComp, 0, PUBREL_REASONS),
    subscribe_v5,
    _not_from(_C, "SUBACK"),
    unsubscribe_v5,
    _not_from(_C, "UNSUBACK"),
    pingreq,
    _not_from(_C, "PINGRESP"),
    disconnect_v5,
    auth,
)
CLIENT_V4: Final[tuple[Parser | None, ...]] = (
    _reserved,
    _not_from(_S, "CONNECT"),
    connack_v4,
    publish_v4,
    ack_v4(PubAck, 0),
    ack_v4(PubRec, 0),
    ack_v4(PubRel, 0x02),
    ack_v4(PubComp, 0),
    _not_from(_S, "SUBSCRIBE"),
    suback_v4,
    _not_from(_S, "UNSUBSCRIBE"),
    unsuback_v4,
    _not_from(_S, "PINGREQ"),
    pingresp,
    _not_from(_S, "DISCONNECT"),  # a 3.1.1 server closes the connection instead
    _reserved,
)
CLIENT_V5: Final[tuple[Parser | None, ...]] = (
    _reserved,
    _not_from(_S, "CONNECT"),
    connack_v5,
    publish_v5,
    ack_v5(PubAck, 0, PUBACK_REASONS),
    ack_v5(PubRec, 0, PUBACK_REASONS),
    ack_v5(PubRel, 0x02, PUBREL_REASONS),
    ack_v5(PubComp, 0, PUBREL_REASONS),
    _not_from(_S, "SUBSCRIBE"),
    suback_v5,
    _not_from(_S, "UNSUBSCRIBE"),
    unsuback_v5,
    _not_from(_S, "PINGREQ"),
    pingresp,
    disconnect_v5_from_server,
    auth,
)
_TABLES: Final = {
    (True, 3): SERVER_V4,
    (True, 4): SERVER_V4,
    (True, 5): SERVER_V5,
    (False, 3): CLIENT_V4,
    (False, 4): CLIENT_V4,
    (False, 5): CLIENT_V5,
}


class Decoder:
    """h11-style incremental decoder. ``receive_data()`` buffers; ``next_packet()`` returns one
    packet or ``NEED_DATA``.

    ``server=True`` decodes what clients send and expects a CONNECT first; it learns the
    protocol level from that CONNECT (``protocol_level`` is set as soon as the CONNECT's level
    is read, even if the rest of it is then found malformed, so the server can answer in the
    client's version). Given a ``protocol_level``, a server-side decoder starts as if that
    CONNECT had already been read. ``server=False`` decodes what servers send and needs the
    level the client connected with.

    ``max_packet_size`` (public, settable: the broker lowers it after CONNECT) bounds the whole
    packet, fixed header included; a larger one raises 0x95 Packet Too Large as soon as its
    fixed header is read, before its body is buffered. A claimed length never causes an
    allocation. After a ``RemoteProtocolError`` the decoder stays where it was: calling
    ``next_packet()`` again raises the same error.
    """

    __slots__ = ("_buf", "_level", "_parsers", "_pos", "_server", "max_packet_size")

    def __init__(
        self,
        *,
        server: bool,
        protocol_level: int | None = None,
        max_packet_size: int = MAX_PACKET_SIZE,
    ) -> None:
        self._server = server
        self.max_packet_size = max_packet_size
        # Whole packets usually arrive together, so the buffer is the received ``bytes``
        # themselves until a partial packet must be joined with more data; then it becomes a
        # bytearray. ``_pos`` is the read offset; consumed bytes are dropped on the next
        # receive_data(), so decoding a buffer of many packets never re-copies it.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._level: int | None = None
        self._parsers = AWAITING_CONNECT
        if protocol_level is not None:
            self.protocol_level = protocol_level
        elif not server:
            raise ValueError("a client-side Decoder needs the protocol_level it connects with")

    @property
    def protocol_level(self) -> int | None:
        """3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0); ``None`` on a server before CONNECT."""
        return self._level

    @protocol_level.setter
    def protocol_level(self, level: int | None) -> None:
        if level not in PROTOCOL_LEVELS:
            raise ValueError(f"protocol level {level} is not 3, 4 or 5")
        self._level = level
        self._parsers = _TABLES[self._server, level]

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as packets."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the network. A ``bytes`` object is kept as it is; anything
        mutable is copied, so the caller may reuse its buffer."""
        if not data:
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = data if type(data) is bytes else bytes(data)
        elif isinstance(buf, bytearray):
            if pos:
                del buf[:pos]
            buf += data
        else:
            joined = bytearray(memoryview(buf)[pos:])
            joined += data
            self._buf = joined
        self._pos = 0

    def next_packet(self) -> Packet | NeedData:
        buf = self._buf
        pos = self._pos
        size = len(buf)
        if size - pos < 2:
            return NEED_DATA
        # Remaining Length (section 2.1.4): a Variable Byte Integer of at most four bytes
        length = buf[pos + 1]
        start = pos + 2
        if length & 0x80:
            length &= 0x7F
            shift = 7
            while True:
                if start >= size:
                    return NEED_DATA
                byte = buf[start]
                start += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift == 28:
                    raise malformed("Remaining Length longer than four bytes")
        end = start + length
        if end - pos > self.max_packet_size:  # checked before any of the body is needed
            raise RemoteProtocolError(
                f"packet of {end - pos} bytes exceeds the maximum of {self.max_packet_size}",
                ReasonCode.PACKET_TOO_LARGE,
            )
        if end > size:
            return NEED_DATA
        first = buf[pos]
        body = buf[start:end] if type(buf) is bytes else bytes(buf[start:end])
        parser = self._parsers[first >> 4]
        if parser is None:
            packet: Packet = self._connect(body, first & 0x0F)
        else:
            packet = parser(body, first & 0x0F)
        if end == size:
            self._buf = b""
            self._pos = 0
        else:
            self._pos = end
        return packet

    def _connect(self, body: bytes, flags: int) -> Packet:
        name, level = read_connect_protocol(body)
        self._level = level
        connect = parse_connect(body, flags, name, level)
        self._parsers = _TABLES[True, level]
        return connect
