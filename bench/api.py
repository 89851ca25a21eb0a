"""``python -m bench.api``: the REST API under ``--clients`` concurrent clients (50), measured
by wrk (a load generator the project did not write: Debian's ``wrk``), over a registry of
``--devices`` devices (10,000) and a history of ``--history-devices`` lamps (100) with a
``Brightness`` value every 10 s for ``--days`` days (1).

Each request is timed alone for ``--seconds`` (10) after a short warm-up, and printed with
requests/s, p50, p99 and its answer's size:

- a page of 100 of the device list (``/api/devices``, with its total: a count over 10,000);
- a page searched and sorted (``q`` and ``sort=-deviceName``);
- one lamp's raw history, a page of 1,000 values;
- one lamp's hourly average over the day (the hour rollups);
- every lamp's latest ``Brightness`` (``/api/history/latest`` over 10,000 devices).

Run on each ``--event-loop`` (both, by default: uvloop, the default, and asyncio's own, whose
slowest answers under this load are several times quicker), each printed as its own table.

Target (issue 15): p99 under 50 ms with 50 clients for the device list and a history query.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.devices import PRODUCT_KEY, device_name, seed
from bench.servers import admin_token, free_port, with_http

EVERY_MS = 10_000
DAY_MS = 86_400_000
WARM_UP_SECONDS = 2
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _history(data_dir: Path, devices: int, days: int) -> None:
    """``devices`` lamps' Brightness every 10 s for ``days`` days up to now, as the pipeline
    writes them (``add_points``), with the store's own rollups."""
    from hongshan.store.history.sqlite import SQLiteHistory

    async def run() -> None:
        history = SQLiteHistory(data_dir / "history.db", loop=asyncio.get_running_loop())
        end = int(time.time() * 1000)
        end -= end % EVERY_MS
        for ts in range(end - days * DAY_MS, end, EVERY_MS):
            for i in range(devices):
                history.add_points(
                    (PRODUCT_KEY, device_name(i)), [("Brightness", ts, (ts // EVERY_MS + i) % 100)]
                )
            await asyncio.sleep(0)
        await history.committed()
        await history.close()

    asyncio.run(run())


def _wrk(url: str, token: str, clients: int, seconds: int) -> tuple[float, float, float]:
    """requests/s, p50 ms, p99 ms of ``url`` under ``clients`` connections."""
    command = [
        "wrk",
        f"--connections={clients}",
        "--threads=2",
        f"--duration={seconds}s",
        "--latency",
        "--header",
        f"Authorization: Bearer {token}",
        url,
    ]
    subprocess.run([*command[:3], f"--duration={WARM_UP_SECONDS}s", *command[4:]], check=True,
                   capture_output=True)  # fmt: skip
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{url} answered errors:\n{out}")
    percentiles = {p: float(v) * _SCALE[unit] for p, v, unit in _LATENCY.findall(out)}
    rate = _RATE.search(out)
    assert rate is not None, out
    return float(rate.group(1)), percentiles["50"], percentiles["99"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--history-devices", type=int, default=100)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--event-loop", choices=["uvloop", "asyncio", "both"], default="both")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed (Debian: apt-get install wrk)")

    def prepare(data_dir: Path) -> None:
        seed(data_dir, args.devices)
        _history(data_dir, args.history_devices, args.days)

    # wrk's warm-up and run each open --clients connections from one address; the last ones
    # may not be closed yet when the next open theirs (the guard would cut the excess off)
    os.environ["HONGSHAN_HTTP_MAX_CONNECTIONS_PER_ADDRESS"] = str(max(4 * args.clients, 64))
    loops = ["uvloop", "asyncio"] if args.event_loop == "both" else [args.event_loop]
    for event_loop in loops:
        _measure(args, prepare, event_loop)


def _measure(args: argparse.Namespace, prepare: Callable[[Path], None], event_loop: str) -> None:
    http_port = free_port()
    began = time.perf_counter()
    extra = ["--event-loop", event_loop]
    with with_http(http_port, prepare=prepare, extra=extra) as server:
        print(f"seeded and started in {time.perf_counter() - began:.0f} s")
        base = f"http://127.0.0.1:{http_port}"
        lamp = f"{base}/api/products/{PRODUCT_KEY}/devices/{device_name(7)}"
        now = int(time.time() * 1000)
        day = f"from={now - DAY_MS}&to={now}"
        requests = {
            "device list, a page of 100": f"{base}/api/devices?limit=100&offset=5000",
            "device list, searched, sorted": f"{base}/api/devices?q=7&sort=-deviceName",
            "raw history, 1,000 values": f"{lamp}/history/Brightness?{day}&limit=1000",
            "hourly average over a day": f"{lamp}/history/Brightness?{day}&every=1h&agg=avg",
            "latest of every device": f"{base}/api/history/latest?identifier=Brightness"
            f"&productKey={PRODUCT_KEY}",
        }
        token = admin_token(server)
        print(
            f"on {event_loop}: {args.clients} clients (wrk), {args.seconds} s each, "
            f"{args.devices:,} devices, {args.history_devices} with a history of {args.days} d"
        )
        print(f"{'request':32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        for name, url in requests.items():
            rate, p50, p99 = _wrk(url, token, args.clients, args.seconds)
            print(f"{name:32} {rate:8.0f} {p50:8.1f} {p99:8.1f}", flush=True)
        print(f"server CPU {server.cpu_seconds():.0f} s, RSS {server.rss() / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
