"""The generator's connections: asyncio Protocols that shake hands, then only count.

A ``Client`` sends a pre-encoded CONNECT (and SUBSCRIBE), reads CONNACK and SUBACK with the
project's codec, and from then on hands raw bytes to ``on_data``, which subclasses keep cheap.

Publishers do not push blindly: a ``Flow`` bounds the messages published but not yet delivered
(times the fan-out), so neither server is measured by how much it can queue, and a slow server is
not flooded into dropping. Subscribers report deliveries to the flow, which refills publishers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from bench.wire import (
    PACKET_IDS,
    PUBACK,
    PUBLISH,
    TimedPublish,
    decode_one,
    long_length,
    packet_ends,
    puback_header,
    walk,
)
from hongshan.mqtt.packets import ConnAck, SubAck

PUBACK_HEADER = puback_header()


class Flow:
    """Keeps ``sent * fanout - delivered`` (deliveries owed) at or under ``cap``.

    Publishers that may send wait in ``ready``; ``pump`` lets them send, round-robin, as much as
    the cap allows. A delivery that never comes (a server dropping QoS 0) would block the flow
    for ever, so the scenario's watchdog calls ``write_off`` when nothing moves."""

    def __init__(self, cap: int, fanout: int = 1) -> None:
        self.cap = cap
        self.fanout = fanout
        self.sent = 0
        self.delivered = 0
        self.written_off = 0
        self.running = False
        self.measuring = False
        self.latencies_ns: list[int] = []
        self.ready: deque[Publisher] = deque()
        self.drained = asyncio.Event()  # set once stopped and nothing is owed

    def add(self, publisher: Publisher) -> None:
        publisher.queued = True
        self.ready.append(publisher)

    def owed(self) -> int:
        return self.sent * self.fanout - self.delivered - self.written_off

    def pump(self) -> None:
        if not self.running:
            return
        room = (self.cap - self.owed()) // self.fanout
        ready = self.ready
        while room > 0 and ready:
            publisher = ready.popleft()
            sent = publisher.send(room)
            room -= sent
            self.sent += sent
            if publisher.can_send():
                ready.append(publisher)
            else:
                publisher.queued = False

    def on_delivered(self, count: int) -> None:
        self.delivered += count
        if self.running:
            self.pump()
        elif self.owed() <= 0:
            self.drained.set()

    def stop(self) -> None:
        self.running = False
        if self.owed() <= 0:
            self.drained.set()

    def write_off(self) -> int:
        """Give up on what is owed (it was dropped); returns how many deliveries."""
        owed = self.owed()
        self.written_off += owed
        self.pump()
        return owed


class Client(asyncio.Protocol):
    """One MQTT connection of the generator. ``ready`` resolves after CONNACK, or after SUBACK
    when there is a subscription; ``subscribe_now=False`` defers the SUBSCRIBE to ``subscribe``."""

    def __init__(
        self, hello: bytes, subscription: bytes | None = None, *, subscribe_now: bool = True
    ):
        loop = asyncio.get_running_loop()
        self.hello = hello
        self.subscription = subscription
        self.subscribe_now = subscribe_now
        self.connack: asyncio.Future[float] = loop.create_future()
        self.suback: asyncio.Future[float] = loop.create_future()
        self.gone: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.live = False
        self.lost = False
        self._pending = b""

    @property
    def ready(self) -> asyncio.Future[float]:
        return self.connack if self.subscription is None else self.suback

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.hello)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.gone.set_result(None)
        error = ConnectionError(f"connection closed by the server ({exc})")
        for future in (self.connack, self.suback):
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: an unawaited one must not warn at exit

    def data_received(self, data: bytes) -> None:
        if self.live:
            self.on_data(data)
        else:
            self._handshake(data)

    def subscribe(self) -> None:
        assert self.transport is not None and self.subscription is not None
        self.transport.write(self.subscription)

    def close(self, farewell: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(farewell)
            self.transport.close()

    def on_data(self, data: bytes) -> None:
        """Bytes after the handshake. Idle clients ignore them."""

    def _handshake(self, data: bytes) -> None:
        data = self._pending + data
        start = 0
        for end in packet_ends(data):
            packet = decode_one(data[start:end])
            start = end
            if isinstance(packet, ConnAck):
                if packet.reason_code != 0:
                    self._fail(f"CONNACK refused, code {packet.reason_code}")
                    return
                self.connack.set_result(time.perf_counter())
                if self.subscription is None:
                    self.live = True
                elif self.subscribe_now:
                    self.subscribe()
            elif isinstance(packet, SubAck):
                if any(code >= 0x80 for code in packet.reason_codes):
                    self._fail(f"SUBACK refused: {packet.reason_codes}")
                    return
                self.suback.set_result(time.perf_counter())
                self.live = True
            if self.live:
                if end < len(data):
                    self.on_data(data[end:])
                return
        self._pending = data[start:]

    def _fail(self, reason: str) -> None:
        for future in (self.connack, self.suback):
            if not future.done():
                future.set_exception(ConnectionError(reason))
                future.exception()
        if self.transport is not None:
            self.transport.close()


class Publisher(Client):
    """A QoS 0 publisher: writes slices of one pre-encoded batch of identical PUBLISHes."""

    def __init__(self, hello: bytes, batch: bytes, batch_size: int) -> None:
        super().__init__(hello)
        self.batch = batch
        self.batch_size = batch_size
        self.packet_size = len(batch) // batch_size
        self.queued = False

    def can_send(self) -> bool:
        return True

    def send(self, room: int) -> int:
        assert self.transport is not None
        if room >= self.batch_size:
            self.transport.write(self.batch)
            return self.batch_size
        self.transport.write(self.batch[: room * self.packet_size])
        return room


class AckedPublisher(Publisher):
    """A QoS 1 publisher with at most ``window`` PUBLISHes awaiting PUBACK; each carries its
    send time so the subscriber can measure publish→delivery latency."""

    def __init__(self, hello: bytes, flow: Flow, message: TimedPublish, window: int) -> None:
        super().__init__(hello, b"", 1)
        self.flow = flow
        self.message = message
        self.free = window
        self.packet_id = 0
        self._rest = b""

    def can_send(self) -> bool:
        return self.free > 0

    def send(self, room: int) -> int:
        assert self.transport is not None
        count = min(room, self.free)
        prefix, suffix = self.message.prefix, self.message.suffix
        stamp = time.monotonic_ns().to_bytes(8, "big")
        parts: list[bytes] = []
        packet_id = self.packet_id
        for _ in range(count):
            packet_id = packet_id % 0xFFFF + 1
            parts += (prefix, PACKET_IDS[packet_id], stamp, suffix)
        self.packet_id = packet_id
        self.free -= count
        self.transport.write(b"".join(parts))
        return count

    def on_data(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        acks, end = walk(data, PUBACK)
        self._rest = data[end:]
        if acks:
            self.free += acks
            if not self.queued:
                self.queued = True
                self.flow.ready.append(self)
            self.flow.pump()


class Subscriber(Client):
    """A QoS 0 subscriber: counts PUBLISH packets by their fixed headers, nothing more."""

    def __init__(self, hello: bytes, subscription: bytes, flow: Flow) -> None:
        super().__init__(hello, subscription)
        self.flow = flow
        self._rest = b""

    def on_data(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        count, end = walk(data, PUBLISH)
        self._rest = data[end:]
        if count:
            self.flow.on_delivered(count)


class AckingSubscriber(Subscriber):
    """A QoS 1 subscriber: PUBACKs every delivery (one write per read) and records latency from
    the timestamp in the first eight payload bytes."""

    def on_data(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        flow = self.flow
        now = time.monotonic_ns()
        latencies = flow.latencies_ns if flow.measuring else None
        acks: list[bytes] = []
        count = 0
        n = len(data)
        pos = 0
        while pos + 2 <= n:
            i = pos + 2
            length = data[pos + 1]
            if length >= 0x80:
                length, i = long_length(data, pos + 1)
                if i < 0:
                    break
            end = i + length
            if end > n:
                break
            first = data[pos]
            if first >> 4 == PUBLISH:
                count += 1
                at = i + 2 + ((data[i] << 8) | data[i + 1])  # past the topic name
                if first & 0x06:  # QoS 1 or 2: a packet id precedes the payload
                    acks += (PUBACK_HEADER, data[at : at + 2])
                    at += 2
                if latencies is not None:
                    latencies.append(now - int.from_bytes(data[at : at + 8], "big"))
            pos = end
        self._rest = data[pos:]
        if acks:
            assert self.transport is not None
            self.transport.write(b"".join(acks))
        if count:
            flow.on_delivered(count)


@dataclass
class Connected:
    """What ``connect_all`` achieved: the clients that got through, in order, and when."""

    clients: list[Client] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0


async def connect_all(
    factories: Sequence[Callable[[], Client]],
    port: int,
    *,
    concurrency: int,
    within: float,
    wait_for_suback: bool = True,
) -> Connected:
    """Open one connection per factory, ``concurrency`` attempts in flight at a time, each
    waiting for its CONNACK (and SUBACK). Stops after ``within`` seconds with whatever got
    through."""
    loop = asyncio.get_running_loop()
    result = Connected(started=time.perf_counter())
    todo = iter(factories)

    async def one_by_one() -> None:
        for factory in todo:
            try:
                _, client = await loop.create_connection(factory, "127.0.0.1", port)
                await (client.ready if wait_for_suback else client.connack)
            except (OSError, ConnectionError) as exc:
                result.failures.append(repr(exc))
                continue
            result.clients.append(client)
            result.finished = time.perf_counter()

    try:
        async with asyncio.timeout(within), asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(factories))):
                group.create_task(one_by_one())
    except TimeoutError:
        pass
    return result
