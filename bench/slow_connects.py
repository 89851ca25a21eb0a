"""A slowloris on MQTT (issue 12, case 5): many connections from one address that never send
CONNECT. Prints how many the server still holds a moment later, and whether a real client
connects meanwhile from the same address (127.0.0.1) and from another (127.0.0.2, loopback too).

    python -m bench.slow_connects [--connections 300] [--server-flags '...']
"""

from __future__ import annotations

import argparse
import select
import socket
import time

from bench.servers import started
from hongshan.mqtt.codec import encode
from hongshan.mqtt.packets import Connect


def held(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has not closed."""
    readable, _, _ = select.select(socks, [], [], 0)
    closed = 0
    for sock in readable:
        try:
            closed += sock.recv(1) == b""
        except OSError:
            closed += 1
    return len(socks) - closed


def connects(port: int, source: str) -> bool:
    """A client that does send CONNECT: does it get a CONNACK within 5 s?"""
    try:
        with socket.create_connection(("127.0.0.1", port), 5, (source, 0)) as sock:
            sock.sendall(encode(Connect(client_id="real"), 4))
            return sock.recv(4)[:1] == b"\x20"
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument(
        "--server-flags",
        default="--max-pending-connections-per-address 64",  # the default (bench.servers: 1000)
        help="more hongshan serve flags ('' for a build older than the setting)",
    )
    args = parser.parse_args()
    with started("hongshan", extra=args.server_flags.split()) as server:
        socks = [
            socket.create_connection(("127.0.0.1", server.port)) for _ in range(args.connections)
        ]
        time.sleep(1.0)  # the server has taken (or closed) them all
        kept = held(socks)
        same = connects(server.port, "127.0.0.1")
        other = connects(server.port, "127.0.0.2")
        for sock in socks:
            sock.close()
    said = {True: "connected", False: "refused"}
    print(
        f"{args.connections} silent connections from 127.0.0.1: {kept} held after 1 s; "
        f"meanwhile a real client from 127.0.0.1 {said[same]}, from 127.0.0.2 {said[other]}"
    )


if __name__ == "__main__":
    main()
