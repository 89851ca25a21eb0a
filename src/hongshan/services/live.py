"""``LiveFeed``: the platform's changes as they happen — property values, devices' status,
alarms, commands — handed to the live API's sockets (``api.live``), each filtered by what its
principal subscribed to and may see (``identity.visibility``).

Two halves, so that the live API costs a device's acknowledgement nothing:

- **the post path** (``on_uplink``, ``on_alarm``, ``on_command``, ``reply``): one append to
  the feed's inbox and a wake-up, when anyone listens to the topic; no matching, no socket,
  and for a device's values and status no encoding (an alarm's or a command's change is
  encoded as it is told: they are few, and a command's record is changed in place after). A
  device's PUBACK never waits for a browser.
- **the delivery** (``deliver``, run by the feed's task, ``start``): at most once every
  ``batch_interval`` seconds (at once when it has been quiet for longer), the inbox is taken
  in order; each message is matched against the subscriptions, encoded once (JSON text), and
  offered to the bounded queue of every matching subscriber. Each socket's task then takes
  everything queued for it as ONE frame (``frame``: the message alone, or a ``batch`` of them
  in order), so a socket costs one send per delivery, not one per message: 100 sockets at
  1,000 posts a second are 20 sends a socket a second (at 0.05 s), not 1,000.

Back-pressure is the subscriber's alone, and judged on what it still owes from EARLIER
deliveries, not on the size of one: a subscriber offered a message while more than ``limit``
messages of earlier deliveries wait unsent for it is dropped there and then (its socket is
closed "too slow" by its own task), never waited for. A delivery is what the inbox held when
it began, so one delivery may bring a socket more than ``limit`` (1,500 devices coming back
online within an interval) and a socket that reads what it is sent before the next delivery
is never dropped for it; one that falls behind is dropped at the next delivery that has
something for it. A socket holds at most ``limit`` messages of earlier deliveries plus those
of the delivery under way (what its subscriptions matched of one inbox).

Order is kept: one inbox, each subscriber's queue in its order, so a device's messages (and a
ping's pong, behind what was queued before it) arrive in the order they happened.

Nothing is coalesced: a newer value of a property never replaces an older one not yet sent.
Each ``properties`` message is a post with its own time, as the history keeps it (a chart
wants every point, and two posts merged would carry one ``ts`` for values of two times); the
cost that mattered was a send per message, which the batches remove, while a socket that is
behind by a whole queue is too slow for the town whether its values are merged or not.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import Iterable, Set
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import msgspec

from hongshan.alarms.model import Alarm
from hongshan.errors import HongshanError
from hongshan.identity.principals import Principal
from hongshan.identity.visibility import Visibility
from hongshan.messages import DeviceRef, PropertyValues, StatusChanged, Uplink
from hongshan.messages.commands import CommandRecord

log = logging.getLogger("hongshan.live")


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

    def has_group(self, name: str, tenant: str = ...) -> bool: ...

    def memberships(self, product_key: str, device_name: str) -> Set[str]: ...

    def tenants_of_group(self, name: str) -> list[str]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Scope:
    """What one subscription covers: one device, one product, one group, or (all None)
    everything its principal may see. A group's name is unique within its tenant only: the
    feed finds ``group_tenant`` when it takes the subscription (the principal's own, or for
    the admin token the one tenant with a group so named)."""

    device: DeviceRef | None = None
    product: str | None = None
    group: str | None = None
    group_tenant: str | None = None


FRAME_BUDGET = 128 * 1024
"""Characters of messages one frame holds at most (one message larger goes alone): a client's
frame limit (the ``websockets`` library's is 1 MiB) is never reached by a batch."""


class Subscriber:
    """One socket's end of the feed: who it is, its subscriptions by the client's id, and the
    encoded messages waiting to be sent (at most ``limit`` of earlier deliveries, plus those of
    the delivery under way). Owns no socket: its task takes the frames (``LiveFeed.frame``) and
    closes the socket once ``dropped``."""

    __slots__ = ("_earlier", "_limit", "_queue", "_ready", "dropped", "principal", "subscriptions")

    def __init__(self, principal: Principal, limit: int) -> None:
        self.principal = principal
        self.subscriptions: dict[str, _Subscription] = {}
        self.dropped = False
        self._limit = limit
        self._queue: collections.deque[str] = collections.deque()
        self._earlier = 0  # of the queue: messages of earlier deliveries (its head)
        self._ready = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Messages queued, not yet taken by its socket's task."""
        return len(self._queue)

    def begin_delivery(self) -> None:
        """A delivery begins: what is queued now is owed from earlier deliveries."""
        self._earlier = len(self._queue)

    def offer(self, message: str) -> bool:
        """Queued; False when more than ``limit`` messages of earlier deliveries still wait
        (the feed drops the subscriber then). What this delivery brings is not counted: a
        burst larger than the limit goes to a socket that reads it."""
        if self._earlier > self._limit:
            return False
        self._queue.append(message)
        self._ready.set()
        return True

    async def take(self) -> list[str]:
        """What is queued, in order, once there is something, up to ``FRAME_BUDGET``
        characters (at least one message; the rest at the next call, at once). Nothing once
        let go."""
        await self._ready.wait()
        queue = self._queue
        taken: list[str] = []
        size = 0
        while queue and (not taken or size + len(queue[0]) <= FRAME_BUDGET):
            message = queue.popleft()
            taken.append(message)
            size += len(message)
        if not queue:
            self._ready.clear()
        self._earlier = max(0, self._earlier - len(taken))  # (taken from the head: earliest)
        return taken

    def let_go(self) -> None:
        """Dropped (or gone): what was queued goes, and its task is woken to close its
        socket."""
        self.dropped = True
        self._queue.clear()
        self._earlier = 0
        self._ready.set()


@dataclass(frozen=True, slots=True)
class _Reply:
    """A frame of the protocol's own for one subscriber, in the inbox behind the messages
    that came before it."""

    subscriber: Subscriber
    text: str


@dataclass(frozen=True, slots=True)
class _Encoded:
    """A message encoded when it was told (its body: the frame's text after the ``sub``):
    a command's record, which its owner changes in place once told, and an alarm's change."""

    topic: Topic
    device: DeviceRef
    body: str


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
    groups: dict[tuple[str | None, str], set[_Subscription]] = field(default_factory=dict)

    def bucket(self, scope: Scope) -> set[_Subscription]:
        if scope.device is not None:
            return self.devices.setdefault(scope.device, set())
        if scope.product is not None:
            return self.products.setdefault(scope.product, set())
        if scope.group is not None:
            return self.groups.setdefault((scope.group_tenant, scope.group), set())
        return self.everything

    def remove(self, subscription: _Subscription) -> None:
        scope = subscription.scope
        if scope.device is not None:
            _discard(self.devices, scope.device, subscription)
        elif scope.product is not None:
            _discard(self.products, scope.product, subscription)
        elif scope.group is not None:
            _discard(self.groups, (scope.group_tenant, scope.group), subscription)
        else:
            self.everything.discard(subscription)

    def empty(self) -> bool:
        return not (self.everything or self.devices or self.products or self.groups)

    def matching(
        self, device: DeviceRef, groups: Groups, things: Things
    ) -> Iterable[_Subscription]:
        yield from self.everything
        yield from self.devices.get(device, ())
        yield from self.products.get(device.product, ())
        if self.groups:
            names = groups.memberships(device.product, device.device)
            if names:  # (a device's groups are of its own tenant)
                tenant = things.tenant_of(device.product)
                for name in names:
                    yield from self.groups.get((tenant, name), ())


def _discard(buckets: dict[Any, set[_Subscription]], key: Any, one: _Subscription) -> None:
    bucket = buckets.get(key)
    if bucket is not None:
        bucket.discard(one)
        if not bucket:
            del buckets[key]


_encode = msgspec.json.Encoder().encode


def _named(device: DeviceRef) -> str:
    return f"{device.product}/{device.device}"


_Arrival = PropertyValues | StatusChanged | _Encoded | _Reply
"""What the inbox holds: a device's values and status as the bus carried them (frozen; encoded
only when delivered, and only if a subscriber sees them), alarms' and commands' changes
encoded as they were told (few, and a record changes after), and the protocol's replies."""

DELIVERY_SLICE = 256
"""Messages of the inbox delivered before the feed's task lets the loop run again (a
delivery of thousands of messages to many sockets is cut into slices, so that a device's
packets are read between them)."""


class LiveFeed:
    """The one fan-out hub of the live API: fed by the bus (``on_uplink``: property values,
    status), the alarms (``on_alarm``) and the commands (``on_command``), into one inbox that
    its task (``start``, ``stop``) delivers in batches; owns the subscribers, their
    subscriptions and the counts the metrics read (``clients``, ``dropped``,
    ``messages_sent``, ``frames_sent``). Never awaits a subscriber and never touches a
    socket; what feeds it does not even match or encode."""

    def __init__(
        self,
        things: Things,
        groups: Groups,
        *,
        queue_limit: int = 1000,
        max_subscriptions: int = 100,
        max_per_principal: int = 16,
        batch_interval: float = 0.05,
    ) -> None:
        self._things = things
        self._groups = groups
        self._visibility = Visibility(groups, things.tenant_of)
        self._queue_limit = queue_limit
        self._max_subscriptions = max_subscriptions
        self._max_per_principal = max_per_principal
        self._batch_interval = batch_interval
        self._index = {topic: _Index() for topic in Topic}
        self._held: collections.Counter[tuple[str, str, str | None]] = collections.Counter()
        self._subscribers: set[Subscriber] = set()
        self._inbox: collections.deque[_Arrival] = collections.deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.clients = 0  # sockets joined, not yet left
        self.dropped = 0  # subscribers dropped for reading too slowly, since start
        self.messages_sent = 0  # messages handed to sockets, since start
        self.frames_sent = 0  # frames they went in (a batch is one), since start

    # -- the delivery ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._delivering(), name="live feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def backlog(self) -> int:
        """Messages waiting: in the inbox, and queued for the sockets, not yet taken."""
        return len(self._inbox) + sum(s.backlog for s in self._subscribers)

    async def _delivering(self) -> None:
        loop = asyncio.get_running_loop()
        last = -self._batch_interval
        while True:
            await self._arrived.wait()
            # at most one delivery per interval: what arrives meanwhile waits, and goes to
            # each socket in one frame (after a quiet interval: at once)
            wait = last + self._batch_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last = loop.time()
            self._arrived.clear()
            left = self._begin_delivery()
            while left:  # (a slice at a time, the loop running between: a yield, no wait)
                count = min(DELIVERY_SLICE, left)
                self._offer(count)
                left -= count
                if left:
                    await asyncio.sleep(0)

    def deliver(self) -> None:
        """One delivery, now: what the inbox holds offered to the matching subscribers, in
        order. The task's work (slice by slice); a test calls it to deliver at once."""
        self._offer(self._begin_delivery())

    def _begin_delivery(self) -> int:
        """A delivery begins: what each subscriber has queued is owed from earlier ones (its
        limit counts those alone); the messages it takes: what the inbox holds now (what
        arrives during it waits for the next, so that one delivery is bounded)."""
        for subscriber in self._subscribers:
            subscriber.begin_delivery()
        return len(self._inbox)

    def _offer(self, count: int) -> None:
        """The inbox's first ``count`` messages offered; one that fails (a bug) is logged and
        skipped, and the feed goes on: its task must not end, or the inbox would grow for
        ever."""
        inbox = self._inbox
        for _ in range(count):
            arrival = inbox.popleft()
            try:
                self._offer_one(arrival)
            except Exception:
                log.exception("live feed: a message could not be delivered; skipped")

    def _offer_one(self, arrival: _Arrival) -> None:
        if isinstance(arrival, PropertyValues):
            message = {"type": "properties", "ts": arrival.ts, "values": arrival.values}
            self._publish(Topic.PROPERTIES, arrival.device, message)
        elif isinstance(arrival, StatusChanged):
            message = {
                "type": "status",
                "ts": arrival.received,
                "online": arrival.online,
                "reason": arrival.reason,
            }
            self._publish(Topic.STATUS, arrival.device, message)
        elif isinstance(arrival, _Reply):
            subscriber = arrival.subscriber
            if not subscriber.dropped and not subscriber.offer(arrival.text):
                self._drop(subscriber)
        else:
            self._publish(arrival.topic, arrival.device, arrival.body)

    def _arrive(self, arrival: _Arrival) -> None:
        self._inbox.append(arrival)
        self._arrived.set()

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
        subscriber = Subscriber(principal, self._queue_limit)
        self._subscribers.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        self._unsubscribe_all(subscriber)
        subscriber.let_go()  # (replies still in the inbox are not queued for it)
        self._subscribers.discard(subscriber)
        key = _holder(subscriber.principal)
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]
        self.clients -= 1

    def subscribe(self, subscriber: Subscriber, sub_id: str, topic: Topic, scope: Scope) -> None:
        """``LiveRefused`` for an id in use, one too many, or a device, product or group the
        principal may not see (said the same whether it exists or not: nothing leaks). It
        hears the messages delivered from now on (those in the inbox too)."""
        if sub_id in subscriber.subscriptions:
            raise LiveRefused(f"subscription {sub_id!r} exists already on this socket")
        if len(subscriber.subscriptions) >= self._max_subscriptions:
            raise LiveRefused(
                f"this socket holds {self._max_subscriptions} subscriptions, the most allowed"
            )
        scope = self._check(subscriber.principal, scope)
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
        """A frame of the protocol's own (subscribed, error, pong), delivered behind the
        messages that arrived before it; a subscriber too far behind is dropped for it as for
        any other."""
        if not subscriber.dropped:
            self._arrive(_Reply(subscriber, _encode(message).decode()))

    async def frame(self, subscriber: Subscriber) -> str | None:
        """The next frame for the subscriber's socket, once there is something: one message
        as it is, or several as ``{"type":"batch","items":[…]}`` in order (None once it is
        dropped). Counted as sent."""
        taken = await subscriber.take()
        if not taken:
            return None
        self.messages_sent += len(taken)
        self.frames_sent += 1
        if len(taken) == 1:
            return taken[0]
        return '{"type":"batch","items":[' + ",".join(taken) + "]}"

    def _check(self, principal: Principal, scope: Scope) -> Scope:
        """The scope, its group's tenant found; ``LiveRefused`` for what the principal may
        not see."""
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
        elif scope.group is not None:
            tenants = visibility.group_tenants(principal, scope.group)
            if scope.group_tenant is not None:
                tenants = [scope.group_tenant] if scope.group_tenant in tenants else []
            if not tenants:
                raise LiveRefused(f"no group {scope.group!r} that you may see")
            if len(tenants) > 1:
                raise LiveRefused(
                    f"group {scope.group!r}: tenants {', '.join(tenants)} each have one; name "
                    "the tenant (tenant)"
                )
            return replace(scope, group_tenant=tenants[0])
        return scope

    def _unsubscribe_all(self, subscriber: Subscriber) -> None:
        for subscription in subscriber.subscriptions.values():
            self._index[subscription.topic].remove(subscription)
        subscriber.subscriptions.clear()

    def _drop(self, subscriber: Subscriber) -> None:
        """Too slow: it hears nothing more (its task closes its socket)."""
        self._unsubscribe_all(subscriber)
        subscriber.let_go()
        self.dropped += 1

    # -- what the platform says: into the inbox ----------------------------------------------

    def on_uplink(self, uplink: Uplink) -> None:
        """The bus's property values and status changes."""
        if isinstance(uplink, PropertyValues):
            if not self._index[Topic.PROPERTIES].empty():
                self._arrive(uplink)
        elif isinstance(uplink, StatusChanged) and not self._index[Topic.STATUS].empty():
            self._arrive(uplink)

    def on_alarm(self, alarm: Alarm, payload: dict[str, Any]) -> None:
        """An alarm's change as the alarms tell it: the alarm as ``GET /api/alarms`` shows it,
        what changed and who changed it."""
        if not self._index[Topic.ALARMS].empty():
            device = DeviceRef(alarm.product_key, alarm.device_name)
            message = {"type": "alarm", "change": payload["change"], "by": payload["by"]}
            body = _body(device, {**message, "alarm": alarm})
            self._arrive(_Encoded(Topic.ALARMS, device, body))

    def on_command(self, record: CommandRecord) -> None:
        """A command recorded or moved on: the record as ``GET /api/commands/{id}`` shows
        it (as it is now: the record is changed in place after)."""
        if not self._index[Topic.COMMANDS].empty():
            device = DeviceRef(record.product_key, record.device_name)
            body = _body(device, {"type": "command", "command": record})
            self._arrive(_Encoded(Topic.COMMANDS, device, body))

    def _publish(self, topic: Topic, device: DeviceRef, message: dict[str, Any] | str) -> None:
        """Encoded once (the message, unless it came encoded: its body), then each matching
        subscription's message is its prefix and the body; the subscribers that cannot take
        it are dropped afterwards (not while the index is walked)."""
        body = message if isinstance(message, str) else ""
        too_slow: list[Subscriber] = []
        sees = self._visibility.sees
        for subscription in self._index[topic].matching(device, self._groups, self._things):
            subscriber = subscription.subscriber
            if not sees(subscriber.principal, device.product, device.device):
                continue
            if not body:
                assert not isinstance(message, str)
                body = _body(device, message)
            if not subscriber.offer(subscription.prefix + body):
                too_slow.append(subscriber)
        for subscriber in too_slow:
            if not subscriber.dropped:
                self._drop(subscriber)


def _body(device: DeviceRef, message: dict[str, Any]) -> str:
    """A message's JSON after its opening brace: a subscription's prefix goes before it."""
    return _encode({"device": _named(device), **message}).decode()[1:]


def _holder(principal: Principal) -> tuple[str, str, str | None]:
    return (principal.kind, principal.name, principal.tenant)


LIVE_KINDS: tuple[type[Uplink], ...] = (PropertyValues, StatusChanged)
"""The uplinks the feed hears from the bus."""
