"""``python -m bench.rules_e2e``: the rules engine end to end (issue 14) — Alink property posts
with 100 rules beside the same load with none, and the time from a device's post to the
webhook its rule calls.

Hongshan runs as ``hongshan serve`` with a seeded registry (``bench.devices``: the streetlight
product, signed devices) and, for the rules run, ``--rules`` rules kept in it before it starts.
Every rule listens where every post is heard — half on Alibaba's rules-engine topic
(``/{pk}/+/thing/event/property/post``, the thing-model data), half on the platform's stream
(``$things/{pk}/+/properties``) — with a WHERE no bench post meets, so each post is evaluated
by every rule: the worst case of a town whose rules all watch one product. One more rule, the
probe's, fires on the probe device's posts only: it calls a webhook and raises an alarm (a
repeat of the open one after the first), whose notification route posts each stored change to
another webhook.

Two figures, each without rules and with them:

- **flood**: devices post at QoS 0 as fast as the server answers (``bench.devices.
  property_posts``): the posts/s the platform sustains;
- **paced**: ``--acking-devices`` post at QoS 1, ``--rate`` posts/s in all, each PUBACK timed;
  meanwhile the probe device posts ``--probe-rate`` times a second, and each post's arrival at
  the webhook receiver (another process, timed by the wall clock both share) gives post →
  webhook and post → alarm stored (its notification's arrival) p50 and p99 (target p99 under
  1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import wire
from bench.clients import Client
from bench.devices import (
    PRODUCT_KEY,
    acked_posts,
    device_name,
    property_posts,
    seed,
    signed_connect,
)
from bench.scenarios import Measurement, Options
from bench.servers import started

TARGET_P99_S = 1.0


def rule_specs(count: int, hook_url: str, probe: str) -> list[Any]:
    """``count`` rules that read every post and never fire, and the probe's rule."""
    from hongshan.rules.definition import AlarmAction, RuleSpec, WebhookAction

    specs = []
    for i in range(count):
        if i % 2:
            sql = (
                "SELECT deviceName() AS device, items.Brightness.value AS b "
                f'FROM "/{PRODUCT_KEY}/+/thing/event/property/post" '
                f"WHERE items.Brightness.value > {100 + i}"
            )
        else:
            sql = (
                "SELECT deviceName() AS device, values.Voltage AS v "
                f'FROM "$things/{PRODUCT_KEY}/+/properties" WHERE values.Voltage > {230 + i}'
            )
        specs.append(RuleSpec(name=f"quiet-{i:03d}", sql=sql))
    specs.append(
        RuleSpec(
            name="probe",
            sql=(
                "SELECT values.Energy AS seq, deviceName() AS device "
                f'FROM "$things/{PRODUCT_KEY}/{probe}/properties" WHERE values.WorkMode = 0'
            ),
            actions=[
                WebhookAction(url=hook_url + "/rule", timeout=5.0, retries=0),
                AlarmAction(alarm_type="probe", severity="minor"),
            ],
            max_per_second=1000.0,
        )
    )
    return specs


def prepare(devices: int, specs: list[Any], hook_url: str) -> Callable[[Path], None]:
    """Seed the devices, the rules, and (with rules) the alarms' notification route."""

    def run(data_dir: Path) -> None:
        from hongshan.alarms.routes import RouteSpec
        from hongshan.identity.secret_box import SecretBox, load_or_create_key
        from hongshan.store.registry.store import SQLRegistry

        seed(data_dir, devices)

        async def rules() -> None:
            box = SecretBox(load_or_create_key(data_dir / "secret.key"))
            registry = await SQLRegistry.open(f"sqlite:///{data_dir / 'registry.db'}", box)
            try:
                for spec in specs:
                    await registry.rules.create(spec, "bench-secret")
                if specs:
                    route = RouteSpec(
                        name="probe",
                        kind="webhook",
                        url=hook_url + "/alarm",
                        changes=["raised", "repeated"],
                        retries=0,
                    )
                    await registry.alarm_routes.create(route, "bench-secret")
            finally:
                await registry.close()

        asyncio.run(rules())

    return run


# -- the webhook's receiver, in a process of its own ----------------------------------------


def _receive(port_out: Connection, times_out: Connection) -> None:
    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            at = time.time()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            fields = json.loads(body)
            if self.path.endswith("/alarm"):  # (a notification: the alarm's stored change)
                times_out.send(("alarm", int(fields["details"]["seq"]), at))
            else:
                times_out.send(("rule", int(fields["seq"]), at))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    port_out.send(server.server_address[1])
    server.serve_forever()


class Receiver:
    def __init__(self) -> None:
        port_in, port_out = multiprocessing.Pipe(duplex=False)
        self._times_in, times_out = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.Process(
            target=_receive, args=(port_out, times_out), daemon=True
        )
        self._process.start()
        self.url = f"http://127.0.0.1:{port_in.recv()}/hook"

    def arrivals(self) -> dict[str, dict[int, float]]:
        """The times each probe's webhook ("rule") and alarm notification ("alarm") came."""
        found: dict[str, dict[int, float]] = {"rule": {}, "alarm": {}}
        while self._times_in.poll():
            kind, seq, at = self._times_in.recv()
            found[kind][seq] = at
        return found

    def close(self) -> None:
        self._process.terminate()
        self._process.join()


# -- the probe ---------------------------------------------------------------------------


class ProbeDevice(Client):
    """Posts WorkMode 0 (the bench's other posts say 2) with its sequence number as Energy,
    at QoS 1; keeps each send's time."""

    def __init__(self, index: int) -> None:
        super().__init__(signed_connect(index))
        self.topic = f"/sys/{PRODUCT_KEY}/{device_name(index)}/thing/event/property/post"
        self.sent: dict[int, float] = {}
        self.seq = 0

    def send(self) -> None:
        assert self.transport is not None
        self.seq += 1
        body = {
            "id": str(self.seq),
            "version": "1.0",
            "params": {"WorkMode": 0, "Energy": float(self.seq)},
            "method": "thing.event.property.post",
        }
        packet = wire.publish(
            self.topic, json.dumps(body).encode(), qos=1, packet_id=self.seq % 0xFFFF + 1
        )
        self.sent[self.seq] = time.time()
        self.transport.write(packet)

    def on_data(self, data: bytes) -> None:
        pass  # (PUBACKs and replies: the webhook's arrival is what is timed)


async def probing(port: int, index: int, rate: float, options: Options) -> ProbeDevice:
    loop = asyncio.get_running_loop()
    _, probe = await loop.create_connection(lambda: ProbeDevice(index), "127.0.0.1", port)
    await probe.ready
    await asyncio.sleep(options.warmup)
    until = loop.time() + options.duration
    while loop.time() < until:
        probe.send()
        await asyncio.sleep(1 / rate)
    return probe


# -- a run -------------------------------------------------------------------------------


async def paced(port_server: Any, options: Options, probe_index: int, probe_rate: float) -> Any:
    load = asyncio.ensure_future(acked_posts(port_server, options, burst=False))
    probe = await probing(port_server.port, probe_index, probe_rate, options)
    return await load, probe


def run(args: argparse.Namespace) -> list[str]:
    devices = max(args.devices, args.acking_devices) + 1
    probe_index = devices - 1
    probe = device_name(probe_index)
    receiver = Receiver()
    lines = []
    try:
        for rules in (0, args.rules):
            specs = rule_specs(rules, receiver.url, probe) if rules else []
            # each figure on a server of its own: a flood leaves the history a backlog to
            # commit, which the paced posts' PUBACKs would wait behind
            with started("hongshan", prepare=prepare(devices, specs, receiver.url)) as server:
                options = Options(
                    acking_devices=args.acking_devices,
                    ack_rate=args.rate,
                    duration=args.duration,
                )
                receiver.arrivals()  # (none: a fresh count)
                measured, device = asyncio.run(paced(server, options, probe_index, args.probe))
                time.sleep(2.0)  # the last probes' webhooks
                arrivals = receiver.arrivals()
            with started("hongshan", prepare=prepare(devices, specs, receiver.url)) as server:
                flood = Options(posting_devices=args.devices, duration=args.duration)
                posts = asyncio.run(property_posts(server, flood))
            lines.append(_row(rules, posts, measured, device, arrivals))
    finally:
        receiver.close()
    return lines


def _row(
    rules: int,
    posts: Measurement,
    paced: Measurement,
    probe: ProbeDevice,
    arrivals: dict[str, dict[int, float]],
) -> str:
    return (
        f"| {rules} | {posts.values['posts/s']:,.0f} ({posts.server_cpu:.0f} %) "
        f"| {paced.values['msg/s']:,.0f} | {paced.values.get('p50 ms', 0):,.1f} / "
        f"{paced.values.get('p99 ms', 0):,.1f} "
        f"| {_waits(probe, arrivals['rule']) if rules else 'none'} "
        f"| {_waits(probe, arrivals['alarm']) if rules else 'none'} |"
    )


def _waits(probe: ProbeDevice, arrivals: dict[int, float]) -> str:
    """p50 / p99 ms from the probe's posts to their arrivals, and how many came."""
    waits = [arrivals[seq] - at for seq, at in probe.sent.items() if seq in arrivals]
    missing = len(probe.sent) - len(waits)
    if len(waits) < 2:
        return f"{len(waits)} of {len(probe.sent)} arrived"
    cuts = statistics.quantiles(waits, n=100, method="inclusive")
    came = f"{len(waits)}, {missing} missing" if missing else f"{len(waits)}"
    return f"{cuts[49] * 1000:,.1f} / {cuts[98] * 1000:,.1f} ({came})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rules_e2e", description=__doc__)
    parser.add_argument("--rules", type=int, default=100, help="quiet rules (default 100)")
    parser.add_argument("--devices", type=int, default=1000, help="flooding devices")
    parser.add_argument("--acking-devices", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10_000, help="paced posts/s in all")
    parser.add_argument("--probe", type=float, default=20.0, help="probe posts/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    args = parser.parse_args(argv)
    print(
        "| rules | flood: posts/s (server CPU) | paced: PUBACKs/s | PUBACK p50 / p99 ms "
        "| post → webhook p50 / p99 ms | post → alarm stored p50 / p99 ms |"
    )
    print("|---|---|---|---|---|---|")
    for line in run(args):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
