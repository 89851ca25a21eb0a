"""A session: what the broker keeps for one client id, connected or not (MQTT 4.1).

Outgoing QoS 1/2 messages move through one table of states (CONVENTIONS: transitions in one
place)::

    queued ──send──▶ PUBLISH sent ──PUBACK──▶ done                 (QoS 1)
                       │  └──PUBREC──▶ PUBREL sent ──PUBCOMP──▶ done (QoS 2)
                       └── reconnect: resent with DUP=1 (MQTT-4.4.0-1); PUBREL resent as is

Resends and new messages alike go out only as the connection's window allows (its Receive
Maximum, capped by ``max_inflight``; MQTT-4.9.0-2). A QoS 0 message is written at once when the
connection can take it and is otherwise queued behind the others. The queue is bounded by its
count and by its bytes (``SessionLimits``): a full queue drops its oldest QoS 0 messages first,
then the newcomer. The session's subscriptions are bounded likewise, by count and by the bytes of
their filters; the platform's automatic subscriptions are not the session's (``Broker.derive``)
and are not counted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import msgspec

from hongshan.broker.auth import ReceiveFilter
from hongshan.broker.message import Delivery, Message, SubscriptionOptions
from hongshan.broker.stats import Stats
from hongshan.mqtt.memo import topic_weight
from hongshan.mqtt.packets import NO_PROPERTIES

if TYPE_CHECKING:
    from hongshan.broker.state import BrokerStateStore


class SessionLimits(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one session may hold, shared by every session (the settings of the same names).
    ``max_queued`` 0 queues nothing; for the others 0 is no cap."""

    max_queued: int  # max_queued_messages
    max_queued_bytes: int = 0
    max_subscriptions: int = 0  # max_subscriptions_per_client
    max_subscription_bytes: int = 0  # max_subscription_bytes_per_client


def message_weight(message: Message) -> int:
    """The bytes a queued message holds in memory, bar fixed overheads: its topic and payload,
    as the retained store counts them, and the forwarded properties that can be large."""
    weight = topic_weight(message.topic) + len(message.payload)
    props = message.properties
    if props is not NO_PROPERTIES:
        weight += len(props.correlation_data or b"") + len(props.response_topic or "")
        weight += len(props.content_type or "")
        weight += sum(len(key) + len(value) for key, value in props.user_properties)
    return weight


class OutState(Enum):
    PUBLISH_SENT = "publish"
    PUBREL_SENT = "pubrel"


class Sink(Protocol):
    """The connection a session writes to (implemented by ``MQTTConnection``)."""

    @property
    def writable(self) -> bool: ...

    @property
    def send_quota(self) -> int:
        """How many QoS 1/2 PUBLISHes may await acknowledgement: the client's Receive Maximum
        (MQTT-3.3.4-9), at most the broker's ``max_inflight``."""

    def send_publish(self, delivery: Delivery, packet_id: int, dup: bool) -> None: ...

    def send_pubrel(self, packet_id: int) -> None: ...


class InFlight:
    __slots__ = ("delivery", "seq", "state")

    def __init__(self, delivery: Delivery, seq: int, state: OutState) -> None:
        self.delivery = delivery
        self.seq = seq
        self.state = state


class Session:
    """What the broker keeps for one client id, connected or not: its subscriptions, its
    queue, and the outgoing QoS 1/2 flows in their one state table. It never reads a socket;
    a connection attaches to it and takes what its window allows."""

    __slots__ = (
        "_next_packet_id",
        "client_id",
        "connection",
        "disconnected_at",
        "expiry_handle",
        "expiry_interval",
        "incoming_qos2",
        "inflight",
        "limits",
        "queue",
        "queued_bytes",
        "receive_filter",
        "resend",
        "stats",
        "store",
        "stored",
        "subscription_bytes",
        "subscriptions",
    )

    def __init__(
        self,
        client_id: str,
        *,
        store: BrokerStateStore,
        stats: Stats,
        limits: SessionLimits,
        expiry_interval: int = 0,
    ) -> None:
        self.client_id = client_id
        self.store = store
        self.stats = stats
        self.limits = limits
        self.expiry_interval = expiry_interval
        # kept through add_subscription and remove_subscription, which count their filters' bytes
        self.subscriptions: dict[str, SubscriptionOptions] = {}
        self.subscription_bytes = 0
        self.inflight: dict[int, InFlight] = {}
        # (delivery, seq or 0); made on first use: most sessions never queue anything
        self.queue: deque[tuple[Delivery, int]] | None = None
        self.queued_bytes = 0  # message_weight of what is in the queue
        self.incoming_qos2: set[int] = set()
        # packet ids of in-flight PUBLISHes still to be resent after a reconnect, in order;
        # they go out as the new connection's Receive Maximum allows (MQTT-4.9.0-2)
        self.resend: deque[int] | None = None
        self.stored = False  # written to the store at some point: must be deleted there
        self.connection: Sink | None = None
        # the ACL's test for topics this client may not receive though it may subscribe to them
        self.receive_filter: ReceiveFilter | None = None
        self.expiry_handle: asyncio.TimerHandle | None = None
        self.disconnected_at: float | None = None
        self._next_packet_id = 1

    @property
    def persistent(self) -> bool:
        return self.expiry_interval > 0

    # -- delivery ---------------------------------------------------------------------------

    def deliver(self, delivery: Delivery) -> bool:
        """Take one message for this client. Returns True when it was written to the store
        (the publisher's acknowledgement must then wait for the store's commit)."""
        if self.receive_filter is not None and not self.receive_filter(delivery.message.topic):
            self.stats.denied_delivery += 1
            return False
        conn = self.connection
        if delivery.qos == 0:
            if conn is not None and not self.queue and conn.writable:
                conn.send_publish(delivery, 0, False)
                return False
            if conn is None:
                # QoS 0 messages are not kept for a disconnected client (MQTT 4.1: optional).
                self.stats.dropped += 1
                return False
            self._enqueue(delivery, 0)
            return False
        seq = 0
        stored = False
        if self.persistent:
            seq = self.store.next_seq()
            stored = True
        if (
            conn is not None
            and not self.queue
            and not self.resend
            and conn.writable
            and len(self.inflight) < conn.send_quota
        ):
            packet_id = self._allocate_packet_id()
            self.inflight[packet_id] = InFlight(delivery, seq, OutState.PUBLISH_SENT)
            if stored:
                self.store.save_message(self.client_id, seq, delivery, packet_id)
            conn.send_publish(delivery, packet_id, False)
            return stored
        if not self._enqueue(delivery, seq):
            return False
        if stored:
            self.store.save_message(self.client_id, seq, delivery, 0)
        return stored

    def _enqueue(self, delivery: Delivery, seq: int) -> bool:
        """Queue ``delivery`` within max_queued and max_queued_bytes, dropping the oldest QoS 0
        messages to make room; False, and nothing dropped, when that cannot make room: the
        newcomer is dropped instead (a QoS 1/2 one too: the queue never outgrows its bounds)."""
        queue = self.queue
        if queue is None:
            queue = self.queue = deque()
        limits = self.limits
        weight = message_weight(delivery.message)
        over_count = len(queue) >= limits.max_queued
        excess = self.queued_bytes + weight - limits.max_queued_bytes
        over_bytes = limits.max_queued_bytes > 0 and excess > 0
        if over_count or over_bytes:
            victims: list[int] = []
            freed = 0
            for index, (queued, _) in enumerate(queue):
                if queued.qos == 0:
                    victims.append(index)
                    freed += message_weight(queued.message)
                    if not over_bytes or freed >= excess:
                        break
            if not victims or (over_bytes and freed < excess):
                self.stats.dropped += 1
                return False
            for index in reversed(victims):
                del queue[index]
            self.queued_bytes -= freed
            self.stats.dropped += len(victims)
        queue.append((delivery, seq))
        self.queued_bytes += weight
        return True

    def pump(self) -> None:
        """Send queued messages while the connection and the client's window allow."""
        conn = self.connection
        if conn is None:
            return
        resend = self.resend
        if resend is not None:
            # MQTT-4.4.0-1: unacknowledged PUBLISHes go again, with their packet ids and DUP
            inflight = self.inflight
            while resend and conn.writable:
                if len(inflight) - len(resend) >= conn.send_quota:
                    return
                packet_id = resend.popleft()
                entry = inflight.get(packet_id)
                if entry is not None and entry.state is OutState.PUBLISH_SENT:
                    conn.send_publish(entry.delivery, packet_id, True)
            if resend:
                return
            self.resend = None
        queue = self.queue
        if queue is None:
            return
        receive_filter = self.receive_filter
        while queue and conn.writable:
            delivery, seq = queue[0]
            if delivery.qos and len(self.inflight) >= conn.send_quota:
                return
            queue.popleft()
            message = delivery.message
            self.queued_bytes -= message_weight(message)
            if message.remaining_expiry() == 0 or (
                # queued while the client's ACL was not known (restored after a restart)
                receive_filter is not None and not receive_filter(message.topic)
            ):
                if seq:
                    self.store.delete_message(self.client_id, seq)
                continue
            if delivery.qos == 0:
                conn.send_publish(delivery, 0, False)
                continue
            packet_id = self._allocate_packet_id()
            self.inflight[packet_id] = InFlight(delivery, seq, OutState.PUBLISH_SENT)
            if seq:
                self.store.update_message(self.client_id, seq, packet_id, OutState.PUBLISH_SENT)
            conn.send_publish(delivery, packet_id, False)

    def _allocate_packet_id(self) -> int:
        packet_id = self._next_packet_id
        inflight = self.inflight
        while packet_id in inflight:
            packet_id = packet_id % 65535 + 1
        self._next_packet_id = packet_id % 65535 + 1
        return packet_id

    # -- acknowledgements -------------------------------------------------------------------

    def puback(self, packet_id: int) -> bool:
        entry = self.inflight.get(packet_id)
        if entry is None or entry.delivery.qos != 1:
            return False
        self._complete(packet_id, entry)
        return True

    def _complete(self, packet_id: int, entry: InFlight) -> None:
        """The exchange for ``packet_id`` is over: free its slot in the window and the store."""
        del self.inflight[packet_id]
        if entry.seq:
            self.store.delete_message(self.client_id, entry.seq)
        self.pump()

    def discard(self, packet_id: int) -> None:
        """Forget an in-flight message the connection could not send (too large, expired)."""
        entry = self.inflight.get(packet_id)
        if entry is not None:
            self._complete(packet_id, entry)

    def pubrec(self, packet_id: int, failed: bool) -> bool:
        entry = self.inflight.get(packet_id)
        if entry is None or entry.delivery.qos != 2:
            return False
        if failed:
            # MQTT-4.3.3: a PUBREC with a failure code ends the exchange.
            self._complete(packet_id, entry)
            return True
        entry.state = OutState.PUBREL_SENT
        if entry.seq:
            self.store.update_message(self.client_id, entry.seq, packet_id, OutState.PUBREL_SENT)
        return True

    def pubcomp(self, packet_id: int) -> bool:
        entry = self.inflight.get(packet_id)
        if entry is None or entry.state is not OutState.PUBREL_SENT:
            return False
        self._complete(packet_id, entry)
        return True

    # -- connection -------------------------------------------------------------------------

    def attach(self, connection: Sink) -> None:
        """A client (re)connected to this session: resend what was in flight, then the queue."""
        self.connection = connection
        self.disconnected_at = None
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
            self.expiry_handle = None
        resend: deque[int] = deque()
        for packet_id, entry in self.inflight.items():
            if entry.state is OutState.PUBREL_SENT:
                connection.send_pubrel(packet_id)
            else:
                resend.append(packet_id)
        self.resend = resend or None
        self.pump()

    def detach(self, now: float) -> None:
        self.connection = None
        self.resend = None
        self.disconnected_at = now
        # QoS 0 messages waiting for a now gone connection are not kept.
        queue = self.queue
        if queue is not None and any(d.qos == 0 for d, _ in queue):
            kept = deque(item for item in queue if item[0].qos > 0)
            self.stats.dropped += len(queue) - len(kept)
            self.queue = kept
            self.queued_bytes = sum(message_weight(d.message) for d, _ in kept)

    def restore(self, packet_id: int, delivery: Delivery, seq: int, state: OutState) -> None:
        """Put back a message loaded from the store after a restart."""
        if packet_id:
            self.inflight[packet_id] = InFlight(delivery, seq, state)
            self._next_packet_id = max(self._next_packet_id, packet_id % 65535 + 1)
        else:
            if self.queue is None:
                self.queue = deque()
            # not bounded here: what was accepted before the restart is kept
            self.queue.append((delivery, seq))
            self.queued_bytes += message_weight(delivery.message)

    # -- subscriptions ----------------------------------------------------------------------

    def subscription_refused(self, topic_filter: str) -> str | None:
        """Why ``topic_filter`` would take the session past max_subscriptions_per_client or
        max_subscription_bytes_per_client (None: it fits). Replacing a filter the session has
        costs nothing (MQTT-3.8.4-3) and always fits."""
        if topic_filter in self.subscriptions:
            return None
        limits = self.limits
        if limits.max_subscriptions and len(self.subscriptions) >= limits.max_subscriptions:
            return f"{len(self.subscriptions)} subscriptions, max_subscriptions_per_client"
        weight = topic_weight(topic_filter)
        held = self.subscription_bytes
        if limits.max_subscription_bytes and held + weight > limits.max_subscription_bytes:
            return f"{held} + {weight} bytes of topic filters, max_subscription_bytes_per_client"
        return None

    def add_subscription(self, topic_filter: str, options: SubscriptionOptions) -> bool:
        """Keep (or replace) a subscription; True if the session already had it."""
        existed = topic_filter in self.subscriptions
        if not existed:
            self.subscription_bytes += topic_weight(topic_filter)
        self.subscriptions[topic_filter] = options
        return existed

    def remove_subscription(self, topic_filter: str) -> bool:
        if self.subscriptions.pop(topic_filter, None) is None:
            return False
        self.subscription_bytes -= topic_weight(topic_filter)
        return True
