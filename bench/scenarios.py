"""The four scenarios. Each connects its clients, runs for a warm-up and then a fixed measured
duration, stops itself, and returns the figures of one server.

Throughput is counted at the subscribers (deliveries), over the measured window only; CPU time
of the server and of this generator is taken over the same window, to show which one is busy.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psutil

from bench import wire
from bench.clients import (
    AckedPublisher,
    AckingSubscriber,
    Client,
    Flow,
    Publisher,
    Subscriber,
    connect_all,
)
from bench.servers import Credentials, Server

CREDENTIALS = Credentials(username="bench-device", password="bench-secret-0123")


@dataclass(frozen=True)
class Options:
    duration: float = 5.0
    warmup: float = 1.0
    publishers: int = 100
    window: int = 10  # QoS 1 PUBLISHes per publisher awaiting PUBACK
    backlog: int = 10  # QoS 0 fan-in: messages per publisher sent but not yet delivered
    batch: int = 10  # QoS 0 PUBLISHes per write
    subscribers: int = 1000
    fanout_depth: int = 20  # messages per fan-out subscriber the server may be behind
    idle_clients: int = 10_000
    devices: int = 10_000  # devices that log in with a signed CONNECT
    posting_devices: int = 1_000  # devices posting properties
    acking_devices: int = 100  # devices posting at QoS 1, each PUBACK timed
    ack_rate: int = 10_000  # their posts per second, in all
    payload: int = 100
    concurrency: int = 100  # connection attempts in flight (the usual listen backlog)
    connect_timeout: float = 60.0


@dataclass
class Measurement:
    """One server's figures in one scenario. ``values`` is keyed by the metric names in run.py."""

    values: dict[str, float] = field(default_factory=dict)
    server_cpu: float = 0.0  # percent of one core, over the measured window
    generator_cpu: float = 0.0
    other_cpu: float = 0.0  # everything else on the machine (other processes, interrupts)
    lost: int = 0
    notes: list[str] = field(default_factory=list)


class CpuWindow:
    """CPU percent of the server and of this process between ``start`` and ``stop``."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.me = psutil.Process()

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.server0 = self.server.cpu_seconds()
        self.me0 = self._mine()
        self.machine0 = self._machine()

    def stop(self, into: Measurement) -> float:
        elapsed = time.perf_counter() - self.t0
        server = self.server.cpu_seconds() - self.server0
        mine = self._mine() - self.me0
        machine = self._machine() - self.machine0
        into.server_cpu = 100 * server / elapsed
        into.generator_cpu = 100 * mine / elapsed
        into.other_cpu = max(0.0, 100 * (machine - server - mine) / elapsed)
        return elapsed

    @staticmethod
    def _machine() -> float:
        """CPU seconds spent by the whole machine, all cores (steal counts as busy)."""
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def _mine(self) -> float:
        times = self.me.cpu_times()
        return float(times.user + times.system)


async def fan_in(server: Server, options: Options, qos: int) -> Measurement:
    """``publishers`` clients publish to ``bench/<i>``; one subscriber on ``bench/#``."""
    flow = Flow(cap=options.publishers * (options.window if qos else options.backlog))
    payload = bytes(options.payload)

    def publisher(i: int) -> Callable[[], Client]:
        hello = wire.connect(f"bench-pub-{i}")
        if qos == 0:
            batch = wire.publish(f"bench/{i}", payload) * options.batch
            return lambda: Publisher(hello, batch, options.batch)
        message = wire.TimedPublish(f"bench/{i}", options.payload)
        return lambda: AckedPublisher(hello, flow, message, options.window)

    sink = AckingSubscriber if qos else Subscriber
    subscriber_hello = wire.connect("bench-sub")
    subscription = wire.subscribe(["bench/#"], qos)
    factories = [publisher(i) for i in range(options.publishers)]
    subscribers = await _connect(
        [lambda: sink(subscriber_hello, subscription, flow)], server, options
    )
    publishers = await _connect(factories, server, options)
    for p in publishers:
        assert isinstance(p, Publisher)
        flow.add(p)
    result = await _run_flow(flow, server, options)
    rate = result.values.pop("rate")
    result.values["msg/s"] = rate
    if qos and flow.latencies_ns:
        cuts = statistics.quantiles(flow.latencies_ns, n=100, method="inclusive")
        result.values["p50 ms"] = cuts[49] / 1e6
        result.values["p99 ms"] = cuts[98] / 1e6
    await _close([*subscribers, *publishers], result)
    return result


async def fan_out(server: Server, options: Options) -> Measurement:
    """One publisher on ``bench/fanout``; ``subscribers`` clients subscribed to it, QoS 0."""
    flow = Flow(cap=options.subscribers * options.fanout_depth, fanout=options.subscribers)
    subscription = wire.subscribe(["bench/fanout"], 0)

    def subscriber(i: int) -> Callable[[], Client]:
        hello = wire.connect(f"bench-sub-{i}")
        return lambda: Subscriber(hello, subscription, flow)

    subscribers = await _connect(
        [subscriber(i) for i in range(options.subscribers)], server, options
    )
    hello = wire.connect("bench-pub")
    batch = wire.publish("bench/fanout", bytes(options.payload)) * options.batch
    publishers = await _connect([lambda: Publisher(hello, batch, options.batch)], server, options)
    for p in publishers:
        assert isinstance(p, Publisher)
        flow.add(p)
    result = await _run_flow(flow, server, options)
    result.values["deliveries/s"] = result.values.pop("rate")
    await _close([*subscribers, *publishers], result)
    return result


async def idle(server: Server, options: Options) -> Measurement:
    """``idle_clients`` authenticated clients, two subscriptions each, then nothing.

    Connects are timed CONNECT→CONNACK with ``concurrency`` attempts in flight; the SUBSCRIBEs
    follow once every client is in. Memory is the server's RSS growth divided by the clients."""
    result = Measurement()
    n = options.idle_clients

    def client(i: int) -> Callable[[], Client]:
        hello = wire.connect(
            f"bench-idle-{i}",
            username=CREDENTIALS.username,
            password=CREDENTIALS.password,
            keep_alive=600,
        )
        subscription = wire.subscribe([f"town/{i}/cmd", f"town/{i}/config"], 1)
        return lambda: Client(hello, subscription, subscribe_now=False)

    # A few clients first, so lazy imports and first-use caches are not counted per connection.
    warm = await connect_all(
        [client(n + i) for i in range(20)],
        server.port,
        concurrency=20,
        within=30,
        wait_for_suback=False,
    )
    if not warm.clients:
        raise RuntimeError(f"no client could connect: {warm.failures[:1] or 'timed out'}")
    for c in warm.clients:
        c.subscribe()
    await asyncio.wait([c.suback for c in warm.clients], timeout=10)
    await _close(warm.clients)
    await asyncio.sleep(0.5)
    rss_before = server.rss()

    factories = [client(i) for i in range(n)]  # encoded before the clock starts
    cpu = CpuWindow(server)
    cpu.start()
    connected = await connect_all(
        factories,
        server.port,
        concurrency=options.concurrency,
        within=options.connect_timeout,
        wait_for_suback=False,
    )
    cpu.stop(result)
    clients = connected.clients
    if connected.failures:
        result.notes.append(f"{len(connected.failures)} connects failed: {connected.failures[0]}")
    if len(clients) < n:
        result.notes.append(f"only {len(clients)} of {n} connected")
    if clients:
        result.values["connects/s"] = len(clients) / (connected.finished - connected.started)
        for c in clients:
            c.subscribe()
        _, pending = await asyncio.wait(
            [c.suback for c in clients], timeout=options.connect_timeout
        )
        if pending:
            result.notes.append(f"{len(pending)} SUBACKs missing")
        await asyncio.sleep(1.0)  # let the server settle after the burst
        rss_after = server.rss()
        result.values["KB/conn"] = (rss_after - rss_before) / len(clients) / 1024
        result.values["RSS MiB before"] = rss_before / 2**20
        result.values["RSS MiB after"] = rss_after / 2**20
    await _close(clients, result)
    return result


async def _connect(
    factories: Sequence[Callable[[], Client]], server: Server, options: Options
) -> list[Client]:
    connected = await connect_all(
        factories, server.port, concurrency=options.concurrency, within=options.connect_timeout
    )
    if connected.failures or len(connected.clients) < len(factories):
        detail = connected.failures[0] if connected.failures else "timed out"
        raise RuntimeError(
            f"{len(connected.clients)} of {len(factories)} clients connected: {detail}"
        )
    return connected.clients


async def _run_flow(flow: Flow, server: Server, options: Options) -> Measurement:
    """Start the flow, warm up, measure, stop, drain. ``values["rate"]`` is deliveries/s."""
    result = Measurement()
    cpu = CpuWindow(server)
    watchdog = asyncio.create_task(_write_off_stalls(flow, result))
    gc.disable()  # the generator makes no cycles worth collecting mid-run
    try:
        flow.running = True
        flow.pump()
        await asyncio.sleep(options.warmup)
        delivered = flow.delivered
        cpu.start()
        flow.measuring = True
        await asyncio.sleep(options.duration)
        elapsed = cpu.stop(result)
        result.values["rate"] = (flow.delivered - delivered) / elapsed
        flow.measuring = False
        flow.stop()
        async with asyncio.timeout(3):
            await flow.drained.wait()
    except TimeoutError:
        pass
    finally:
        gc.enable()
        watchdog.cancel()
    owed = flow.owed()
    if owed < 0:
        result.notes.append(f"{-owed} more deliveries than published (duplicates)")
    else:
        result.lost += owed
    if result.lost:
        result.notes.append(f"{result.lost} deliveries never arrived")
    return result


async def _write_off_stalls(flow: Flow, result: Measurement, stall: float = 0.3) -> None:
    """If deliveries stop while the flow is blocked on them, the server dropped them: write
    them off so publishing resumes, and report them as lost."""
    last = -1
    since = time.monotonic()
    while True:
        await asyncio.sleep(0.05)
        if flow.delivered != last or flow.owed() == 0:
            last = flow.delivered
            since = time.monotonic()
        elif flow.running and time.monotonic() - since > stall:
            result.lost += flow.write_off()
            since = time.monotonic()


async def _close(clients: Sequence[Client], result: Measurement | None = None) -> None:
    dropped = sum(c.lost for c in clients)
    if dropped and result is not None:
        result.notes.append(f"the server closed {dropped} connections during the run")
    farewell = wire.disconnect()
    for c in clients:
        c.close(farewell)
    if clients:
        await asyncio.wait([c.gone for c in clients], timeout=10)
