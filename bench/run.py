"""``python -m bench.run``: run the scenarios against each server and print a markdown table.

Progress goes to stderr; the table (for ``bench/RESULTS.md``) goes to stdout. Nothing is written
to disk except the servers' temporary directories, which are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import devices, scenarios, thingsboard
from bench.scenarios import CREDENTIALS, Measurement, Options
from bench.servers import MOSQUITTO, SERVERS, Server, raise_open_files_limit, started, unavailable


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # uvloop is a dependency wherever it installs
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


LOOP_FACTORY = _loop_factory()


BUSY = 20.0  # % CPU used by other processes over which a figure is flagged as unreliable


@dataclass(frozen=True)
class Metric:
    key: str  # the key in Measurement.values
    label: str
    higher_is_better: bool
    target: str  # printed as is; empty when there is none
    passes: Callable[[float, float | None], bool] | None = None  # (hongshan, ratio) -> ok


def _at_least(share: float) -> Callable[[float, float | None], bool]:
    return lambda _value, ratio: ratio is not None and ratio >= share


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Server, Options], Coroutine[Any, Any, Measurement]]
    metrics: tuple[Metric, ...]
    authenticated: bool = False
    prepare: Callable[[Path, Options], None] | None = None  # Hongshan's data dir, before start


SCENARIOS = (
    Scenario(
        "fanin0",
        "fan-in QoS 0, {publishers}→1",
        lambda server, o: scenarios.fan_in(server, o, qos=0),
        (Metric("msg/s", "delivered msg/s", True, "ratio ≥ 0.8", _at_least(0.8)),),
    ),
    Scenario(
        "fanin1",
        "fan-in QoS 1, {publishers}→1",
        lambda server, o: scenarios.fan_in(server, o, qos=1),
        (
            Metric("msg/s", "delivered msg/s", True, "ratio ≥ 0.8", _at_least(0.8)),
            Metric("p50 ms", "latency p50 ms", False, ""),
            Metric("p99 ms", "latency p99 ms", False, ""),
        ),
    ),
    Scenario(
        "fanout",
        "fan-out QoS 0, 1→{subscribers}",
        scenarios.fan_out,
        (Metric("deliveries/s", "deliveries/s", True, "ratio ≥ 0.8", _at_least(0.8)),),
    ),
    Scenario(
        "idle",
        "{idle_clients} idle clients, auth, 2 subs",
        scenarios.idle,
        (
            Metric("connects/s", "connects/s", True, "ratio ≥ 0.8", _at_least(0.8)),
            Metric("KB/conn", "RSS KB per connection", False, "≤ 6 KB", lambda v, _r: v <= 6),
        ),
        authenticated=True,
    ),
    Scenario(
        "signed",
        "{devices} devices log in (hongshan: signed, _ss=1; mosquitto: plain)",
        devices.signed_connects,
        (Metric("connects/s", "connects/s", True, "hongshan ≥ 5,000/s", lambda v, _r: v >= 5000),),
        prepare=lambda data_dir, o: devices.seed(data_dir, o.devices),
    ),
    Scenario(
        "posts",
        "{posting_devices} devices, property posts QoS 0 (mosquitto: echo)",
        devices.property_posts,
        (Metric("posts/s", "posts/s", True, "hongshan ≥ 50,000/s", lambda v, _r: v >= 50_000),),
        prepare=lambda data_dir, o: devices.seed(data_dir, o.posting_devices),
    ),
    Scenario(
        "tb-posts",
        "{posting_devices} ThingsBoard devices, telemetry QoS 1, 5 keys, {window} in flight each: "
        "PUBACK (hongshan: after the history's commit)",
        thingsboard.telemetry_posts,
        (Metric("posts/s", "acknowledged posts/s", True, ""),),
        prepare=lambda data_dir, o: thingsboard.seed(data_dir, o.posting_devices),
    ),
    *(
        Scenario(
            name,
            "{acking_devices} devices, QoS 1 posts at {ack_rate}/s, " + pacing + ": PUBACK "
            "(hongshan: after the history's commit)",
            functools.partial(devices.acked_posts, burst=burst),
            (
                Metric("msg/s", "acknowledged msg/s", True, ""),
                Metric("p50 ms", "PUBACK p50 ms", False, ""),
                Metric("p99 ms", "PUBACK p99 ms", False, ""),
            ),
            prepare=lambda data_dir, o: devices.seed(data_dir, o.acking_devices),
        )
        for name, pacing, burst in (
            ("acks", "each device at its own phase", False),
            ("acks-burst", "all devices at the same instant, round after round", True),
        )
    ),
)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    options = Options(
        duration=args.duration,
        warmup=args.warmup,
        publishers=args.publishers,
        window=args.window,
        backlog=args.backlog,
        fanout_depth=args.fanout_depth,
        subscribers=args.subscribers,
        idle_clients=args.clients,
        devices=args.devices,
        posting_devices=args.posting_devices,
        acking_devices=args.acking_devices,
        ack_rate=args.ack_rate,
        concurrency=args.concurrency,
        connect_timeout=args.connect_timeout,
    )
    chosen = [s for s in SCENARIOS if s.name in args.only]
    limit = raise_open_files_limit()
    if limit < options.idle_clients + 1000:
        options = replace(options, idle_clients=max(100, limit - 1000))
        _say(f"open-files limit is {limit}: idle clients reduced to {options.idle_clients}")
    started_at = datetime.now(UTC)
    skipped = {name: why for name in args.servers if (why := unavailable(name))}
    for name, why in skipped.items():
        _say(f"{name}: skipped ({why})")
    servers = [name for name in args.servers if name not in skipped]

    # Runs alternate between the servers, so a burst of other load on this shared machine
    # falls on both rather than on one; each figure is the median of its runs.
    runs: dict[tuple[str, str], list[Measurement]] = defaultdict(list)
    for scenario in chosen:
        for round_ in range(1, args.repeat + 1):
            for name in servers:
                _say(f"{scenario.name} on {name}, run {round_}/{args.repeat} …")
                runs[scenario.name, name].append(_run_one(scenario, name, options))
                _say(f"  {_summary(runs[scenario.name, name][-1])}")
    results = {key: _median(measurements) for key, measurements in runs.items()}
    print(_report(chosen, args, skipped, results, options, started_at, argv))
    return 0


def _median(runs: list[Measurement]) -> Measurement:
    """One measurement from several runs: the median of each figure, all notes, lost summed."""
    keys = dict.fromkeys(key for m in runs for key in m.values)
    combined = Measurement(
        values={
            key: statistics.median(m.values[key] for m in runs if key in m.values) for key in keys
        },
        server_cpu=statistics.median(m.server_cpu for m in runs),
        generator_cpu=statistics.median(m.generator_cpu for m in runs),
        other_cpu=statistics.median(m.other_cpu for m in runs),
        lost=sum(m.lost for m in runs),
    )
    first = next(iter(keys), None)
    if first is not None and len(runs) > 1:
        each = " / ".join(_fmt(m.values.get(first)) for m in runs)
        combined.notes.append(f"{first} per run: {each}")
    if "RSS MiB before" in keys:
        combined.notes.append(
            f"server RSS {combined.values['RSS MiB before']:.1f} → "
            f"{combined.values['RSS MiB after']:.1f} MiB"
        )
    combined.notes += dict.fromkeys(note for m in runs for note in m.notes)
    busiest = max(m.other_cpu for m in runs)
    if busiest > BUSY:
        combined.notes.append(f"⚠ other processes used up to {busiest:.0f}% CPU: unreliable")
    return combined


def _run_one(scenario: Scenario, server_name: str, options: Options) -> Measurement:
    credentials = CREDENTIALS if scenario.authenticated else None
    prepare = scenario.prepare
    try:
        with (
            started(
                server_name,
                credentials=credentials,
                prepare=None if prepare is None else lambda data_dir: prepare(data_dir, options),
            ) as server,
            asyncio.Runner(loop_factory=LOOP_FACTORY) as runner,
        ):
            return runner.run(scenario.run(server, options))
    except Exception as exc:  # one failed run must not lose the others' figures
        traceback.print_exc()
        return Measurement(notes=[f"failed: {type(exc).__name__}: {exc}"])


def _report(
    chosen: list[Scenario],
    args: argparse.Namespace,
    skipped: dict[str, str],
    results: dict[tuple[str, str], Measurement],
    options: Options,
    started_at: datetime,
    argv: list[str] | None,
) -> str:
    command = " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)])
    out = [
        f"### {started_at:%Y-%m-%d %H:%M} UTC — `{command}`",
        "",
        f"Machine: {os.cpu_count()} cores, {_cpu_model()}; Python {platform.python_version()}, "
        f"{'uvloop' if LOOP_FACTORY else 'asyncio'} generator; {_mosquitto_version()}; "
        f"{options.warmup:g} s warm-up + {options.duration:g} s measured per run, "
        f"median of {args.repeat} run{'s' if args.repeat > 1 else ''} per server.",
        "",
        "| scenario | metric | mosquitto | hongshan | hongshan / mosquitto | target | |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for scenario in chosen:
        title = scenario.title.format(**vars(options))
        for metric in scenario.metrics:
            mosquitto = _value(results, scenario.name, "mosquitto", metric.key)
            hongshan = _value(results, scenario.name, "hongshan", metric.key)
            ratio = hongshan / mosquitto if mosquitto and hongshan is not None else None
            verdict = ""
            if metric.passes is not None and hongshan is not None:
                verdict = "✅" if metric.passes(hongshan, ratio) else "❌"
            out.append(
                f"| {title} | {metric.label} | {_fmt(mosquitto)} | {_fmt(hongshan)} | "
                f"{'—' if ratio is None else f'{ratio:.2f}'} | {metric.target} | {verdict} |"
            )
            title = ""
    out += [
        "",
        "CPU over the measured window (% of one core; the idle row is its connect phase):",
        "",
        "| scenario | server | server CPU % | generator CPU % | other CPU % | notes |",
        "|---|---|---:|---:|---:|---|",
    ]
    for scenario in chosen:
        for name in args.servers:
            if name in skipped:
                continue
            m = results[scenario.name, name]
            notes = "; ".join(m.notes)
            out.append(
                f"| {scenario.name} | {name} | {m.server_cpu:.0f} | {m.generator_cpu:.0f} "
                f"| {m.other_cpu:.0f} | {notes} |"
            )
    for name, why in skipped.items():
        out.append(f"\n{name} was not run: {why}")
    return "\n".join(out)


def _value(
    results: dict[tuple[str, str], Measurement], scenario: str, server: str, key: str
) -> float | None:
    m = results.get((scenario, server))
    return None if m is None else m.values.get(key)


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _summary(m: Measurement) -> str:
    figures = ", ".join(f"{k} {_fmt(v)}" for k, v in m.values.items())
    return (
        f"{figures or 'no figures'} (CPU %: server {m.server_cpu:.0f}, "
        f"generator {m.generator_cpu:.0f}, other {m.other_cpu:.0f}) {'; '.join(m.notes)}"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def _mosquitto_version() -> str:
    try:
        done = subprocess.run([MOSQUITTO, "-h"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "mosquitto ?"
    first = (done.stdout or done.stderr).decode().splitlines()
    return first[0].strip() if first else "mosquitto ?"


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="MQTT benchmark: Hongshan against Mosquitto on this machine.",
    )
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        default=names,
        help=f"comma-separated scenarios (default: all of {','.join(names)})",
    )
    parser.add_argument(
        "--servers",
        type=lambda text: text.split(","),
        default=list(SERVERS),
        help="comma-separated servers (default: mosquitto,hongshan)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per scenario and server; the median is shown"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--publishers", type=int, default=100, help="fan-in publishers")
    parser.add_argument(
        "--window", type=int, default=10, help="QoS 1 PUBLISHes in flight per publisher"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=10,
        help="QoS 0 fan-in: undelivered messages allowed per publisher",
    )
    parser.add_argument(
        "--fanout-depth",
        type=int,
        default=20,
        help="fan-out: undelivered messages allowed per subscriber",
    )
    parser.add_argument("--subscribers", type=int, default=1000, help="fan-out subscribers")
    parser.add_argument("--clients", type=int, default=10_000, help="idle clients")
    parser.add_argument("--devices", type=int, default=10_000, help="devices logging in")
    parser.add_argument(
        "--posting-devices", type=int, default=1_000, help="devices posting properties"
    )
    parser.add_argument(
        "--acking-devices", type=int, default=100, help="devices posting at QoS 1 (acks)"
    )
    parser.add_argument("--ack-rate", type=int, default=10_000, help="their posts/s in all (acks)")
    parser.add_argument(
        "--concurrency", type=int, default=100, help="connection attempts in flight"
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=60.0, help="give up connecting after (s)"
    )
    args = parser.parse_args(argv)
    for name in args.only:
        if name not in names:
            parser.error(f"unknown scenario {name!r}; choose from {','.join(names)}")
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {','.join(SERVERS)}")
    return args


if __name__ == "__main__":
    sys.exit(main())
