"""``python -m bench.fanout``: a scene-like switch of a town's lamps — one command to every
device of a product, as a batch through ``/api/commands`` — timed until the last lamp's reply
is in its record (issue 14: 10,000 lamps switched without flooding the broker or the devices).

Hongshan runs as its own process (``hongshan serve``, its registry seeded with ``--lamps``
devices, as ``bench/devices.py`` does); the lamps are lightweight asyncio MQTT clients in this
process (the generator's raw clients, signed CONNECTs with ``_ss=1``, so each is subscribed to
its system topics as the Link SDKs are). Each lamp acknowledges the property set (QoS 1) and
answers it on ``…/property/set_reply``, after ``--answer-delay`` ms. Printed: the time until
the last lamp received its command, until the last replied, until the batch counted every
reply; the commands a second; and the most commands the lamps held unanswered at once, beside
the pacing (``--max-in-flight``, ``--rate``), which it must not pass.

Full size: ``python -m bench.fanout --lamps 10000``; a smoke run: ``--lamps 200``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx

from bench import wire
from bench.clients import Client, connect_all
from bench.devices import PRODUCT_KEY, device_name, seed, signed_connect
from bench.servers import free_port, raise_open_files_limit, started


class Lamp(Client):
    """A lamp that acknowledges each property set and answers it (code 200), ``delay`` s
    later; ``shared`` counts the calls it holds unanswered, across every lamp."""

    def __init__(self, hello: bytes, name: str, delay: float, shared: dict[str, Any]) -> None:
        super().__init__(hello)
        self.name = name
        self.delay = delay
        self.shared = shared
        self._rest = b""
        self._puback = wire.puback_header()

    def on_data(self, data: bytes) -> None:
        data = self._rest + data
        start = 0
        for end in wire.packet_ends(data):
            if data[start] >> 4 == wire.PUBLISH:
                packet = wire.decode_one(data[start:end])
                self._on_publish(packet)
            start = end
        self._rest = data[start:]

    def _on_publish(self, packet: Any) -> None:
        assert self.transport is not None
        if packet.qos:
            self.transport.write(self._puback + packet.packet_id.to_bytes(2, "big"))
        if not packet.topic.endswith("/thing/service/property/set"):
            return
        shared = self.shared
        shared["received"] += 1
        shared["last_received"] = time.perf_counter()
        shared["holding"] += 1
        shared["most_holding"] = max(shared["most_holding"], shared["holding"])
        call_id = json.loads(packet.payload)["id"]
        reply = wire.publish(
            packet.topic + "_reply",
            json.dumps({"id": call_id, "code": 200, "data": {}}).encode(),
        )
        loop = asyncio.get_running_loop()
        if self.delay:
            loop.call_later(self.delay, self._answer, reply)
        else:
            self._answer(reply)

    def _answer(self, reply: bytes) -> None:
        shared = self.shared
        shared["holding"] -= 1
        shared["last_replied"] = time.perf_counter()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


async def switch(
    mqtt_port: int, http_port: int, token: str, lamps: int, delay: float
) -> dict[str, Any]:
    shared: dict[str, Any] = {
        "received": 0,
        "holding": 0,
        "most_holding": 0,
        "last_received": 0.0,
        "last_replied": 0.0,
    }
    factories = [
        (lambda i=i: Lamp(signed_connect(i), device_name(i), delay, shared)) for i in range(lamps)
    ]
    connected = await connect_all(factories, mqtt_port, concurrency=100, within=300)
    if len(connected.clients) < lamps:
        raise SystemExit(f"only {len(connected.clients)} of {lamps} lamps connected")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}", headers=headers, timeout=60
    ) as api:
        began = time.perf_counter()
        sent = await api.post(
            "/api/commands",
            json={"target": {"productKey": PRODUCT_KEY}, "set": {"LightSwitch": 1}, "wait": 8},
        )
        sent.raise_for_status()
        batch = sent.json()
        accepted = time.perf_counter()
        while True:  # (a benchmark's poll of the batch's progress, not a test's wait)
            counts = (await api.get(f"/api/command-batches/{batch['id']}")).json()["counts"]
            unsettled = counts.get("queued", 0) + counts.get("sent", 0)
            if not unsettled:
                break
            await asyncio.sleep(0.1)
        counted = time.perf_counter()
    for client in connected.clients:
        client.close(wire.disconnect())
    return {
        "lamps": lamps,
        "batch accepted, s": accepted - began,
        "last lamp received its command, s": shared["last_received"] - began,
        "last lamp replied, s": shared["last_replied"] - began,
        "batch counted every reply, s": counted - began,
        "commands/s (to the last reply)": lamps / (shared["last_replied"] - began),
        "most calls held unanswered by the lamps": shared["most_holding"],
        "final counts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lamps", type=int, default=10_000)
    parser.add_argument("--max-in-flight", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="commands started a second")
    parser.add_argument("--answer-delay", type=float, default=50.0, help="ms before a reply")
    args = parser.parse_args()
    raise_open_files_limit()
    http_port = free_port()
    extra = [
        "--http-port", str(http_port),
        "--command-max-in-flight", str(args.max_in_flight),
        "--command-rate", str(args.rate),
    ]  # fmt: skip
    with started(
        "hongshan", prepare=lambda data: seed(data, args.lamps), extra=extra, startup_timeout=120
    ) as server:
        assert server.log_path is not None
        token = (Path(server.log_path).parent / "data" / "admin.token").read_text().strip()
        figures = asyncio.run(
            switch(server.port, http_port, token, args.lamps, args.answer_delay / 1000)
        )
    print(f"| pacing | max in flight {args.max_in_flight}, {args.rate:g} a second |")
    print(f"| answer delay | {args.answer_delay:g} ms |")
    for name, value in figures.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"| {name} | {shown} |")
    if figures["most calls held unanswered by the lamps"] > args.max_in_flight:
        raise SystemExit("the lamps held more calls than the pacing allows")


if __name__ == "__main__":
    main()
