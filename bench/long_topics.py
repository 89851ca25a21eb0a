"""The review's memory scenario (issue 12, case 1): one device publishes QoS 0 messages to ever
new long topics, ``/sys/{pk}/{dn}/x/<i><60 KB>``, then leaves; the server's RSS before, after
and a moment after it left.

    python -m bench.long_topics [--messages 6000] [--level-bytes 60000]

Hongshan runs with ``--max-topic-length 65535`` so that the topics are let in (its default,
4,096 bytes, refuses them at the door) and reach what remembers topics.
"""

from __future__ import annotations

import argparse
import socket
import time

from bench.servers import started
from hongshan.mqtt.codec import encode
from hongshan.mqtt.packets import Connect, Disconnect, PingReq, Publish


def flood(port: int, messages: int, level_bytes: int) -> None:
    """Publish, then wait for the PINGRESP that follows what the server did with them."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(encode(Connect(client_id="flood", clean_start=True), 4))
        sock.recv(4)  # CONNACK
        long_level = "z" * level_bytes
        for i in range(messages):
            sock.sendall(encode(Publish(topic=f"/sys/a1Flood/dn/x/{i}{long_level}"), 4))
        sock.sendall(encode(PingReq(), 4))
        received = b""
        while b"\xd0\x00" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed the connection")
            received += chunk
        sock.sendall(encode(Disconnect(), 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--level-bytes", type=int, default=60_000)
    parser.add_argument(
        "--server-flags",
        default="--max-topic-length 65535",
        help="more hongshan serve flags ('' for a build older than max_topic_length)",
    )
    args = parser.parse_args()
    with started("hongshan", extra=args.server_flags.split()) as server:
        time.sleep(1.0)  # settled after start
        start = server.process.memory_info().rss
        began = time.monotonic()
        flood(server.port, args.messages, args.level_bytes)
        took = time.monotonic() - began
        after = server.process.memory_info().rss
        time.sleep(2.0)
        left = server.process.memory_info().rss
    mb = 1024 * 1024
    print(
        f"{args.messages} messages to {args.level_bytes // 1000} KB topics in {took:.1f} s: "
        f"RSS {start / mb:.0f} MB at start, {after / mb:.0f} MB after, "
        f"{left / mb:.0f} MB 2 s after the device left"
    )


if __name__ == "__main__":
    main()
