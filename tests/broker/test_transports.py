"""MQTT over WebSocket (5.0 chapter 6) and TLS, ``$SYS`` topics, and ``GET /api/health``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websocket_connect

from broker_peers import (
    HOST,
    PINGREQ,
    SUBSCRIBE,
    TIMEOUT,
    V5,
    V311,
    connect_packet,
    packet,
    payloads,
    publish_packet,
    utf8,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


# -- WebSocket ---------------------------------------------------------------------------------


@VERSIONS
def test_paho_over_websocket(make_server, paho_client, version):
    server = make_server(ws_port=0)
    ws_sub = paho_client(server.ports["ws"], version=version, transport="websockets").connect()
    ws_sub.subscribe("ws/#", 2)
    tcp_pub = paho_client(server.port, version=version).connect()
    ws_pub = paho_client(server.ports["ws"], version=version, transport="websockets").connect()
    tcp_pub.publish("ws/a", b"from tcp", qos=1)
    ws_pub.publish("ws/b", b"from ws", qos=2)
    assert [(m.topic, m.payload) for m in ws_sub.take(2)] == [
        ("ws/a", b"from tcp"),
        ("ws/b", b"from ws"),
    ]


def test_websocket_subprotocol_and_frames_not_aligned_with_packets(make_server):
    server = make_server(ws_port=0)
    url = f"ws://{HOST}:{server.ports['ws']}/mqtt"
    with websocket_connect(url, subprotocols=["mqtt"], open_timeout=TIMEOUT) as ws:
        # MQTT-6.0.0-4: the subprotocol the server selects is "mqtt".
        assert ws.subprotocol == "mqtt"
        connect = connect_packet("ws-frames", version=V311)
        # MQTT-6.0.0-2: packets need not be aligned with frames: half a CONNECT, then the rest
        # with a PINGREQ in the same frame.
        ws.send(connect[:5])
        ws.send(connect[5:] + packet(PINGREQ, 0, b""))
        received = b""
        while len(received) < 6:
            received += ws.recv(timeout=TIMEOUT)
        assert received == b"\x20\x02\x00\x00" + b"\xd0\x00"  # CONNACK accepted, PINGRESP
        # MQTT-6.0.0-1: a text frame is not MQTT; the connection is closed.
        ws.send("not binary")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)


def test_stalled_websocket_subscriber_is_bounded_and_does_not_stall_others(
    make_server, paho_client
):
    """A browser tab that stops reading: its WebSocket transport pushes back like a TCP one, so
    the session queues (and drops) QoS 0 messages within max_queued_messages while everyone else
    keeps receiving, and the server still shuts down promptly."""
    limit = 20
    server = make_server(ws_port=0, max_queued_messages=limit)
    url = f"ws://{HOST}:{server.ports['ws']}/mqtt"
    with websocket_connect(url, subprotocols=["mqtt"], open_timeout=TIMEOUT) as ws:
        ws.send(connect_packet("ws-stalled", version=V311))
        subscribe = b"\x00\x01" + utf8("flood/#") + b"\x00"
        ws.send(packet(SUBSCRIBE, 2, subscribe))
        received = b""
        while len(received) < 9:  # CONNACK (4) + SUBACK (5)
            received += ws.recv(timeout=TIMEOUT)
        # From here on the WebSocket client reads nothing.
        fast = paho_client(server.port, version=V311).connect()
        fast.subscribe("flood/#", 1)
        pub = paho_client(server.port, version=V311).connect()
        pub.publish_many("flood/data", [b"x" * 20_000] * 1000, qos=0)  # 20 MB
        pub.publish("flood/end", b"end", qos=1)
        assert fast.until("flood/end", timeout=30)
        broker = server.platform.broker

        def backlog():
            connection = broker.connections["ws-stalled"]
            return len(broker.sessions["ws-stalled"].queue or ()), (
                connection.transport.get_write_buffer_size()
            )

        queued, buffered = server.call(backlog)
        assert queued <= limit
        assert buffered < 2_000_000, buffered


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(make_server, certificate):
    cert, key = certificate
    return make_server(tls_port=0, tls_cert=str(cert), tls_key=str(key))


@VERSIONS
def test_paho_over_tls(tls_server, certificate, paho_client, version):
    cert, _ = certificate
    port = tls_server.ports["mqtts"]
    sub = paho_client(port, version=version, tls_ca=str(cert)).connect()
    sub.subscribe("tls/#", 1)
    paho_client(tls_server.port).connect().publish("tls/a", b"plain", qos=1)
    paho_client(port, version=version, tls_ca=str(cert)).connect().publish("tls/b", b"secret", 1)
    assert payloads(sub.take(2)) == [b"plain", b"secret"]


def test_mosquitto_clients_over_tls(tls_server, certificate, mosquitto_sub):
    cert, _ = certificate
    port = str(tls_server.ports["mqtts"])
    tls = ("--cafile", str(cert), "-h", "localhost", "-p", port)
    sub = mosquitto_sub(tls_server.port, "tlsm/t", *tls, "-q", "1", "-C", "1")
    done = subprocess.run(
        ["mosquitto_pub", *tls, "-t", "tlsm/t", "-m", "over tls", "-q", "1"],
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sub.messages(1) == [("tlsm/t", 1, False, "over tls")]


def test_plain_mqtt_on_the_tls_port_is_closed(tls_server, raw):
    client = raw(tls_server.ports["mqtts"])
    client.send(connect_packet("no-tls"))
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := client.sock.recv(4096):  # a TLS alert perhaps, then end of stream
            received += chunk
    assert not received.startswith(b"\x20")  # no CONNACK
    other = raw(tls_server.port)
    assert other.connect("after-plain").reason == 0


# -- $SYS --------------------------------------------------------------------------------------


def test_sys_topics_are_published_but_not_matched_by_leading_wildcards(make_server, paho_client):
    server = make_server(sys_interval=0.2)
    everything = paho_client(server.port).connect()
    everything.subscribe([("#", 0), ("+/broker/#", 0)])
    watcher = paho_client(server.port).connect()
    watcher.subscribe("$SYS/broker/#", 0)
    seen = []
    while not any(m.topic == "$SYS/broker/uptime" and not m.retain for m in seen):
        seen.append(watcher.get())  # until a whole live update has come after the subscribe
    topics = {m.topic for m in seen}
    assert {"$SYS/broker/version", "$SYS/broker/clients/connected"} <= topics
    paho_client(server.port).connect().publish("sys/sentinel", b"", qos=1)
    # MQTT-4.7.2-1: topic filters starting with a wildcard don't match topics starting with $.
    assert [m.topic for m in everything.until("sys/sentinel")] == ["sys/sentinel"]


def test_sys_topics_cannot_be_published_by_clients(make_server, paho_client):
    server = make_server(sys_interval=0.2)
    watcher = paho_client(server.port).connect()
    watcher.subscribe([("$SYS/broker/version", 0), ("$SYS/broker/uptime", 0)])
    pub = paho_client(server.port).connect()
    # 4.7.2: $ topics are the server's. It may refuse (PUBACK >= 0x80, or closing the
    # connection) or accept and drop; no subscriber may see the forgery.
    pub.publish("$SYS/broker/version", b"fake", qos=1, retain=True)
    live_updates = 0
    while live_updates < 2:
        message = watcher.get()
        assert message.payload != b"fake"
        if message.topic == "$SYS/broker/uptime" and not message.retain:
            live_updates += 1
    late = paho_client(server.port).connect()
    late.subscribe("$SYS/broker/version", 0)
    assert late.get().payload.startswith(b"hongshan")


# -- HTTP --------------------------------------------------------------------------------------


def test_health_endpoint(server):
    url = f"http://{HOST}:{server.ports['http']}/api/health"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("application/json")
        body = json.loads(response.read())
    assert body["status"] == "ok"
    assert body["listeners"]["mqtt"] == server.port


def test_websocket_frame_may_carry_several_packets_above_max_packet_size(make_server):
    server = make_server(ws_port=0, max_packet_size=1024)
    url = f"ws://{HOST}:{server.ports['ws']}/mqtt"
    with websocket_connect(url, subprotocols=["mqtt"], open_timeout=TIMEOUT) as ws:
        publishes = [
            publish_packet("wsf/t", b"p" * 800, version=V311, qos=1, packet_id=i) for i in (1, 2, 3)
        ]
        # Each packet is within the 1024-byte limit; together they are one 2.5 kB frame.
        # MQTT-6.0.0-2: the receiver MUST NOT assume packets are aligned on frame boundaries.
        ws.send(connect_packet("ws-big-frame", version=V311) + b"".join(publishes))
        received = b""
        expected = b"\x20\x02\x00\x00" + b"".join(b"\x40\x02\x00" + bytes([i]) for i in (1, 2, 3))
        while len(received) < len(expected):
            received += ws.recv(timeout=TIMEOUT)
        assert received == expected


@pytest.mark.parametrize("listener", ["mqtts", "ws"])
def test_silent_connections_on_other_listeners_are_closed_after_connect_timeout(
    make_server, certificate, raw, listener
):
    cert, key = certificate
    server = make_server(
        connect_timeout=0.5, ws_port=0, tls_port=0, tls_cert=str(cert), tls_key=str(key)
    )
    # A TCP connection that never starts TLS / the WebSocket handshake is as CONNECT-less as
    # one on the plain port (3.1.1 3.1 / 5.0 3.1: closed after a reasonable time).
    silent = raw(server.ports[listener])
    silent.sock.settimeout(5)
    try:
        data = silent.sock.recv(4096)
    except ConnectionResetError:
        data = b""
    except TimeoutError:
        pytest.fail(f"{listener}: still open 5 s into a 0.5 s connect_timeout")
    assert data == b""
