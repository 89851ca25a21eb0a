"""Flow control (MQTT 5.0 4.9, 3.3.4) and back-pressure: Receive Maximum both ways, and a
subscriber that stops reading."""

from __future__ import annotations

import pytest

from broker_peers import (
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RECEIVE_MAXIMUM,
    SESSION_EXPIRY,
    V311,
)


def test_client_exceeding_our_receive_maximum_is_disconnected_0x93(make_server, raw):
    server = make_server(max_inflight=5)
    client = raw(server.port)
    connack = client.connect("greedy")
    # 3.2.2.3.3: the server announces its Receive Maximum.
    assert connack.properties.get(RECEIVE_MAXIMUM) == 5
    # Within the window, completed QoS 2 flows free their slots (4.9: until PUBCOMP).
    for packet_id in range(1, 6):
        client.publish("rm/in", b"ok", qos=2, packet_id=packet_id)
    assert [client.expect(PUBREC).packet_id for _ in range(5)] == [1, 2, 3, 4, 5]
    for packet_id in range(1, 6):
        client.ack(PUBREL, packet_id)
    assert [client.expect(PUBCOMP).packet_id for _ in range(5)] == [1, 2, 3, 4, 5]
    # Five unacknowledged (no PUBREL) QoS 2 messages fill the window; a sixth exceeds it.
    for packet_id in range(6, 11):
        client.publish("rm/in", b"held", qos=2, packet_id=packet_id)
    assert [client.expect(PUBREC).packet_id for _ in range(5)] == [6, 7, 8, 9, 10]
    client.publish("rm/in", b"one too many", qos=2, packet_id=11)
    # 3.3.4 / 4.9: "the Server uses a DISCONNECT packet with Reason Code 0x93 (Receive Maximum
    # exceeded)", then closes the connection.
    assert [(p.type, p.reason) for p in client.closed()] == [(DISCONNECT, 0x93)]


@pytest.mark.parametrize("qos", [1, 2])
def test_subscribers_receive_maximum_is_respected(server, raw, paho_client, qos):
    window = 3
    sub = raw(server.port)
    sub.connect("small-window", properties={RECEIVE_MAXIMUM: window})
    sub.subscribe(1, [("rmo/t", qos)])
    pub = paho_client(server.port, version=V311).connect()
    bodies = [b"%d" % i for i in range(10)]
    pub.publish_many("rmo/t", bodies, qos=qos)
    received: list[bytes] = []
    unacked: list[int] = []
    while len(received) < len(bodies):
        got = sub.until_pong()
        for p in got:
            assert p.type == PUBLISH, p
            unacked.append(p.packet_id)
            received.append(p.payload)
        # MQTT-3.3.4-9: never more than Receive Maximum QoS 1/2 PUBLISH packets unacknowledged.
        assert len(unacked) <= window, f"{len(unacked)} in flight"
        assert unacked, "the server stopped sending with the window open"
        oldest = unacked.pop(0)
        if qos == 1:
            sub.ack(PUBACK, oldest)
        else:
            sub.ack(PUBREC, oldest)
            assert sub.expect(PUBREL).packet_id == oldest
            sub.ack(PUBCOMP, oldest)
    assert received == bodies


def test_slow_subscriber_does_not_stall_others_and_its_queue_is_bounded(
    make_server, raw, paho_client
):
    limit = 20
    server = make_server(max_queued_messages=limit)
    slow = raw(server.port, rcvbuf=2048)
    slow.connect("slow")
    slow.subscribe(1, [("flood/#", 1)])
    # From here on the slow subscriber never reads.
    fast = paho_client(server.port, version=V311).connect()
    fast.subscribe("flood/#", 1)
    pub = paho_client(server.port, version=V311).connect()
    body = b"x" * 2048
    pub.publish_many("flood/data", [body] * 5000, qos=0)
    pub.publish("flood/end", b"end", qos=1)
    # The others keep receiving: the fast subscriber gets through to the last message.
    received = fast.until("flood/end", timeout=30)
    assert len(received) > 1
    broker = server.platform.broker

    def backlog():
        session = broker.sessions["slow"]
        connection = broker.connections["slow"]
        buffered = connection.transport.get_write_buffer_size() if connection.transport else 0
        return len(session.queue or ()), len(session.inflight), buffered

    queued, inflight, buffered = server.call(backlog)
    assert queued <= limit
    assert inflight <= server.settings.max_inflight
    # What the server holds in memory for the slow socket stays bounded too (10 MB were sent).
    assert buffered < 1_000_000, buffered


def test_receive_maximum_applies_to_messages_resent_after_reconnect(server, raw, paho_client):
    session = {SESSION_EXPIRY: 300}
    sub = raw(server.port)
    sub.connect("resend-window", clean=False, properties=session)
    sub.subscribe(1, [("rw/t", 1)])
    pub = paho_client(server.port).connect()
    bodies = [b"%d" % i for i in range(6)]
    pub.publish_many("rw/t", bodies, qos=1)
    assert [p.payload for p in sub.until_pong()] == bodies  # six in flight, none acknowledged
    sub.close()
    back = raw(server.port)
    assert back.connect(
        "resend-window", clean=False, properties={**session, RECEIVE_MAXIMUM: 2}
    ).session_present
    # 4.9: the send quota starts at the new connection's Receive Maximum; MQTT-4.9.0-2 and
    # MQTT-3.3.4-9: no QoS 1/2 PUBLISH beyond it, resent ones included (MQTT-4.4.0-1 resends
    # are PUBLISH packets like any other).
    received: list[bytes] = []
    while len(received) < len(bodies):
        got = back.until_pong()
        assert 0 < len(got) <= 2, [(p.payload, p.dup) for p in got]
        received += [p.payload for p in got]
        for p in got:
            back.ack(PUBACK, p.packet_id)
    assert received == bodies
