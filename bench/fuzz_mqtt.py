"""A fuzz run of the MQTT side against a live server (issue 12): generated packet sequences,
valid and mutated, each on a connection of its own, a few connections at a time.

    python -m bench.fuzz_mqtt --sequences 1000000 [--concurrency 4] [--seed 12]

A sequence is what one client sends before it half-closes its side and reads until the server
closes: valid packets built by the project's codec (``hongshan.mqtt``: CONNECT in 3.1.1 or 5.0,
PUBLISH at each QoS, SUBSCRIBE, UNSUBSCRIBE, acknowledgements, PINGREQ, DISCONNECT), then, for
most sequences, one mutation: random bytes, a byte flipped, cut short, a wrong or huge Remaining
Length, bad 5.0 properties, a topic over ``max_topic_length`` or ``max_topic_levels``, invalid
UTF-8, a packet before CONNECT or a second CONNECT, a packet type or flags that are reserved.

Afterwards: does the server still answer a normal client (CONNECT, SUBSCRIBE, a QoS 1 PUBLISH
delivered back to it), did it log an unhandled exception (its log is scanned), and how did its
RSS move. Exits 1 if any of these went wrong. ``tests/hardening/test_memory.py`` runs it with a
few thousand sequences.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

from bench.servers import started
from hongshan.mqtt.codec import NEED_DATA, Decoder, encode
from hongshan.mqtt.packets import (
    NO_PROPERTIES,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)

# Limits low enough to be reached in a run, so that growth past them is a leak: the load
# generator's 1,000,000 queued messages a session (bench.servers) back to the default 1,000.
SERVER_FLAGS = (
    "--max-queued-messages",
    "1000",
    "--max-retained-messages",
    "10000",
    "--max-topic-length",
    "256",
    "--max-topic-levels",
    "8",
    "--connect-timeout",
    "5",
    "--sys-interval",  # fresh counts for broker_counts
    "1",
)
SEQUENCE_TIMEOUT = 15.0  # longer than the connect timeout: the server must have closed by then
# What an unhandled exception leaves in the log (asyncio's and ours), never a refused client.
FAULT = re.compile(
    r"Traceback|Exception in callback|exception was never retrieved| ERROR |CRITICAL"
)
TOPICS = ("t", "a/b", "town/lamp/1", "/sys/a1Fuzz/dev/thing/event/property/post", "$SYS/x", "街/道")
FILTERS = ("#", "+/+", "a/#", "town/+/1", "$share/g/a/b", "/sys/+/+/thing/#", "a/#/b", "")


@dataclass
class Tally:
    sequences: int = 0
    answered: int = 0  # the server sent something before it closed
    hung: int = 0  # the server had not closed within SEQUENCE_TIMEOUT
    refused_at_connect: int = 0  # the TCP connect itself failed
    bytes_sent: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def _string(rng: random.Random) -> str:
    return rng.choice(TOPICS) if rng.random() < 0.8 else f"f/{rng.randrange(10**6)}"


def _properties(rng: random.Random) -> Properties:
    if rng.random() < 0.6:
        return NO_PROPERTIES
    return Properties(
        message_expiry_interval=rng.choice((None, 0, 60)),
        user_properties=(("k", "v"),) * rng.randrange(3),
        content_type=rng.choice((None, "json")),
    )


def valid_packets(rng: random.Random, level: int) -> list[Packet]:
    """A CONNECT and a few packets a well-behaved client of ``level`` might send."""
    will = None
    if rng.random() < 0.2:
        will = Will(topic=_string(rng), payload=b"bye", qos=rng.randrange(3))
    packets: list[Packet] = [
        Connect(
            client_id=rng.choice(("", f"fuzz-{rng.randrange(64)}")),
            protocol_level=level,
            clean_start=rng.random() < 0.8 or level == 5,
            keep_alive=rng.choice((0, 5, 60)),
            will=will,
        )
    ]
    v5 = level == 5
    for _ in range(rng.randrange(6)):
        kind = rng.randrange(8)
        packet_id = rng.randrange(1, 65536)
        if kind < 3:
            qos = rng.randrange(3)
            packets.append(
                Publish(
                    topic=_string(rng),
                    payload=rng.randbytes(rng.choice((0, 4, 100))),
                    qos=qos,
                    retain=rng.random() < 0.1,
                    packet_id=packet_id if qos else 0,
                    properties=_properties(rng) if v5 else NO_PROPERTIES,
                )
            )
        elif kind == 3:
            subs = tuple(
                Subscription(topic_filter=rng.choice(FILTERS[:-2]), qos=rng.randrange(3))
                for _ in range(rng.randrange(1, 4))
            )
            packets.append(Subscribe(packet_id=packet_id, subscriptions=subs))
        elif kind == 4:
            packets.append(Unsubscribe(packet_id=packet_id, topic_filters=(rng.choice(FILTERS),)))
        elif kind == 5:
            ack = rng.choice((PubAck, PubRec, PubRel, PubComp))
            packets.append(ack(packet_id=packet_id))
        elif kind == 6:
            packets.append(PingReq())
        else:
            packets.append(Disconnect())
    return packets


def _encoded(packets: list[Packet], level: int) -> list[bytes]:
    out = []
    for packet in packets:
        try:
            out.append(encode(packet, level))
        except Exception:  # our codec refusing to send an invalid packet: leave it out
            continue
    return out


def _header(first: int, length: int) -> bytes:
    varint = bytearray()
    while True:
        byte, length = length % 128, length // 128
        varint.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first]) + bytes(varint)


def _raw_publish(topic: bytes, level: int) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (b"\x00" if level == 5 else b"") + b"x"
    return _header(0x30, len(body)) + body


def mutate(rng: random.Random, frames: list[bytes], level: int) -> tuple[str, list[bytes]]:
    """One mutation of a valid sequence; returns its kind and the frames to send."""
    kind = rng.choice(MUTATIONS)
    at = rng.randrange(len(frames))
    if kind == "none":
        return kind, frames
    if kind == "random bytes":
        frames.insert(at, rng.randbytes(rng.randrange(1, 64)))
    elif kind == "byte flipped":
        flipped = bytearray(frames[at])
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        frames[at] = bytes(flipped)
    elif kind == "cut short":
        frames[at] = frames[at][: rng.randrange(len(frames[at]))]
        del frames[at + 1 :]
    elif kind == "wrong length":
        frame = frames[at]
        start = 1
        while start < len(frame) and frame[start] & 0x80:  # past the Remaining Length
            start += 1
        body = frame[start + 1 :]
        frames[at] = _header(frame[0], max(0, len(body) + rng.choice((-3, -1, 1, 5)))) + body
    elif kind == "huge length":
        frames.insert(at, bytes([rng.choice((0x30, 0x10, 0x82))]) + b"\xff\xff\xff\x7f" + b"x" * 8)
    elif kind == "five byte length":
        frames.insert(at, b"\x30\xff\xff\xff\xff\x01")  # 1.5.5: at most four bytes
    elif kind == "bad properties":
        prop = rng.choice((b"\x01\x05", b"\x23\x00\x00", b"\x7f", b"\x26\x00", b"\x0b\x00"))
        body = b"\x00\x01t" + bytes([len(prop)]) + prop
        frames.insert(max(at, 1), _header(0x30, len(body)) + body)
    elif kind == "topic too long":
        frames.insert(max(at, 1), _raw_publish(b"long/" + b"x" * 300, level))
    elif kind == "topic too deep":
        frames.insert(max(at, 1), _raw_publish(b"/".join([b"d"] * 12), level))
    elif kind == "bad utf-8":
        frames.insert(
            max(at, 1), _raw_publish(rng.choice((b"\xff\xfe", b"a\x00b", b"\xed\xa0\x80")), level)
        )
    elif kind == "before connect":
        frames.insert(0, frames.pop(rng.randrange(len(frames))) if len(frames) > 1 else b"\xc0\x00")
    elif kind == "second connect":
        frames.insert(rng.randrange(1, len(frames) + 1), frames[0])
    elif kind == "reserved type":
        frames.insert(at, bytes([rng.choice((0x00, 0xF0, 0x31 | 0x06, 0x82 & 0xF0))]) + b"\x00")
    return kind, frames


MUTATIONS = (
    "none",
    "random bytes",
    "byte flipped",
    "cut short",
    "wrong length",
    "huge length",
    "five byte length",
    "bad properties",
    "topic too long",
    "topic too deep",
    "bad utf-8",
    "before connect",
    "second connect",
    "reserved type",
)


def sequence(rng: random.Random) -> tuple[str, bytes]:
    level = rng.choice((4, 4, 5, 5, 3))
    frames = _encoded(valid_packets(rng, level), level)
    kind, frames = mutate(rng, frames, level)
    return kind, b"".join(frames)


class _Peer(asyncio.Protocol):
    """Sends its bytes, half-closes, and reads (discarding) until the server closes."""

    def __init__(self, data: bytes, done: asyncio.Future[None]) -> None:
        self.data = data
        self.done = done
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.data)
        if transport.can_write_eof():
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def eof_received(self) -> bool:
        if not self.done.done():  # the server closed its side: the sequence is over
            self.done.set_result(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _worker(port: int, rng: random.Random, count: int, tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(count):
        kind, data = sequence(rng)
        tally.sequences += 1
        tally.kinds[kind] = tally.kinds.get(kind, 0) + 1
        tally.bytes_sent += len(data)
        done: asyncio.Future[None] = loop.create_future()
        try:
            transport, peer = await loop.create_connection(
                functools.partial(_Peer, data, done), "127.0.0.1", port
            )
        except OSError:
            tally.refused_at_connect += 1
            continue
        try:
            await asyncio.wait_for(done, SEQUENCE_TIMEOUT)
        except TimeoutError:
            tally.hung += 1
            if tally.hung <= 5:
                print(f"hung ({kind}): {data[:120]!r}", file=sys.stderr)
        transport.abort()
        tally.answered += peer.received > 0


async def fuzz(port: int, sequences: int, concurrency: int, seed: int, tally: Tally) -> None:
    share, rest = divmod(sequences, concurrency)
    await asyncio.gather(
        *(
            _worker(port, random.Random(seed * 1000 + i), share + (i < rest), tally)
            for i in range(concurrency)
        )
    )


def answers_a_normal_client(port: int) -> bool:
    """CONNECT, SUBSCRIBE and a QoS 1 PUBLISH to itself: CONNACK 0, PUBACK, the message back."""
    decoder = Decoder(server=False, protocol_level=4)
    seen: list[Packet] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            encode(Connect(client_id="after-fuzz"), 4)
            + encode(
                Subscribe(
                    packet_id=1, subscriptions=(Subscription(topic_filter="after/#", qos=1),)
                ),
                4,
            )
            + encode(Publish(topic="after/fuzz", payload=b"ok", qos=1, packet_id=2), 4)
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            decoder.receive_data(chunk)
            while (packet := decoder.next_packet()) is not NEED_DATA:
                assert not isinstance(packet, type(NEED_DATA))
                seen.append(packet)
            if answered(seen):
                return True
    return False


SYS_COUNTS = ("clients/total", "subscriptions/count", "retained messages/count")


def broker_counts(port: int) -> dict[str, str]:
    """Sessions, subscriptions and retained messages as of the server's last $SYS update
    (retained, so a subscriber gets them at once): what its memory holds on purpose."""
    decoder = Decoder(server=False, protocol_level=4)
    subs = tuple(Subscription(topic_filter=f"$SYS/broker/{name}") for name in SYS_COUNTS)
    counts: dict[str, str] = {}
    time.sleep(1.5)  # past the next $SYS update (--sys-interval 1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            encode(Connect(client_id="counts"), 4)
            + encode(Subscribe(packet_id=1, subscriptions=subs), 4)
        )
        while len(counts) < len(SYS_COUNTS):
            chunk = sock.recv(65536)
            if not chunk:
                break
            decoder.receive_data(chunk)
            while (packet := decoder.next_packet()) is not NEED_DATA:
                if isinstance(packet, Publish):
                    counts[packet.topic.removeprefix("$SYS/broker/")] = packet.payload.decode()
    return counts


def answered(seen: list[Packet]) -> bool:
    return (
        any(isinstance(p, ConnAck) and p.reason_code == 0 for p in seen)
        and any(isinstance(p, PubAck) and p.packet_id == 2 for p in seen)
        and any(isinstance(p, Publish) and p.payload == b"ok" for p in seen)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4, help="connections at a time")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--rss-bound-mb", type=float, default=64.0, help="allowed RSS growth")
    args = parser.parse_args(argv)
    tally = Tally()
    mb = 1024 * 1024
    with started("hongshan", extra=SERVER_FLAGS) as server:
        assert server.log_path is not None
        warm = Tally()
        asyncio.run(fuzz(server.port, 200, args.concurrency, args.seed + 1, warm))
        rss_start = server.process.memory_info().rss
        began = time.monotonic()
        samples = []  # RSS after each tenth of the run: a plateau, or growth?
        tenth = -(-args.sequences // 10)
        for part, first in enumerate(range(0, args.sequences, tenth)):
            count = min(tenth, args.sequences - first)
            seed = args.seed * 100 + part
            asyncio.run(fuzz(server.port, count, args.concurrency, seed, tally))
            samples.append(server.process.memory_info().rss / mb)
            print(f"{tally.sequences} sequences, RSS {samples[-1]:.0f} MB", file=sys.stderr)
        took = time.monotonic() - began
        rss_end = server.process.memory_info().rss
        alive = server.process.is_running() and server.process.status() != "zombie"
        answers = alive and answers_a_normal_client(server.port)
        counts = broker_counts(server.port) if answers else {}
        log = server.log_path.read_text(errors="replace")
    faults = [line for line in log.splitlines() if FAULT.search(line)]
    growth = (rss_end - rss_start) / mb
    print(
        f"{tally.sequences} sequences in {took:.0f} s ({tally.sequences / took:.0f}/s), "
        f"{tally.bytes_sent / mb:.0f} MB sent, concurrency {args.concurrency}, seed {args.seed}; "
        f"server alive: {alive}, answers a normal client: {answers}; "
        f"unhandled exceptions logged: {len(faults)}; answered {tally.answered}, "
        f"hung {tally.hung}; "
        f"refused at TCP connect: {tally.refused_at_connect}; "
        f"RSS {rss_start / mb:.0f} MB at start, {rss_end / mb:.0f} MB at end"
    )
    print("held on purpose: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print("RSS after each tenth, MB: " + ", ".join(f"{value:.0f}" for value in samples))
    print("mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.kinds.items())))
    for line in faults[:20]:
        print("  " + line)
    ok = alive and answers and not faults and not tally.hung and growth < args.rss_bound_mb
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
