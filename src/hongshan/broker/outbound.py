"""What the broker writes: deliveries encoded as PUBLISH packets, and acknowledgements.

Pure encoding, kept apart from the connection that decides what to send. A QoS 0 PUBLISH whose
properties are the same for every receiver is encoded once per message and per protocol
generation, and the same bytes go to every subscriber of a fan-out.
"""

from __future__ import annotations

import msgspec

from hongshan.broker.message import Delivery, Message
from hongshan.mqtt.codec import encode_properties, encode_publish
from hongshan.mqtt.packets import MQTT_5, NO_PROPERTIES, PacketType

PUBACK_BYTE = 0x40
PUBREC_BYTE = 0x50


def success_ack(first_byte: int, packet_id: int) -> bytes:
    """A PUBACK or PUBREC with reason 0 and no properties: the same two-byte body at every level
    (MQTT 5.0 3.4.2.1 lets the reason code and properties be left out)."""
    return bytes((first_byte, 2, packet_id >> 8, packet_id & 0xFF))


def encode_delivery(delivery: Delivery, packet_id: int, dup: bool, level: int) -> bytes:
    """A PUBLISH carrying only the message's own forwarded properties."""
    message = delivery.message
    level5 = level == MQTT_5
    if delivery.qos == 0:
        cache = message.encoded
        if cache is None:
            cache = message.encoded = {}
        key = (level5, delivery.retain)
        data = cache.get(key)
        if data is None:
            data = cache[key] = encode_publish(
                message.topic.encode(),
                message.payload,
                0,
                delivery.retain,
                False,
                0,
                _base_properties(message) if level5 else b"",
                level,
            )
        return data
    return encode_publish(
        message.topic.encode(),
        message.payload,
        delivery.qos,
        delivery.retain,
        dup,
        packet_id,
        _base_properties(message) if level5 else b"",
        level,
    )


def encode_delivery_v5(
    delivery: Delivery, packet_id: int, dup: bool, topic: str, alias: int | None, expiry: int | None
) -> bytes:
    """A 5.0 PUBLISH with per-delivery properties: the remaining message expiry (MQTT-3.3.2-6),
    the subscription identifiers it matched (MQTT-3.3.4-3) and a topic alias, with ``topic``
    empty when the alias stands for it."""
    message = delivery.message
    properties = msgspec.structs.replace(
        message.properties,
        message_expiry_interval=expiry,
        subscription_identifiers=delivery.subscription_ids,
        topic_alias=alias,
    )
    return encode_publish(
        topic.encode(),
        message.payload,
        delivery.qos,
        delivery.retain,
        dup,
        packet_id,
        encode_properties(properties, PacketType.PUBLISH),
        MQTT_5,
    )


def _base_properties(message: Message) -> bytes:
    """The forwarded publication properties of a message, encoded once."""
    encoded = message.encoded_properties
    if encoded is None:
        encoded = message.encoded_properties = (
            b""
            if message.properties is NO_PROPERTIES
            else encode_properties(message.properties, PacketType.PUBLISH)
        )
    return encoded
