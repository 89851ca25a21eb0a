"""An application message as the broker routes it, one delivery of it to one session, and a
server-side subscriber's refusal of it."""

from __future__ import annotations

import time

import msgspec

from hongshan.mqtt.packets import NO_PROPERTIES, Properties


class Message:
    """One accepted PUBLISH, shared by every session it is delivered to.

    ``properties`` are the publication properties forwarded to subscribers (MQTT-3.3.2-...:
    payload format, content type, response topic, correlation data, user properties); the topic
    alias and subscription identifiers are per-connection and never stored here.
    ``expires_at`` is wall-clock seconds so that it survives a restart. ``packet_id`` and
    ``dup`` are the PUBLISH's as its client sent it (a tap tells a resend by them: DUP is set
    on every attempt but the first, MQTT-3.3.1-1); they are not sent on, nor kept."""

    __slots__ = (
        "dup",
        "encoded",
        "encoded_properties",
        "expires_at",
        "packet_id",
        "payload",
        "properties",
        "qos",
        "retain",
        "sender",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
        expires_at: float | None = None,
        sender: str = "",
        packet_id: int = 0,
        dup: bool = False,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expires_at = expires_at
        self.sender = sender
        self.packet_id = packet_id
        self.dup = dup
        # (protocol level >= 5, retain flag) -> encoded QoS 0 PUBLISH, shared by a fan-out
        self.encoded: dict[tuple[bool, bool], bytes] | None = None
        self.encoded_properties: bytes | None = None

    def remaining_expiry(self, now: float | None = None) -> int | None:
        """Seconds left before expiry (at least 1), 0 if expired, None if it never expires."""
        if self.expires_at is None:
            return None
        left = self.expires_at - (time.time() if now is None else now)
        if left <= 0:
            return 0
        return max(1, int(left + 0.999))


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """A message on its way to one session: the granted QoS, the RETAIN flag it is sent with
    and the identifiers of the subscriptions it matched (MQTT-3.3.4-3)."""

    message: Message
    qos: int
    retain: bool = False
    subscription_ids: tuple[int, ...] = ()


class SubscriptionOptions(msgspec.Struct, frozen=True, gc=False):
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    subscription_id: int | None = None

    @property
    def subscription_ids(self) -> tuple[int, ...]:
        """What a delivery through this subscription carries (MQTT-3.3.4-3)."""
        return () if self.subscription_id is None else (self.subscription_id,)


# a subscription the platform makes for a client: QoS 1, and never the client's own messages back
SERVER_SIDE_SUBSCRIPTION = SubscriptionOptions(qos=1, no_local=True)


class Refused(msgspec.Struct, frozen=True, gc=False):
    """What a tap answers for a message it will not accept (a dialect's payload that is not of
    its format): nobody receives it, it is not retained, nothing of it is kept, and a QoS 1 or 2
    publisher is told in its PUBACK or PUBREC with ``reason_code`` (MQTT 5.0, 3.4.2.1: a code
    of 0x80 or more says the message was not accepted). A 3.1.1 publisher, whose
    acknowledgements carry no reason code, gets its plain one."""

    reason_code: int
