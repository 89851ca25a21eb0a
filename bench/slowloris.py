"""Slowloris against the HTTP server (issue 12 case 5): ``hongshan serve`` in a subprocess with
300 file descriptors (RLIMIT_NOFILE), 200 clients from 127.0.0.1 that each send a request line
and then a header line every 5 s (reconnecting when closed, as an attacker would), and a probe
every 2 s from 127.0.0.2: ``/api/health`` and an MQTT CONNECT. Prints, per sample, the HTTP
connections the server holds (ESTABLISHED on its port) and its descriptors, and at the end the
totals.

    PYTHONPATH=src .venv/bin/python -m bench.slowloris [--clients 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.servers import free_port, hongshan_command

MQTT_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # 3.1.1, clean, empty client id
NOFILE = 300


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class Tally:
    def __init__(self) -> None:
        self.held = 0  # the attacker's connections open now
        self.opened = 0
        self.refused = 0  # connect() failed (the server out of descriptors, or not accepting)
        self.answers: dict[str, int] = {}  # status line -> count


async def attacker(port: int, tally: Tally, stop: asyncio.Event, period: float) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            tally.refused += 1
            await asyncio.sleep(period)
            continue
        tally.opened += 1
        tally.held += 1
        try:
            writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            n = 0
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    first = await asyncio.wait_for(reader.read(200), period)
                    status = first.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
                    tally.answers[status] = tally.answers.get(status, 0) + 1
                    break  # answered or closed: connect again
                n += 1
                writer.write(b"X-Trickle-%d: 1\r\n" % n)
        except OSError:
            tally.answers["reset"] = tally.answers.get("reset", 0) + 1
        finally:
            tally.held -= 1
            writer.close()
        await asyncio.sleep(1)  # (then again: a second's pause, not a busy loop)


async def probe(http_port: int, mqtt_port: int) -> tuple[bool, bool]:
    """/api/health and an MQTT CONNECT, from another address, each within 3 s."""

    async def health() -> bool:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", http_port, local_addr=("127.0.0.2", 0)
        )
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer.startswith(b"HTTP/1.1 200")

    async def mqtt() -> bool:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", mqtt_port, local_addr=("127.0.0.2", 0)
        )
        writer.write(MQTT_CONNECT)
        answer = await reader.readexactly(4)
        writer.close()
        return answer == b"\x20\x02\x00\x00"

    results = []
    for check in (health, mqtt):
        try:
            results.append(await asyncio.wait_for(check(), 3))
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            results.append(False)
    return results[0], results[1]


async def main(clients: int, seconds: float, period: float, extra: list[str]) -> None:
    http_port, mqtt_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        command = [
            *hongshan_command(),
            "serve",
            "--data-dir",
            data,
            "--host",
            "127.0.0.1",
            "--mqtt-port",
            str(mqtt_port),
            "--http-port",
            str(http_port),
            "--allow-anonymous",
            *extra,
        ]
        log = Path(data) / "server.log"
        with log.open("w") as out:  # (started once, before any load: blocking is fine)
            child = subprocess.Popen(  # noqa: ASYNC220
                command, stderr=out, preexec_fn=limit_descriptors
            )
        try:
            deadline = time.monotonic() + 30
            while "hongshan ready" not in log.read_text():
                if child.poll() is not None or time.monotonic() > deadline:
                    sys.exit("server did not start:\n" + log.read_text())
                await asyncio.sleep(0.1)
            tally, stop = Tally(), asyncio.Event()
            tasks = [
                asyncio.create_task(attacker(http_port, tally, stop, period))
                for _ in range(clients)
            ]
            server = psutil.Process(child.pid)
            samples, health_ok, mqtt_ok, descriptors = [], 0, 0, []
            start = time.monotonic()
            while time.monotonic() - start < seconds:
                await asyncio.sleep(2)
                held = sum(
                    1
                    for c in server.net_connections("tcp")
                    if c.laddr and c.laddr.port == http_port and c.status == "ESTABLISHED"
                )
                descriptors.append(server.num_fds())
                ok = await probe(http_port, mqtt_port)
                health_ok += ok[0]
                mqtt_ok += ok[1]
                samples.append(held)
                print(
                    f"t={time.monotonic() - start:5.1f}s held={held:3d} fds={descriptors[-1]:3d} "
                    f"health={'ok' if ok[0] else 'FAILED'} mqtt={'ok' if ok[1] else 'FAILED'}",
                    file=sys.stderr,
                )
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            child.kill()
            child.wait()
        warnings = [line for line in log.read_text().splitlines() if "cut off" in line]
    print(
        f"{clients} slow clients (a header line every {period:g} s), RLIMIT_NOFILE {NOFILE}, "
        f"{seconds:g} s: HTTP connections the server held max {max(samples)}, mean "
        f"{sum(samples) / len(samples):.0f}, its descriptors max {max(descriptors)}; opened "
        f"{tally.opened}, connect refused {tally.refused}; answers {tally.answers}; "
        "probes from 127.0.0.2: /api/health "
        f"{health_ok}/{len(samples)}, MQTT CONNECT {mqtt_ok}/{len(samples)}; "
        f"log lines about cut-offs: {len(warnings)}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--period", type=float, default=5)
    parser.add_argument("extra", nargs="*", help="more flags for hongshan serve")
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.seconds, args.period, args.extra))
