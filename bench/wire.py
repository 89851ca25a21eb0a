"""Bytes on the wire: packets pre-encoded with ``hongshan.mqtt.codec``, and the fixed-header walk.

Everything the generator sends is encoded before the clock starts, by the project's own codec;
on the hot path it only joins pre-built pieces. What it receives is not decoded: it walks fixed
headers (type byte, remaining-length varint, MQTT 3.1.1 section 2.2) and looks inside a packet
only where it must (packet id and timestamp of a QoS 1 delivery). The codec's ``Decoder`` is used
where speed does not matter: to read CONNACK and SUBACK during the handshake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from hongshan.mqtt.codec import NEED_DATA, Decoder, encode
from hongshan.mqtt.packets import (
    MQTT_3_1_1,
    Connect,
    Disconnect,
    Packet,
    PubAck,
    Publish,
    Subscribe,
    Subscription,
)

LEVEL: Final = MQTT_3_1_1
PUBLISH: Final = 3
PUBACK: Final = 4
CONNACK: Final = 2
SUBACK: Final = 9
TIMESTAMP_BYTES: Final = 8


def connect(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    keep_alive: int = 60,
) -> bytes:
    return encode(
        Connect(
            client_id=client_id,
            username=username,
            password=None if password is None else password.encode(),
            keep_alive=keep_alive,
        ),
        LEVEL,
    )


def subscribe(topic_filters: Sequence[str], qos: int, packet_id: int = 1) -> bytes:
    subscriptions = tuple(Subscription(topic_filter=f, qos=qos) for f in topic_filters)
    return encode(Subscribe(packet_id=packet_id, subscriptions=subscriptions), LEVEL)


def publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0) -> bytes:
    return encode(Publish(topic=topic, payload=payload, qos=qos, packet_id=packet_id), LEVEL)


def disconnect() -> bytes:
    return encode(Disconnect(), LEVEL)


def puback_header() -> bytes:
    """The bytes of a PUBACK before its packet id, so an ack is ``header + id_bytes``."""
    packet = encode(PubAck(packet_id=0x0102), LEVEL)
    if not packet.endswith(b"\x01\x02"):
        raise AssertionError(f"unexpected 3.1.1 PUBACK encoding {packet!r}")
    return packet[:-2]


class TimedPublish:
    """A QoS 1 PUBLISH whose packet id and first eight payload bytes (a send timestamp in
    nanoseconds, big-endian) change per message; the rest is encoded once by the codec."""

    def __init__(self, topic: str, payload_size: int) -> None:
        if payload_size < TIMESTAMP_BYTES:
            raise ValueError(f"payload must hold an {TIMESTAMP_BYTES}-byte timestamp")
        payload = bytes(payload_size)
        template = publish(topic, payload, qos=1, packet_id=0x0102)
        id_at = len(template) - payload_size - 2  # 3.1.1: packet id, then the payload
        if template[id_at : id_at + 2] != b"\x01\x02":
            raise AssertionError("unexpected 3.1.1 PUBLISH layout")
        self.prefix = template[:id_at]
        self.suffix = template[id_at + 2 + TIMESTAMP_BYTES :]
        self.size = len(template)


#: Packet ids 0..65535 as two big-endian bytes, built once.
PACKET_IDS: Final = tuple(i.to_bytes(2, "big") for i in range(65536))


def long_length(data: bytes, at: int) -> tuple[int, int]:
    """Decode a remaining length of two or more bytes starting at ``at``; returns the length and
    the offset just past it, or ``(0, -1)`` when the varint is not complete yet."""
    length = 0
    shift = 0
    n = len(data)
    while at < n:
        byte = data[at]
        length |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return length, at
        shift += 7
    return 0, -1


def walk(data: bytes, kind: int) -> tuple[int, int]:
    """Count the complete packets of type ``kind`` at the start of ``data``, stepping over others.

    Returns the count and the offset where the first incomplete packet starts (``len(data)`` if
    none)."""
    n = len(data)
    pos = 0
    count = 0
    while pos + 2 <= n:
        end = pos + 2 + data[pos + 1]
        if data[pos + 1] >= 0x80:  # rare here: our packets are shorter than 128 bytes
            length, body = long_length(data, pos + 1)
            if body < 0:
                break
            end = body + length
        if end > n:
            break
        if data[pos] >> 4 == kind:
            count += 1
        pos = end
    return count, pos


def packet_ends(data: bytes) -> list[int]:
    """Offsets where each complete packet at the start of ``data`` ends (for the handshake)."""
    ends = []
    pos = 0
    n = len(data)
    while pos + 2 <= n:
        length, body = long_length(data, pos + 1)
        if body < 0 or body + length > n:
            break
        pos = body + length
        ends.append(pos)
    return ends


def decode_one(packet: bytes) -> Packet:
    """Decode one whole packet that a server sent, with the project's codec."""
    decoder = Decoder(server=False, protocol_level=LEVEL)
    decoder.receive_data(packet)
    decoded = decoder.next_packet()
    if decoded is NEED_DATA:
        raise AssertionError(f"incomplete packet {packet!r}")
    return decoded
