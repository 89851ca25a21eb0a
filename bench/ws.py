"""``python -m bench.ws``: what the live API (``/api/ws``) costs the town — devices' property
posts with ``--sockets`` live sockets subscribed to everything, beside the same load with none.

Hongshan runs as ``hongshan serve`` with a seeded registry (``bench.devices``: the streetlight
product, signed devices). The sockets are the ``websockets`` library's asyncio client, in a
process of their own (so that reading them takes nothing from the devices' load generator);
each subscribes to every device's properties and counts what it receives, and each frame's
delivery latency is the time it arrived less its ``ts`` (the server's clock at the post's
arrival, since the bench's posts carry no time; one clock, one machine: millisecond
resolution).

Figures, without sockets and with them, each on a server of its own:

- **paced**: ``--acking-devices`` post at QoS 1, ``--rate`` posts/s in all (1,000), each
  PUBACK timed: PUBACKs/s, p50 / p99, the server's CPU; with sockets, the messages delivered
  a second (in all) and the frames they came in (a batch is one), their delivery p50 / p99,
  and the sockets dropped as too slow;
- **flood**: ``--devices`` post at QoS 0 as fast as the server answers: the posts/s the
  platform ingests (``bench.devices.property_posts``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection

from bench.devices import acked_posts, property_posts, seed
from bench.scenarios import Measurement, Options
from bench.servers import Server, admin_token, free_port, with_http

SAMPLES = 200_000  # delivery latencies kept at most (every socket's, in arrival order)


# -- the sockets, in a process of their own ------------------------------------------------


def _watch(url: str, token: str, sockets: int, control: Connection) -> None:
    asyncio.run(_watching(url, token, sockets, control))


async def _watching(url: str, token: str, sockets: int, control: Connection) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    counts = [0] * sockets  # messages
    frames = [0] * sockets
    latencies: list[float] = []
    closed: list[str] = []
    headers = {"Authorization": f"Bearer {token}"}

    async def one(index: int, ready: asyncio.Event) -> None:
        async with connect(url, additional_headers=headers, max_size=None) as socket:
            await socket.send(json.dumps({"op": "subscribe", "id": "all", "topic": "properties"}))
            await socket.recv()  # subscribed
            ready.set()
            try:
                async for frame in socket:
                    now = time.time() * 1000
                    decoded = json.loads(frame)
                    # one message, or a batch of them (docs/api-live.md)
                    items = decoded["items"] if decoded.get("type") == "batch" else [decoded]
                    counts[index] += len(items)
                    frames[index] += 1
                    for item in items:
                        if len(latencies) < SAMPLES and "ts" in item:
                            latencies.append(now - item["ts"])
            except ConnectionClosed as gone:
                closed.append(str(gone))

    readies = [asyncio.Event() for _ in range(sockets)]
    tasks = [asyncio.create_task(one(i, ready)) for i, ready in enumerate(readies)]
    await asyncio.gather(*(ready.wait() for ready in readies))
    control.send("ready")
    loop = asyncio.get_running_loop()
    while True:  # "start" (counts from zero), then "stop"
        word = await loop.run_in_executor(None, control.recv)
        if word == "start":
            counts[:] = [0] * sockets
            frames[:] = [0] * sockets
            latencies.clear()
            started = time.monotonic()
        else:
            seconds = time.monotonic() - started
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    control.send((sum(counts), sum(frames), seconds, latencies, closed))


@contextmanager
def watching(http_port: int, token: str, sockets: int) -> Iterator[Connection]:
    """``sockets`` subscribed sockets in another process; send it "start" and "stop", then
    receive (messages, frames, seconds, latencies, closes)."""
    control, theirs = multiprocessing.Pipe()
    url = f"ws://127.0.0.1:{http_port}/api/ws"
    process = multiprocessing.Process(target=_watch, args=(url, token, sockets, theirs))
    process.start()
    try:
        if not control.poll(60) or control.recv() != "ready":
            raise RuntimeError("the sockets did not subscribe within 60 s")
        yield control
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()


# -- a run ---------------------------------------------------------------------------------


@contextmanager
def _serve(devices: int, http_port: int, sockets: int) -> Iterator[Server]:
    # every socket is the admin token's, from one address: the server's bounds on both raised
    # to the sockets' number (a town's browsers are many users at many addresses)
    os.environ["HONGSHAN_WS_MAX_SOCKETS_PER_PRINCIPAL"] = str(max(sockets, 1))
    os.environ["HONGSHAN_HTTP_MAX_CONNECTIONS_PER_ADDRESS"] = str(max(sockets + 16, 64))
    with with_http(http_port, prepare=lambda data_dir: seed(data_dir, devices)) as server:
        yield server


def paced(args: argparse.Namespace, sockets: int) -> tuple[Measurement, str]:
    """The paced posts' figures, and (with sockets) what the sockets received."""
    http_port = free_port()
    options = Options(
        acking_devices=args.acking_devices, ack_rate=args.rate, duration=args.duration
    )
    with _serve(args.acking_devices, http_port, sockets) as server:
        if not sockets:
            return asyncio.run(acked_posts(server, options, burst=False)), "none"
        with watching(http_port, admin_token(server), sockets) as control:
            control.send("start")
            measured = asyncio.run(acked_posts(server, options, burst=False))
            control.send("stop")
            messages, frames, seconds, latencies, closed = control.recv()
    delivered = f"{messages / seconds:,.0f}/s in {frames / seconds:,.0f} frames/s"
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        delivered += f", {cuts[49]:,.1f} / {cuts[98]:,.1f} ms"
    return measured, f"{delivered}, {len(closed)} dropped"


def flood(args: argparse.Namespace, sockets: int) -> Measurement:
    http_port = free_port()
    options = Options(posting_devices=args.devices, duration=args.duration)
    with _serve(args.devices, http_port, sockets) as server:
        if not sockets:
            return asyncio.run(property_posts(server, options))
        with watching(http_port, admin_token(server), sockets) as control:
            control.send("start")
            measured = asyncio.run(property_posts(server, options))
            control.send("stop")
            control.recv()
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ws", description=__doc__)
    parser.add_argument("--sockets", type=int, default=100, help="live sockets (default 100)")
    parser.add_argument("--acking-devices", type=int, default=100, help="paced devices")
    parser.add_argument("--rate", type=int, default=1000, help="paced posts/s in all")
    parser.add_argument("--devices", type=int, default=1000, help="flooding devices")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    args = parser.parse_args(argv)
    print(
        "| sockets | paced: PUBACKs/s (server CPU) | PUBACK p50 / p99 ms "
        "| delivered messages/s in frames/s, p50 / p99 ms, dropped | flood: posts/s (server CPU) |"
    )
    print("|---|---|---|---|---|")
    for sockets in (0, args.sockets):
        measured, delivered = paced(args, sockets)
        posts = flood(args, sockets)
        print(
            f"| {sockets} | {measured.values['msg/s']:,.0f} ({measured.server_cpu:.0f} %) "
            f"| {measured.values.get('p50 ms', 0):,.1f} / {measured.values.get('p99 ms', 0):,.1f} "
            f"| {delivered} | {posts.values['posts/s']:,.0f} ({posts.server_cpu:.0f} %) |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
