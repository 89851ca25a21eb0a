"""What the broker persists, behind one small interface: retained messages and persistent
sessions (subscriptions, queued and in-flight QoS 1/2 messages, QoS 2 packet ids received).

Writes are fire-and-forget calls in the order the broker makes them; ``committed()`` returns an
awaitable that completes once everything issued so far is durable. The broker acknowledges a
QoS 1/2 PUBLISH that was queued for a persistent session only after that — so a message it
acknowledged survives ``kill -9``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

import msgspec

from hongshan.broker.auth import Client
from hongshan.broker.message import Delivery, Message, SubscriptionOptions
from hongshan.mqtt.packets import Will

if TYPE_CHECKING:
    from hongshan.broker.session import OutState


class SavedMessage(msgspec.Struct, frozen=True):
    client_id: str
    seq: int
    packet_id: int  # 0 while queued
    state: str  # OutState value
    delivery: Delivery


class SavedSession(msgspec.Struct):
    client_id: str
    expiry_interval: int
    disconnected_at: float | None
    subscriptions: dict[str, SubscriptionOptions]
    incoming_qos2: set[int]


class SavedWill(msgspec.Struct, frozen=True):
    """A will waiting out its Will Delay Interval when the broker stopped."""

    client: Client
    will: Will
    due: float  # wall-clock time it is to be sent


class SavedState(msgspec.Struct):
    retained: list[Message]
    sessions: list[SavedSession]
    messages: list[SavedMessage]
    wills: list[SavedWill]


class BrokerStateStore(Protocol):
    def load(self) -> SavedState: ...

    def next_seq(self) -> int: ...

    def save_retained(self, message: Message) -> None: ...

    def delete_retained(self, topic: str) -> None: ...

    def save_session(
        self, client_id: str, expiry_interval: int, disconnected_at: float | None
    ) -> None: ...

    def delete_session(self, client_id: str) -> None: ...

    def save_subscription(
        self, client_id: str, topic_filter: str, options: SubscriptionOptions
    ) -> None: ...

    def delete_subscription(self, client_id: str, topic_filter: str) -> None: ...

    def save_message(
        self, client_id: str, seq: int, delivery: Delivery, packet_id: int
    ) -> None: ...

    def update_message(self, client_id: str, seq: int, packet_id: int, state: OutState) -> None: ...

    def delete_message(self, client_id: str, seq: int) -> None: ...

    def save_will(self, will: SavedWill) -> None: ...

    def delete_will(self, client_id: str) -> None: ...

    def save_incoming_qos2(self, client_id: str, packet_id: int) -> None: ...

    def delete_incoming_qos2(self, client_id: str, packet_id: int) -> None: ...

    def committed(self) -> Awaitable[None]: ...

    async def close(self) -> None: ...
