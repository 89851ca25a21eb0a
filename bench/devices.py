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

    connected = await connect_all(
        [device(i) for i in range(n)],
        server.port,
        concurrency=options.concurrency,
        within=options.connect_timeout,
    )
    if len(connected.clients) < n:
        detail = connected.failures[0] if connected.failures else "timed out"
        raise RuntimeError(f"{len(connected.clients)} of {n} devices connected: {detail}")
    for client in connected.clients:
        assert isinstance(client, PostingDevice)
        flow.add(client)
    result = await _run_flow(flow, server, options)
    result.values["posts/s"] = result.values.pop("rate")
    await _close(connected.clients, result)
    return result
