"""CONNECT and CONNACK (MQTT 3.1.1 3.1-3.2, 5.0 3.1-3.2): what the server accepts, refuses
and announces. The raw client, because no library sends a broken CONNECT."""

from __future__ import annotations

import struct

import pytest

from broker_peers import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGRESP,
    V5,
    V311,
    Will,
    packet,
    props,
    utf8,
    varint,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
ASSIGNED_CLIENT_ID, SERVER_KEEP_ALIVE, AUTHENTICATION_METHOD = 0x12, 0x13, 0x15


def raw_connect(name=b"MQTT", level=V5, flags=0x02, keepalive=60, tail=b""):
    header = utf8(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    if level == V5:
        header += props()
    return packet(CONNECT, 0, header + (tail or utf8("c")))


def refused_or_closed(client):
    """Packets before the close: nothing, or a CONNACK refusing (MQTT-3.2.2-5 3.1.1 /
    MQTT-3.2.2-7 5.0: after a refusing CONNACK the server closes)."""
    packets = client.closed()
    assert all(p.type in (CONNACK, DISCONNECT) and p.reason for p in packets), packets
    return packets


@pytest.mark.parametrize("level", [3, 6, 255])
def test_unsupported_protocol_level(server, raw, level):
    client = raw(server.port, version=V311)
    client.send(raw_connect(level=level))
    packets = refused_or_closed(client)
    # MQTT-3.1.2-2 (3.1.1): CONNACK return code 1 then close; 5.0 3.1.2.2: 0x84 Unsupported
    # Protocol Version. The CONNACK may be sent in 3.1.1 form for an unknown level (4.13.1).
    if packets:
        assert packets[0].body[1] in (1, 0x84)


def test_wrong_protocol_name_closes(server, raw):
    client = raw(server.port)
    client.send(raw_connect(name=b"MQTX"))
    # MQTT-3.1.2-1: a protocol name other than "MQTT" — the server MAY close without CONNACK.
    refused_or_closed(client)


@VERSIONS
@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (0x03, "MQTT-3.1.2-3: the reserved flag is 0"),
        (0x02 | 0x18 | 0x04, "MQTT-3.1.2-14 (3.1.1) / MQTT-3.1.2-12 (5.0): Will QoS 3"),
        (0x02 | 0x08, "MQTT-3.1.2-13 (3.1.1) / MQTT-3.1.2-11 (5.0): Will QoS without Will Flag"),
        (0x02 | 0x20, "MQTT-3.1.2-15 (3.1.1) / MQTT-3.1.2-13 (5.0): Will Retain without Will"),
    ],
    ids=["reserved", "will-qos-3", "will-qos-no-will", "will-retain-no-will"],
)
def test_invalid_connect_flags_close(server, raw, version, flags, why):
    client = raw(server.port, version=version)
    client.send(raw_connect(level=version, flags=flags))
    packets = refused_or_closed(client)
    assert all(p.type != CONNACK or p.reason != 0 for p in packets), why


def test_password_without_username_in_3_1_1_closes(server, raw):
    client = raw(server.port, version=V311)
    # MQTT-3.1.2-22 (3.1.1): if the User Name Flag is 0, the Password Flag MUST be 0.
    client.send(raw_connect(level=V311, flags=0x02 | 0x40, tail=utf8("c") + utf8("pw")))
    refused_or_closed(client)


def test_empty_client_id_with_clean_session_0_is_rejected_in_3_1_1(server, raw):
    client = raw(server.port, version=V311)
    connack = client.connect("", clean=False)
    # MQTT-3.1.3-8 (3.1.1): CONNACK 0x02, Identifier rejected, then close.
    assert connack.reason == 2
    assert client.closed() == []


def test_empty_client_id_with_clean_session_is_accepted_in_3_1_1(server, raw):
    client = raw(server.port, version=V311)
    assert client.connect("").reason == 0  # MQTT-3.1.3-6
    assert client.until_pong() == []


def test_empty_client_id_gets_an_assigned_client_identifier_in_5(server, raw, paho_client):
    client = raw(server.port)
    connack = client.connect("")
    assert connack.reason == 0
    # MQTT-3.2.2-16 (5.0): the CONNACK carries the Assigned Client Identifier ...
    assigned = connack.properties.get(ASSIGNED_CLIENT_ID)
    assert assigned
    # ... unique among connected clients (MQTT-3.1.3-6).
    other = raw(server.port).connect("").properties.get(ASSIGNED_CLIENT_ID)
    assert other and other != assigned
    assert client.until_pong() == []


def test_server_keep_alive_caps_a_longer_request(make_server, raw):
    server = make_server(max_keepalive=1)
    client = raw(server.port)
    connack = client.connect("capped", keepalive=600)
    # 3.2.2.3.14 (5.0): the Server Keep Alive the client must use instead of its own
    # (MQTT-3.2.2-21) ...
    assert connack.properties.get(SERVER_KEEP_ALIVE) == 1
    # ... and the server holds the client to it: silent, it is closed after 1.5 s.
    assert [p.reason for p in client.closed(timeout=5)] in ([], [0x8D])


def test_server_keep_alive_announced_for_keep_alive_0(make_server, raw):
    server = make_server(max_keepalive=30)
    client = raw(server.port)
    connack = client.connect("zero-keepalive", keepalive=0)
    # 0 means no keep-alive at all, which exceeds any maximum: announce it (3.2.2.3.14).
    assert connack.properties.get(SERVER_KEEP_ALIVE) == 30


def test_unsupported_authentication_method_is_refused(server, raw):
    client = raw(server.port)
    connack = client.connect("auth", properties={AUTHENTICATION_METHOD: "SCRAM-SHA-1"})
    # MQTT-4.12.0-1 (5.0): unsupported method, CONNACK 0x8C (or 0x87) and close.
    assert connack.reason in (0x8C, 0x87)
    assert client.closed() == []


@VERSIONS
def test_will_topic_with_wildcard_is_refused(server, raw, version):
    client = raw(server.port, version=version)
    # MQTT-3.1.3-10 (3.1.1) / 3.1.3.3 (5.0): the Will Topic is a topic name, no wildcards.
    client.connect("bad-will", will=Will("will/+", b"x"), wait=False)
    refused_or_closed(client)


@VERSIONS
def test_connack_is_the_first_packet_and_pings_work(server, raw, version):
    client = raw(server.port, version=version)
    connack = client.connect("plain", keepalive=30)
    assert (connack.type, connack.reason, connack.session_present) == (CONNACK, 0, False)
    client.ping()
    assert client.expect(PINGRESP).body == b""


def property_block(*items: bytes) -> bytes:
    body = b"".join(items)
    return varint(len(body)) + body


CONNECT_PROPERTY_ERRORS = {
    # 3.1.2.11.3: Receive Maximum 0 is a Protocol Error.
    "receive-maximum-0": property_block(b"\x21\x00\x00"),
    # 3.1.2.11.4: Maximum Packet Size 0 is a Protocol Error.
    "maximum-packet-size-0": property_block(b"\x27\x00\x00\x00\x00"),
    # 3.1.2.11.2: Session Expiry Interval more than once is a Protocol Error.
    "session-expiry-twice": property_block(b"\x11\x00\x00\x00\x05", b"\x11\x00\x00\x00\x06"),
    # 3.1.2.11.7: Request Problem Information other than 0 or 1 is a Protocol Error.
    "request-problem-information-2": property_block(b"\x17\x02"),
    # 2.2.2.2: an unknown property identifier makes the packet malformed.
    "unknown-property": property_block(b"\x7f\x00"),
}


@pytest.mark.parametrize("block", CONNECT_PROPERTY_ERRORS.values(), ids=CONNECT_PROPERTY_ERRORS)
def test_connect_property_errors_are_refused(server, raw, block):
    client = raw(server.port)
    header = utf8("MQTT") + bytes([V5, 0x02]) + struct.pack("!H", 60) + block
    client.send(packet(CONNECT, 0, header + utf8("bad-props")))
    # 4.13.1 (5.0): close, optionally after a CONNACK with a reason code >= 0x80.
    packets = refused_or_closed(client)
    assert all(p.reason >= 0x80 for p in packets)
