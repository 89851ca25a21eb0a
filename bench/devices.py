"""Device scenarios (issue 3): Alibaba-signed CONNECTs and Alink property posts.

Hongshan gets a registry seeded before it starts (product ``a1BenchLamp`` with the streetlight
thing model, devices ``lamp-00000`` …, secrets derived from their names so the generator can
sign without being told them). Devices log in as the Link SDKs do — ``securemode=3``,
``signmethod=hmacsha1``, a timestamp and ``_ss=1``, so each is also subscribed to its system
topics. Mosquitto, the anchor, gets the same number of plain anonymous CONNECTs, and for posts
the same payloads echoed back to each client on its own topic: one message in and one out per
post, as Hongshan's property post and its reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench import wire
from bench.clients import Client, Flow, Publisher, connect_all
from bench.scenarios import CpuWindow, Measurement, Options, _close, _run_flow
from bench.servers import Server

PRODUCT_KEY = "a1BenchLamp"
TSL = Path(__file__).parent.parent / "tests" / "things" / "data" / "streetlight.json"
IDS_PER_DEVICE = 64  # distinct message ids each device cycles through (more than it is remembered)
TIMESTAMP = "1764374400000"


def device_name(i: int) -> str:
    return f"lamp-{i:05d}"


def device_secret(name: str) -> str:
    return hashlib.sha256(f"bench/{name}".encode()).hexdigest()[:32]


def seed(data_dir: Path, devices: int) -> None:
    """Create the product and ``devices`` devices in the registry Hongshan will open."""
    from hongshan.identity.secret_box import SecretBox, load_or_create_key
    from hongshan.store.registry.store import SQLRegistry
    from hongshan.things.tsl import ThingModel

    async def run() -> None:
        box = SecretBox(load_or_create_key(data_dir / "secret.key"))
        registry = await SQLRegistry.open(f"sqlite:///{data_dir / 'registry.db'}", box)
        try:
            model = ThingModel.from_json(TSL.read_bytes())
            await registry.create_product("Bench lamp", product_key=PRODUCT_KEY, thing_model=model)
            names = [device_name(i) for i in range(devices)]
            await registry.create_devices(
                PRODUCT_KEY, names, secrets={name: device_secret(name) for name in names}
            )
        finally:
            await registry.close()

    asyncio.run(run())


def signed_connect(i: int) -> bytes:
    name = device_name(i)
    fields = {
        "clientId": f"{PRODUCT_KEY}&{name}",
        "deviceName": name,
        "productKey": PRODUCT_KEY,
        "timestamp": TIMESTAMP,
    }
    content = "".join(f"{k}{fields[k]}" for k in sorted(fields))
    password = hmac.new(device_secret(name).encode(), content.encode(), hashlib.sha1).hexdigest()
    client_id = (
        f"{PRODUCT_KEY}&{name}|securemode=3,signmethod=hmacsha1,timestamp={TIMESTAMP},_ss=1|"
    )
    return wire.connect(client_id, username=f"{name}&{PRODUCT_KEY}", password=password)


def hello(server: Server, i: int) -> bytes:
    if server.name == "hongshan":
        return signed_connect(i)
    return wire.connect(f"{PRODUCT_KEY}.{device_name(i)}")


async def signed_connects(server: Server, options: Options) -> Measurement:
    """``devices`` devices log in, ``concurrency`` attempts in flight; connects/s."""
    result = Measurement()
    n = options.devices
    factories = [_factory(hello(server, i)) for i in range(n)]  # signed before the clock
    cpu = CpuWindow(server)
    cpu.start()
    connected = await connect_all(
        factories, server.port, concurrency=options.concurrency, within=options.connect_timeout
    )
    cpu.stop(result)
    if connected.failures:
        result.notes.append(f"{len(connected.failures)} connects failed: {connected.failures[0]}")
    if connected.clients:
        elapsed = connected.finished - connected.started
        result.values["connects/s"] = len(connected.clients) / elapsed
    if len(connected.clients) < n:
        result.notes.append(f"only {len(connected.clients)} of {n} connected")
    await _close(connected.clients, result)
    return result


def _factory(packet: bytes) -> Callable[[], Client]:
    return lambda: Client(packet)


class PostingDevice(Publisher):
    """Publishes property posts at QoS 0, cycling through pre-encoded posts with distinct ids,
    and counts what comes back (replies, or on Mosquitto its own echo) as deliveries."""

    def __init__(self, hello: bytes, posts: bytes, count: int, flow: Flow) -> None:
        super().__init__(hello, posts, count)
        self.flow = flow
        self.at = 0
        self._rest = b""

    def send(self, room: int) -> int:
        assert self.transport is not None
        size, total = self.packet_size, self.batch_size
        sent = min(room, total)
        end = self.at + sent
        if end <= total:
            self.transport.write(self.batch[self.at * size : end * size])
        else:
            self.transport.write(self.batch[self.at * size :] + self.batch[: (end - total) * size])
        self.at = end % total
        return sent

    def on_data(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        count, end = wire.walk(data, wire.PUBLISH)
        self._rest = data[end:]
        if count:
            self.flow.on_delivered(count)


def post_body(n: int) -> bytes:
    """The ``n``-th property post of a device: five properties of the streetlight model, and a
    message id of fixed width (so every PUBLISH of a device has the same size)."""
    body = {
        "id": str(100_000 + n),
        "version": "1.0",
        "params": {
            "LightSwitch": 1,
            "Brightness": 40 + n % 50,
            "Voltage": 220.5,
            "Energy": 1024.25,
            "WorkMode": 2,
        },
        "method": "thing.event.property.post",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _posts(topic: str) -> bytes:
    """``IDS_PER_DEVICE`` PUBLISHes of five properties each, every one the same size."""
    packets = [wire.publish(topic, post_body(n)) for n in range(IDS_PER_DEVICE)]
    assert len({len(p) for p in packets}) == 1
    return b"".join(packets)


async def property_posts(server: Server, options: Options) -> Measurement:
    """``posting_devices`` devices post at QoS 0 with ``backlog`` posts each unanswered at most;
    posts/s counted by their replies (on Mosquitto, by the echo)."""
    n = options.posting_devices
    flow = Flow(cap=n * options.backlog)

    def device(i: int) -> Callable[[], Client]:
        name = device_name(i)
        topic = f"/sys/{PRODUCT_KEY}/{name}/thing/event/property/post"
        posts = _posts(topic)
        if server.name == "hongshan":
            return lambda: PostingDevice(signed_connect(i), posts, IDS_PER_DEVICE, flow)
        subscription = wire.subscribe([topic], 0)
        connect = wire.connect(f"{PRODUCT_KEY}.{name}")

        def echoing() -> Client:
            client = PostingDevice(connect, posts, IDS_PER_DEVICE, flow)
            client.subscription = subscription
            return client

        return echoing

    return await posts_counted([device(i) for i in range(n)], PostingDevice, flow, server, options)


async def posts_counted(
    devices: list[Callable[[], Client]],
    kind: type[Publisher],
    flow: Flow,
    server: Server,
    options: Options,
) -> Measurement:
    """Connect every device (all of them, or the run is void), run them as one flow and
    count the posts/s it delivered (replies, echoes or PUBACKs: whatever the flow counts)."""
    n = len(devices)
    connected = await connect_all(
        devices, server.port, concurrency=options.concurrency, within=options.connect_timeout
    )
    if len(connected.clients) < n:
        detail = connected.failures[0] if connected.failures else "timed out"
        raise RuntimeError(f"{len(connected.clients)} of {n} devices connected: {detail}")
    for client in connected.clients:
        assert isinstance(client, kind)
        flow.add(client)
    result = await _run_flow(flow, server, options)
    result.values["posts/s"] = result.values.pop("rate")
    await _close(connected.clients, result)
    return result


class AckingDevice(Client):
    """Sends pre-encoded QoS 1 posts when told to, and times each PUBACK from its PUBLISH.
    Other packets (Hongshan's ``post_reply``) are skipped."""

    def __init__(self, hello: bytes, topic: str, bodies: int) -> None:
        super().__init__(hello)
        # each post's id is its own (the history takes a message it saw within the last
        # minute, same id and payload, as the device's resend): the bodies' ids are replaced
        head = b'{"id":"'
        made = [post_body(n) for n in range(bodies)]
        assert all(body.startswith(head + b"100") for body in made)
        self.bodies = [body[len(head) + 6 :] for body in made]  # what follows the id
        self.head = head
        self.posts = 0
        self.topic = topic
        self.at = 0
        self.packet_id = 0
        self.sent: dict[int, int] = {}  # packet id -> perf_counter_ns at send
        self.latencies_ns: list[int] | None = None  # recording while a list
        self.acked = 0
        self._rest = b""

    def send(self) -> None:
        assert self.transport is not None
        self.packet_id = self.packet_id % 0xFFFF + 1
        if self.packet_id in self.sent:  # 65,535 unanswered: not a measurement any more
            return
        self.posts += 1
        body = self.head + str(1_000_000_000 + self.posts).encode() + self.bodies[self.at]
        packet = wire.publish(self.topic, body, qos=1, packet_id=self.packet_id)
        self.at = (self.at + 1) % len(self.bodies)
        self.sent[self.packet_id] = time.perf_counter_ns()
        self.transport.write(packet)

    def on_data(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        if self._rest:
            data = self._rest + data
        start = 0
        for end in wire.packet_ends(data):
            if data[start] >> 4 == 4:  # PUBACK
                packet_id = int.from_bytes(data[start + 2 : start + 4], "big")
                began = self.sent.pop(packet_id, None)
                if began is not None and self.latencies_ns is not None:
                    self.latencies_ns.append(now - began)
                    self.acked += 1
            start = end
        self._rest = data[start:]


async def acked_posts(server: Server, options: Options, *, burst: bool) -> Measurement:
    """``acking_devices`` devices send QoS 1 property posts at ``ack_rate`` a second in all;
    each PUBACK is timed from its PUBLISH. Each device posts at its own phase, so posts come
    evenly (a millisecond's at a time), or with ``burst`` all devices post at the same instant,
    a round every ``acking_devices / ack_rate`` seconds (10 ms by default). On Hongshan a
    PUBACK follows the history's commit of the post's values (group commit); Mosquitto
    acknowledges at once."""
    n = options.acking_devices
    bodies = 256  # distinct bodies per device (each post's id is its own)

    def device(i: int) -> Callable[[], Client]:
        name = device_name(i)
        topic = f"/sys/{PRODUCT_KEY}/{name}/thing/event/property/post"
        hello = signed_connect(i) if server.name == "hongshan" else wire.connect(f"ack-{name}")
        return lambda: AckingDevice(hello, topic, bodies)

    connected = await connect_all(
        [device(i) for i in range(n)],
        server.port,
        concurrency=options.concurrency,
        within=options.connect_timeout,
    )
    clients = [c for c in connected.clients if isinstance(c, AckingDevice)]
    if len(clients) < n:
        detail = connected.failures[0] if connected.failures else "timed out"
        raise RuntimeError(f"{len(clients)} of {n} devices connected: {detail}")
    tick = n / options.ack_rate if burst else 0.001
    loop = asyncio.get_running_loop()
    sent = 0
    started = loop.time()
    result = Measurement()
    cpu = CpuWindow(server)
    measuring_from = started + options.warmup
    measuring_to = measuring_from + options.duration
    recording = False
    while (now := loop.time()) < measuring_to:
        if not recording and now >= measuring_from:
            recording = True
            cpu.start()
            for c in clients:
                c.latencies_ns = []
        if burst:  # every device, once a tick (a round made up later would be two posts
            # back to back on one connection, the second held by Nagle's algorithm)
            for c in clients:
                c.send()
        else:  # device i at i/n of its period: the posts due by now, round the devices
            due = int((now - started) * options.ack_rate) + 1
            while sent < due:
                clients[sent % n].send()
                sent += 1
        await asyncio.sleep(
            max(0.0, started + tick * round((now - started) / tick + 1) - loop.time())
        )
    cpu.stop(result)
    latencies = [ns for c in clients for ns in c.latencies_ns or []]
    result.values["msg/s"] = sum(c.acked for c in clients) / options.duration
    if latencies:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        result.values["p50 ms"] = cuts[49] / 1e6
        result.values["p99 ms"] = cuts[98] / 1e6
    unanswered = sum(len(c.sent) for c in clients)
    if unanswered:
        result.notes.append(f"{unanswered} posts unacknowledged at the end")
    await _close(clients, result)
    return result
