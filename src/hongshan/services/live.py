"""``LiveFeed``: the platform's changes as they happen — property values, devices' status,
alarms, commands — handed to the live API's sockets (``api.live``), each filtered by what its
principal subscribed to and may see (``identity.visibility``).

Back-pressure is the subscriber's alone. Each message is encoded once (JSON text), then
offered to the bounded queue of every matching subscription; a subscriber whose queue is full
is dropped there and then (its socket is closed "too slow" by its own task), never waited for.
The feed's work per message is a few dict lookups plus one append per matching subscription,
with no await: a browser that reads too slowly cannot slow ingestion, a device's PUBACK or
anything else the bus carries.
"""

from __future__ import annotations

import asyncio
import collections
import enum
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from hongshan.alarms.model import Alarm
from hongshan.errors import HongshanError
from hongshan.identity.principals import Principal
from hongshan.identity.visibility import Visibility
from hongshan.messages import DeviceRef, PropertyValues, StatusChanged, Uplink
from hongshan.messages.commands import CommandRecord


class Topic(enum.StrEnum):
    PROPERTIES = "properties"
    STATUS = "status"
    ALARMS = "alarms"
    COMMANDS = "commands"


class LiveRefused(HongshanError):
    """A subscription (or a socket) the feed does not take; ``detail`` says why, to the
    client. ``http_status``: what a refused socket is answered with (429: too many)."""

    http_status = 400

    def __init__(self, detail: str, http_status: int = 400) -> None:
        super().__init__(detail)
        self.http_status = http_status


class Things(Protocol):
    """What a subscription is checked against (``things.directory.Directory``)."""

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    def product_view(self, product_key: str) -> object | None: ...

    def tenant_of(self, product_key: str) -> str | None: ...


class Groups(Protocol):
    """Groups and their members (``things.tag_directory.TagDirectory``)."""

    def has_group(self, name: str) -> bool: ...

    def memberships(self, product_key: str, device_name: str) -> Set[str]: ...

    def tenant_of_group(self, name: str) -> str | None: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Scope:
    """What one subscription covers: one device, one product, one group, or (all None)
    everything its principal may see."""

    device: DeviceRef | None = None
    product: str | None = None
    group: str | None = None


class Subscriber:
    """One socket's end of the feed: who it is, its subscriptions by the client's id, and the
    frames waiting to be sent (at most ``limit``). Owns no socket: its task takes the frames
    (``LiveFeed.frames``) and closes the socket once ``dropped``."""

    __slots__ = ("_limit", "_queue", "_ready", "dropped", "principal", "subscriptions")

    def __init__(self, principal: Principal, limit: int) -> None:
        self.principal = principal
        self.subscriptions: dict[str, _Subscription] = {}
        self.dropped = False
        self._limit = limit
        self._queue: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()

    def offer(self, frame: str) -> bool:
        """Queued; False when the queue is full (the feed drops the subscriber then)."""
        if len(self._queue) >= self._limit:
            return False
        self._queue.append(frame)
        self._ready.set()
        return True

    async def take(self) -> list[str]:
        """What is queued, once there is something (nothing once let go)."""
        await self._ready.wait()
        self._ready.clear()
        taken = list(self._queue)
        self._queue.clear()
        return taken

    def let_go(self) -> None:
        """Dropped: what was queued goes, and its task is woken to close its socket."""
        self.dropped = True
        self._queue.clear()
        self._ready.set()


@dataclass(eq=False, slots=True)
class _Subscription:
    id: str
    topic: Topic
    scope: Scope
    subscriber: Subscriber
    prefix: str  # '{"sub":"<id>",': what the frame of a message opens with


@dataclass(slots=True)
class _Index:
    """One topic's subscriptions, by what they cover: a message of a device finds those that
    match it in a few lookups, whatever the number of subscriptions."""

    everything: set[_Subscription] = field(default_factory=set)
    devices: dict[DeviceRef, set[_Subscription]] = field(default_factory=dict)
    products: dict[str, set[_Subscription]] = field(default_factory=dict)
    groups: dict[str, set[_Subscription]] = field(default_factory=dict)

    def bucket(self, scope: Scope) -> set[_Subscription]:
        if scope.device is not None:
            return self.devices.setdefault(scope.device, set())
        if scope.product is not None:
            return self.products.setdefault(scope.product, set())
        if scope.group is not None:
            return self.groups.setdefault(scope.group, set())
        return self.everything

    def remove(self, subscription: _Subscription) -> None:
        scope = subscription.scope
        if scope.device is not None:
            _discard(self.devices, scope.device, subscription)
        elif scope.product is not None:
            _discard(self.products, scope.product, subscription)
        elif scope.group is not None:
            _discard(self.groups, scope.group, subscription)
        else:
            self.everything.discard(subscription)

    def empty(self) -> bool:
        return not (self.everything or self.devices or self.products or self.groups)

    def matching(self, device: DeviceRef, groups: Groups) -> Iterable[_Subscription]:
        yield from self.everything
        yield from self.devices.get(device, ())
        yield from self.products.get(device.product, ())
        if self.groups:
            for name in groups.memberships(device.product, device.device):
                yield from self.groups.get(name, ())


def _discard(buckets: dict[Any, set[_Subscription]], key: Any, one: _Subscription) -> None:
    bucket = buckets.get(key)
    if bucket is not None:
        bucket.discard(one)
        if not bucket:
            del buckets[key]


_encode = msgspec.json.Encoder().encode


def _named(device: DeviceRef) -> str:
    return f"{device.product}/{device.device}"


class LiveFeed:
    """The one fan-out hub of the live API: fed by the bus (``on_uplink``: property values,
    status), the alarms (``on_alarm``) and the commands (``on_command``); owns the
    subscribers, their subscriptions and the counts the metrics read (``clients``,
    ``dropped``, ``messages_sent``). Never awaits a subscriber and never touches a socket."""

    def __init__(
        self,
        things: Things,
        groups: Groups,
        *,
        queue_limit: int = 1000,
        max_subscriptions: int = 100,
        max_per_principal: int = 16,
    ) -> None:
        self._things = things
        self._groups = groups
        self._visibility = Visibility(groups, things.tenant_of)
        self._queue_limit = queue_limit
        self._max_subscriptions = max_subscriptions
        self._max_per_principal = max_per_principal
        self._index = {topic: _Index() for topic in Topic}
        self._held: collections.Counter[tuple[str, str, str | None]] = collections.Counter()
        self.clients = 0  # sockets joined, not yet left
        self.dropped = 0  # subscribers dropped for reading too slowly, since start
        self.messages_sent = 0  # frames handed to sockets, since start

    # -- subscribers -----------------------------------------------------------------------

    def join(self, principal: Principal) -> Subscriber:
        """A socket's subscriber; ``LiveRefused`` (429) past the principal's sockets."""
        key = _holder(principal)
        if self._held[key] >= self._max_per_principal:
            raise LiveRefused(
                f"{principal.name} has {self._max_per_principal} live sockets open already, "
                "the most allowed",
                http_status=429,
            )
        self._held[key] += 1
        self.clients += 1
        return Subscriber(principal, self._queue_limit)

    def leave(self, subscriber: Subscriber) -> None:
        self._unsubscribe_all(subscriber)
        key = _holder(subscriber.principal)
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]
        self.clients -= 1

    def subscribe(self, subscriber: Subscriber, sub_id: str, topic: Topic, scope: Scope) -> None:
        """``LiveRefused`` for an id in use, one too many, or a device, product or group the
        principal may not see (said the same whether it exists or not: nothing leaks)."""
        if sub_id in subscriber.subscriptions:
            raise LiveRefused(f"subscription {sub_id!r} exists already on this socket")
        if len(subscriber.subscriptions) >= self._max_subscriptions:
            raise LiveRefused(
                f"this socket holds {self._max_subscriptions} subscriptions, the most allowed"
            )
        self._check(subscriber.principal, scope)
        prefix = '{"sub":' + _encode(sub_id).decode() + ","
        subscription = _Subscription(sub_id, topic, scope, subscriber, prefix)
        subscriber.subscriptions[sub_id] = subscription
        self._index[topic].bucket(scope).add(subscription)

    def unsubscribe(self, subscriber: Subscriber, sub_id: str) -> None:
        subscription = subscriber.subscriptions.pop(sub_id, None)
        if subscription is None:
            raise LiveRefused(f"no subscription {sub_id!r} on this socket")
        self._index[subscription.topic].remove(subscription)

    def reply(self, subscriber: Subscriber, message: dict[str, Any]) -> None:
        """A frame of the protocol's own (subscribed, error, pong), queued behind the
        messages; a subscriber whose queue is full is dropped for it as for any other."""
        if not subscriber.dropped and not subscriber.offer(_encode(message).decode()):
            self._drop(subscriber)

    async def frames(self, subscriber: Subscriber) -> list[str]:
        """What is queued for the subscriber, once there is something (empty once it is
        dropped): counted as sent."""
        taken = await subscriber.take()
        self.messages_sent += len(taken)
        return taken

    def _check(self, principal: Principal, scope: Scope) -> None:
        visibility = self._visibility
        if scope.device is not None:
            device = scope.device
            if not (
                self._things.device_known(device.product, device.device)
                and visibility.sees(principal, device.product, device.device)
            ):
                raise LiveRefused(f"no device {_named(device)!r} that you may see")
        elif scope.product is not None:
            if self._things.product_view(scope.product) is None or not (
                visibility.sees_product(principal, scope.product)
            ):
                raise LiveRefused(f"no product {scope.product!r} that you may see")
        elif scope.group is not None and not visibility.sees_group(principal, scope.group):
            raise LiveRefused(f"no group {scope.group!r} that you may see")

    def _unsubscribe_all(self, subscriber: Subscriber) -> None:
        for subscription in subscriber.subscriptions.values():
            self._index[subscription.topic].remove(subscription)
        subscriber.subscriptions.clear()

    def _drop(self, subscriber: Subscriber) -> None:
        """Too slow: it hears nothing more (its task closes its socket)."""
        self._unsubscribe_all(subscriber)
        subscriber.let_go()
        self.dropped += 1

    # -- what the platform says ------------------------------------------------------------

    def on_uplink(self, uplink: Uplink) -> None:
        """The bus's property values and status changes."""
        if type(uplink) is PropertyValues:
            if not self._index[Topic.PROPERTIES].empty():
                message = {"type": "properties", "ts": uplink.ts, "values": uplink.values}
                self._publish(Topic.PROPERTIES, uplink.device, message)
        elif type(uplink) is StatusChanged and not self._index[Topic.STATUS].empty():
            message = {
                "type": "status",
                "ts": uplink.received,
                "online": uplink.online,
                "reason": uplink.reason,
            }
            self._publish(Topic.STATUS, uplink.device, message)

    def on_alarm(self, alarm: Alarm, payload: dict[str, Any]) -> None:
        """An alarm's change as the alarms tell it: the alarm as ``GET /api/alarms`` shows it,
        what changed and who changed it."""
        if not self._index[Topic.ALARMS].empty():
            device = DeviceRef(alarm.product_key, alarm.device_name)
            message = {"type": "alarm", "change": payload["change"], "by": payload["by"]}
            self._publish(Topic.ALARMS, device, {**message, "alarm": alarm})

    def on_command(self, record: CommandRecord) -> None:
        """A command recorded or moved on: the record as ``GET /api/commands/{id}`` shows
        it."""
        if not self._index[Topic.COMMANDS].empty():
            device = DeviceRef(record.product_key, record.device_name)
            self._publish(Topic.COMMANDS, device, {"type": "command", "command": record})

    def _publish(self, topic: Topic, device: DeviceRef, message: dict[str, Any]) -> None:
        """Encoded once, then each matching subscription's frame is its prefix and the
        encoded body; the subscribers that cannot take it are dropped afterwards (not while
        the index is walked)."""
        body = ""
        too_slow: list[Subscriber] = []
        sees = self._visibility.sees
        for subscription in self._index[topic].matching(device, self._groups):
            subscriber = subscription.subscriber
            if not sees(subscriber.principal, device.product, device.device):
                continue
            if not body:
                body = _encode({"device": _named(device), **message}).decode()[1:]
            if not subscriber.offer(subscription.prefix + body):
                too_slow.append(subscriber)
        for subscriber in too_slow:
            if not subscriber.dropped:
                self._drop(subscriber)


def _holder(principal: Principal) -> tuple[str, str, str | None]:
    return (principal.kind, principal.name, principal.tenant)


LIVE_KINDS: tuple[type[Uplink], ...] = (PropertyValues, StatusChanged)
"""The uplinks the feed hears from the bus."""
