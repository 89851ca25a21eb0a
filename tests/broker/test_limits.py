"""Limits and hostile input: packet size, CONNECT timeout, protocol violations and garbage close
the offending connection, and only that one."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from broker_peers import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    MAXIMUM_PACKET_SIZE,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBLISH,
    PUBREL,
    SUBSCRIBE,
    UNSUBSCRIBE,
    V5,
    V311,
    connect_packet,
    packet,
    props,
    utf8,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


@pytest.fixture
def observer(server, paho_client):
    """A subscriber connected throughout; ``observer.alive()`` shows the server still serves it."""
    watcher = paho_client(server.port).connect()
    watcher.subscribe("obs/#", 1)
    pub = paho_client(server.port).connect()

    def alive():
        assert pub.publish("obs/alive", b"yes", qos=1) == 0
        assert watcher.until("obs/alive")[-1].payload == b"yes"
        assert not watcher.disconnected.is_set()

    watcher.alive = alive
    return watcher


def assert_closed_for_error(client, version):
    packets = client.closed()
    if version == V311:
        assert packets == [], packets  # 3.1.1 servers never send DISCONNECT
    else:
        # 4.13.1: close, optionally after a DISCONNECT with a reason code >= 0x80.
        assert all(p.type == DISCONNECT and p.reason >= 0x80 for p in packets), packets
    return packets


@VERSIONS
def test_packet_above_maximum_packet_size_closes_that_connection(make_server, raw, version):
    limit = 1024
    server = make_server(max_packet_size=limit)
    client = raw(server.port, version=version)
    connack = client.connect("big-sender")
    if version == V5:
        # 3.2.2.3.6: a server that limits packet size says so (absent means no limit).
        assert connack.properties.get(MAXIMUM_PACKET_SIZE) == limit
    # Exactly at the limit (the whole packet, fixed header included, 3.2.2.3.6) is accepted.
    at_limit = next(
        data
        for n in range(limit, 0, -1)
        if len(data := client.publish_bytes("big/t", b"p" * n, qos=1, packet_id=1)) == limit
    )
    client.send(at_limit)
    assert client.expect(PUBACK).packet_id == 1
    client.publish("big/t", b"p" * 2000, qos=1, packet_id=2)
    # 5.0 3.2.2.3.6 and 4.13: "Packet too large", DISCONNECT 0x95; 3.1.1: just close.
    packets = assert_closed_for_error(client, version)
    if version == V5:
        assert [p.reason for p in packets] == [0x95]
    other = raw(server.port, version=version)
    assert other.connect("after-big").reason == 0
    assert other.until_pong() == []


def test_server_never_sends_a_client_more_than_its_maximum_packet_size(server, raw, paho_client):
    client = raw(server.port)
    client.connect("small-packets", properties={MAXIMUM_PACKET_SIZE: 200})
    client.subscribe(1, [("mps/#", 1)])
    pub = paho_client(server.port).connect()
    pub.publish("mps/big", b"b" * 1000, qos=1)
    pub.publish("mps/small", b"s", qos=1)
    # MQTT-3.1.2-24/-25 (5.0): a packet too large for the client is discarded, not sent.
    received = client.until_pong()
    assert [(p.type, p.topic) for p in received] == [(PUBLISH, "mps/small")]


def test_connection_without_connect_is_closed_after_connect_timeout(make_server, raw):
    server = make_server(connect_timeout=0.5)
    silent = raw(server.port)
    half = raw(server.port)
    half.send(b"\x10")  # the first byte of a CONNECT, then nothing
    # 3.1.1 3.1 / 5.0 3.1: a server closes a connection that sends no CONNECT in reasonable time.
    assert silent.closed(timeout=5) == []
    assert half.closed(timeout=5) == []


FIRST_PACKETS = {
    "pingreq": packet(PINGREQ, 0, b""),
    "subscribe": packet(SUBSCRIBE, 2, b"\x00\x01" + utf8("a") + b"\x00"),
    "publish": packet(PUBLISH, 0, utf8("a") + b"hi"),
    "connack": packet(CONNACK, 0, b"\x00\x00"),
}


@pytest.mark.parametrize("first", FIRST_PACKETS.values(), ids=FIRST_PACKETS.keys())
def test_first_packet_must_be_connect(server, raw, observer, first):
    client = raw(server.port)
    client.send(first)
    # MQTT-3.1.0-1: the first packet from a client MUST be CONNECT; the server closes otherwise.
    assert all(p.type != CONNACK or p.reason != 0 for p in client.closed())
    observer.alive()


@pytest.mark.parametrize(
    "claim",
    [b"\x10\xff\xff\xff\x7f", b"\x30\xff\xff\xff\x7f" + b"x" * 100],
    ids=["connect", "publish"],
)
def test_huge_remaining_length_closes_without_harm(server, raw, observer, claim):
    client = raw(server.port)
    if claim[0] >> 4 != CONNECT:
        client.connect("huge-claim")
    client.send(claim)  # 268,435,455 bytes announced (2.2.3's maximum), a few sent
    for p in client.closed():
        assert p.type in (CONNACK, DISCONNECT) and p.reason >= 0x80, p
    observer.alive()
    another = raw(server.port)
    assert another.connect("after-huge").reason == 0


def v5_or_not(version, block):
    return block if version == V5 else b""


def malformed(version):
    """Packets that break a MUST of the spec; the receiver closes the connection (3.1.1 4.8,
    5.0 4.13). Each after a valid CONNECT."""
    p = props() if version == V5 else b""
    connect = utf8("MQTT") + bytes([version, 0x02, 0, 60]) + p + utf8("again")
    return {
        # 2.1.2 / 2.2.1: packet type 0 is reserved.
        "reserved-type-0": b"\x00\x00",
        # MQTT-3.3.1-4: QoS bits 11.
        "publish-qos-3": packet(PUBLISH, 0x06, utf8("a/b") + b"\x00\x01" + p + b"x"),
        # MQTT-3.8.1-1: SUBSCRIBE flags must be 0010.
        "subscribe-flags": packet(SUBSCRIBE, 0x00, b"\x00\x01" + p + utf8("a") + b"\x01"),
        # MQTT-3.6.1-1: PUBREL flags must be 0010.
        "pubrel-flags": packet(PUBREL, 0x00, b"\x00\x01"),
        # MQTT-2.2.2-2: reserved flags of PINGREQ are 0.
        "pingreq-flags": packet(PINGREQ, 0x01, b""),
        # MQTT-3.1.0-2: a second CONNECT is a protocol violation.
        "second-connect": packet(CONNECT, 0, connect),
        # MQTT-3.3.2-2: no wildcards in a PUBLISH topic name.
        "wildcard-topic": packet(PUBLISH, 0, utf8("a/+") + p + b"x"),
        # MQTT-1.5.3-1 (3.1.1) / MQTT-1.5.4-1 (5.0): ill-formed UTF-8.
        "invalid-utf8": packet(PUBLISH, 0, utf8(b"a\xff\xfe") + p + b"x"),
        # MQTT-1.5.3-2 (3.1.1) / MQTT-1.5.4-2 (5.0): no U+0000.
        "null-in-topic": packet(PUBLISH, 0, utf8(b"a\x00b") + p + b"x"),
        # MQTT-3.8.3-3 (3.1.1) / MQTT-3.8.3-2 (5.0): at least one topic filter.
        "subscribe-empty": packet(SUBSCRIBE, 0x02, b"\x00\x01" + p),
        # MQTT-3.10.3-2: at least one topic filter.
        "unsubscribe-empty": packet(UNSUBSCRIBE, 0x02, b"\x00\x01" + p),
        # MQTT-2.3.1-1 (3.1.1) / MQTT-2.2.1-3 (5.0): non-zero packet identifier.
        "publish-id-0": packet(PUBLISH, 0x02, utf8("a") + b"\x00\x00" + p + b"x"),
        "subscribe-id-0": packet(SUBSCRIBE, 0x02, b"\x00\x00" + p + utf8("a") + b"\x01"),
        # MQTT-3.8.3-4 (3.1.1) / MQTT-3-8.3-... (5.0 3.8.3.1): QoS 3 is malformed.
        "subscribe-qos-3": packet(SUBSCRIBE, 0x02, b"\x00\x01" + p + utf8("a") + b"\x03"),
        # MQTT-3-8.3-4 (3.1.1) / MQTT-3.8.3-5 (5.0): reserved option bits are 0.
        "subscribe-reserved-bits": packet(SUBSCRIBE, 0x02, b"\x00\x01" + p + utf8("a") + b"\xc1"),
        # MQTT-4.7.3-1: topic names are at least one character (5.0: unless a Topic Alias).
        "empty-topic": packet(PUBLISH, 0, utf8("") + p + b"x"),
        # 2.2.3 / 1.5.5: a Remaining Length of at most four bytes.
        "five-byte-length": b"\x30\xff\xff\xff\xff\x01",
        # 1.5.3 / 1.5.4: a string longer than its packet.
        "truncated-string": packet(PUBLISH, 0, struct.pack("!H", 50) + b"abc"),
        # 3.1.1: packet type 15 is reserved; 5.0 AUTH is only valid with an Authentication
        # Method in CONNECT (MQTT-4.12.0-... Protocol Error otherwise).
        "type-15": packet(15, 0, b"\x00" + v5_or_not(version, b"\x00")),
    }


@VERSIONS
@pytest.mark.parametrize("case", list(malformed(V5)))
def test_protocol_violation_closes_only_that_connection(server, raw, observer, version, case):
    client = raw(server.port, version=version)
    assert client.connect(f"violator-{case}").reason == 0
    client.send(malformed(version)[case])
    assert_closed_for_error(client, version)
    observer.alive()


def test_random_garbage_closes_only_those_connections(make_server, raw, paho_client):
    server = make_server(connect_timeout=1)
    watcher = paho_client(server.port).connect()
    watcher.subscribe("garbage/#", 1)
    generator = random.Random(20240601)
    clients = []
    for index in range(40):
        client = raw(server.port, version=V5 if index % 2 else V311)
        garbage = generator.randbytes(generator.randrange(1, 300))
        if index % 4 >= 2:  # half of them after a valid CONNECT, keep-alive 1 s
            client.connect(f"garbage-{index}", keepalive=1)
        client.send(garbage)
        clients.append(client)
    for client in clients:
        client.closed()  # anything, but then closed (by timeout at worst: connect/keep-alive)
    pub = paho_client(server.port).connect()
    pub.publish("garbage/after", b"still here", qos=1)
    assert watcher.get().payload == b"still here"
    assert not watcher.disconnected.is_set()


def test_packets_split_into_single_bytes_and_coalesced(server, raw, paho_client):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("frame/#", 1)
    # Byte by byte, each its own TCP segment: the server must reassemble (2.1, any framing).
    slow = raw(server.port, version=V311)
    slow.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in connect_packet("byte-by-byte", version=V311):
        slow.send(bytes([byte]))
    assert slow.expect(CONNACK).reason == 0
    for byte in slow.publish_bytes("frame/slow", b"s" * 200, qos=1, packet_id=3):
        slow.send(bytes([byte]))
    assert slow.expect(PUBACK).packet_id == 3
    # Many packets in one write: CONNECT, three PUBLISHes, PINGREQ.
    fast = raw(server.port, version=V311)
    burst = connect_packet("coalesced", version=V311) + b"".join(
        fast.publish_bytes("frame/fast", b"%d" % i, qos=1, packet_id=i) for i in (1, 2, 3)
    )
    fast.send(burst + packet(PINGREQ, 0, b""))
    assert fast.expect(CONNACK).reason == 0
    assert [fast.expect(PUBACK).packet_id for _ in range(3)] == [1, 2, 3]
    assert fast.read().type == PINGRESP
    assert [m.payload for m in watcher.take(4)] == [b"s" * 200, b"1", b"2", b"3"]


# Remaining Length = 2 + len("len/t") + 2 + size: 127/128 at 118/119, 16383/16384 at 16374/16375.
@pytest.mark.parametrize("size", [0, 1, 118, 119, 16374, 16375, 200_000])
def test_remaining_length_boundaries(server, raw, paho_client, size):
    watcher = paho_client(server.port, version=V311).connect()
    watcher.subscribe("len/t", 1)
    client = raw(server.port, version=V311)
    client.connect("lengths")
    # Around 127/128 and 16383/16384 bytes of Remaining Length (1.5.5: 1, 2, 3 byte encodings).
    client.publish("len/t", b"L" * size, qos=1, packet_id=1)
    assert client.expect(PUBACK).packet_id == 1
    assert watcher.get().payload == b"L" * size


def test_longest_topic_name(make_server, raw, paho_client):
    server = make_server(max_topic_length=65535)  # the default is 4,096 bytes (issue 12)
    watcher = paho_client(server.port, version=V311).connect()
    watcher.subscribe("long/#", 1)
    topic = "long/" + "x" * (65535 - 5)  # 1.5.3: UTF-8 strings up to 65,535 bytes
    client = raw(server.port, version=V311)
    client.connect("long-topic")
    client.publish(topic, b"far", qos=1, packet_id=1)
    assert client.expect(PUBACK).packet_id == 1
    message = watcher.get()
    assert (message.topic, message.payload) == (topic, b"far")
