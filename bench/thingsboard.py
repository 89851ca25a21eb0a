"""ThingsBoard telemetry (issue 13): devices of a product that speaks ThingsBoard's API post
five keys on ``v1/devices/me/telemetry`` at QoS 1, each keeping ``window`` PUBLISHes awaiting
their PUBACK; posts/s counted by the PUBACKs. Hongshan checks each post against the thing
model and acknowledges it once the history has committed its values (group commit); Mosquitto,
the anchor, gets the same PUBLISHes from plain clients, nobody subscribed, and acknowledges at
once. Beside the Alink ``posts`` figure: the same devices' work in the other dialect.

Hongshan's registry is seeded before it starts: product ``a1BenchTherm`` with five numeric
properties, devices ``therm-00000`` …, each with an access token derived from its number, so
that the generator logs in as ThingsBoard's SDKs do (the token as the MQTT username) without
being told the tokens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from bench import wire
from bench.clients import Client, Flow, Publisher
from bench.devices import posts_counted
from bench.scenarios import Measurement, Options
from bench.servers import Server

PRODUCT_KEY = "a1BenchTherm"
TOPIC = "v1/devices/me/telemetry"
BODY = json.dumps(
    {"temperature": 21.5, "humidity": 40, "pressure": 1013.25, "co2": 415, "battery": 87},
    separators=(",", ":"),
).encode()


def device_name(i: int) -> str:
    return f"therm-{i:05d}"


def access_token(i: int) -> str:
    return hashlib.sha256(f"bench/thingsboard/{i}".encode()).hexdigest()[:20]


def thing_model() -> dict[str, object]:
    def number(identifier: str, kind: str) -> dict[str, object]:
        data_type = {"type": kind, "specs": {"min": "-100000", "max": "100000"}}
        return {
            "identifier": identifier,
            "name": identifier,
            "accessMode": "r",
            "dataType": data_type,
        }

    return {
        "profile": {"productKey": PRODUCT_KEY},
        "properties": [
            number("temperature", "double"),
            number("humidity", "int"),
            number("pressure", "double"),
            number("co2", "int"),
            number("battery", "int"),
        ],
        "events": [],
        "services": [],
    }


def seed(data_dir: Path, devices: int) -> None:
    """The thingsboard product and ``devices`` devices, in the registry Hongshan will open."""
    from hongshan.identity.secret_box import SecretBox, load_or_create_key
    from hongshan.store.registry.store import SQLRegistry
    from hongshan.things.model import Protocol
    from hongshan.things.tsl import ThingModel

    async def run() -> None:
        box = SecretBox(load_or_create_key(data_dir / "secret.key"))
        registry = await SQLRegistry.open(f"sqlite:///{data_dir / 'registry.db'}", box)
        try:
            await registry.create_product(
                "Bench thermostat",
                product_key=PRODUCT_KEY,
                protocol=Protocol.THINGSBOARD,
                thing_model=ThingModel.from_json(thing_model()),
            )
            for i in range(devices):
                await registry.create_device(
                    PRODUCT_KEY, device_name(i), access_token=access_token(i)
                )
        finally:
            await registry.close()

    asyncio.run(run())


class TelemetryDevice(Publisher):
    """Keeps ``window`` QoS 1 telemetry PUBLISHes awaiting PUBACK; each PUBACK is a post done
    (a delivery to the flow), and frees room for the next."""

    def __init__(self, hello: bytes, flow: Flow, window: int) -> None:
        super().__init__(hello, b"", 1)
        template = wire.publish(TOPIC, BODY, qos=1, packet_id=0x0102)
        id_at = len(template) - len(BODY) - 2  # 3.1.1: packet id, then the payload
        assert template[id_at : id_at + 2] == b"\x01\x02"
        self.prefix, self.suffix = template[:id_at], template[id_at + 2 :]
        self.flow = flow
        self.free = window
        self.packet_id = 0
        self._rest = b""

    def can_send(self) -> bool:
        return self.free > 0

    def send(self, room: int) -> int:
        assert self.transport is not None
        count = min(room, self.free)
        parts: list[bytes] = []
        packet_id = self.packet_id
        for _ in range(count):
            packet_id = packet_id % 0xFFFF + 1
            parts += (self.prefix, wire.PACKET_IDS[packet_id], self.suffix)
        self.packet_id = packet_id
        self.free -= count
        self.transport.write(b"".join(parts))
        return count

    def on_data(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        acks, end = wire.walk(data, wire.PUBACK)
        self._rest = data[end:]
        if acks:
            self.free += acks
            if not self.queued:
                self.queued = True
                self.flow.ready.append(self)
            self.flow.on_delivered(acks)


async def telemetry_posts(server: Server, options: Options) -> Measurement:
    """``posting_devices`` devices post telemetry at QoS 1, ``window`` unacknowledged each;
    posts/s counted by their PUBACKs."""
    n = options.posting_devices
    flow = Flow(cap=n * options.window)

    def device(i: int) -> Callable[[], Client]:
        if server.name == "hongshan":
            hello = wire.connect(f"tb-{i}", username=access_token(i))
        else:
            hello = wire.connect(f"tb-{device_name(i)}")
        return lambda: TelemetryDevice(hello, flow, options.window)

    return await posts_counted(
        [device(i) for i in range(n)], TelemetryDevice, flow, server, options
    )
