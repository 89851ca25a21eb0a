"""Sessions (MQTT 3.1.1 3.1.2.4 and 4.1, 5.0 3.1.2.4, 3.1.2.11.2 and 4.1): persistent and
clean, redelivery after reconnect, expiry, takeover."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes

from broker_peers import (
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SESSION_EXPIRY,
    V5,
    V311,
    eventually,
    payloads,
    v5_props,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


def persistent(paho_client, port, version, client_id, expiry=300):
    properties = None
    if version == V5:
        properties = v5_props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)
    return paho_client(
        port, version=version, client_id=client_id, clean=False, properties=properties
    )


@VERSIONS
def test_persistent_session_gets_messages_published_while_away(server, paho_client, version):
    sub = persistent(paho_client, server.port, version, "away-sub").connect()
    # MQTT-3.2.2-3 (3.1.1) / MQTT-3.2.2-3 (5.0): no stored session, Session Present 0.
    assert sub.session_present is False
    assert sub.subscribe([("away/1", 1), ("away/2", 2)]) == [1, 2]
    sub.disconnect()
    pub = paho_client(server.port, version=version).connect()
    pub.publish_many("away/1", [b"a1", b"a2", b"a3"], qos=1)
    pub.publish_many("away/2", [b"b1", b"b2", b"b3"], qos=2)
    back = persistent(paho_client, server.port, version, "away-sub").connect()
    # MQTT-3.2.2-2 (3.1.1) / MQTT-3.2.2-2 (5.0): the session was resumed, Session Present 1.
    assert back.session_present is True
    got = back.take(6)
    # MQTT-3.1.2-5 (3.1.1) / 4.1 (5.0): QoS 1 and 2 messages for the session's subscriptions
    # were stored while it was disconnected; per topic, in order (4.6).
    assert payloads(m for m in got if m.topic == "away/1") == [b"a1", b"a2", b"a3"]
    assert payloads(m for m in got if m.topic == "away/2") == [b"b1", b"b2", b"b3"]
    assert {m.qos for m in got if m.topic == "away/2"} == {2}
    # The subscriptions are part of the session (MQTT-3.1.2-4 / 4.1): still in force.
    pub.publish("away/1", b"live", qos=1)
    assert back.get().payload == b"live"


@VERSIONS
def test_clean_session_discards_the_old_one(server, paho_client, version):
    old = persistent(paho_client, server.port, version, "cleaned").connect()
    old.subscribe("cl/t", 1)
    old.disconnect()
    fresh = paho_client(server.port, version=version, client_id="cleaned", clean=True).connect()
    # MQTT-3.2.2-1 (3.1.1) / MQTT-3.2.2-1 (5.0): clean start, Session Present 0;
    # MQTT-3.1.2-6 / MQTT-3.1.2-4: the old session and its subscriptions are discarded.
    assert fresh.session_present is False
    fresh.subscribe("cl/sentinel", 1)
    pub = paho_client(server.port).connect()
    pub.publish("cl/t", b"for the old session", qos=1)
    pub.publish("cl/sentinel", b"", qos=1)
    assert [m.topic for m in fresh.until("cl/sentinel")] == ["cl/sentinel"]


@VERSIONS
def test_unacknowledged_messages_are_resent_with_dup_after_reconnect(
    server, paho_client, raw, version
):
    properties = {SESSION_EXPIRY: 300} if version == V5 else None
    sub = raw(server.port, version=version)
    sub.connect("dup-sub", clean=False, properties=properties)
    assert sub.subscribe(1, [("dup/1", 1), ("dup/2", 2), ("dup/3", 2)]).codes == [1, 2, 2]
    pub = paho_client(server.port).connect()
    pub.publish("dup/1", b"one", qos=1)
    pub.publish("dup/2", b"two", qos=2)
    pub.publish("dup/3", b"three", qos=2)
    first = [sub.expect(PUBLISH) for _ in range(3)]
    assert [(p.topic, p.dup) for p in first] == [
        ("dup/1", False),
        ("dup/2", False),
        ("dup/3", False),
    ]
    one, two, three = first
    sub.ack(PUBREC, three.packet_id)  # "three" reaches PUBREL; "one" and "two" never acked
    assert sub.expect(PUBREL).packet_id == three.packet_id
    sub.close()

    again = raw(server.port, version=version)
    assert again.connect("dup-sub", clean=False, properties=properties).session_present
    resent = again.until_pong()
    # MQTT-4.4.0-1: unacknowledged PUBLISH and PUBREL packets are resent with their original
    # packet identifiers; MQTT-3.3.1-1: a resent PUBLISH has DUP=1; MQTT-4.6.0-1 (3.1.1) /
    # MQTT-4.6.0-1 (5.0): PUBLISH packets in their original order; PUBREL, not PUBLISH, for
    # the message whose PUBREC the server had.
    publishes = [p for p in resent if p.type == PUBLISH]
    assert [(p.packet_id, p.topic, p.payload, p.qos, p.dup) for p in publishes] == [
        (one.packet_id, "dup/1", b"one", 1, True),
        (two.packet_id, "dup/2", b"two", 2, True),
    ]
    assert [(p.type, p.packet_id) for p in resent if p.type != PUBLISH] == [
        (PUBREL, three.packet_id)
    ]
    again.ack(PUBACK, one.packet_id)
    again.ack(PUBREC, two.packet_id)
    assert again.expect(PUBREL).packet_id == two.packet_id
    again.ack(PUBCOMP, two.packet_id)
    again.ack(PUBCOMP, three.packet_id)
    assert again.until_pong() == []
    again.close()

    # Acknowledged messages are not sent a third time.
    last = raw(server.port, version=version)
    assert last.connect("dup-sub", clean=False, properties=properties).session_present
    assert last.until_pong() == []


def test_session_expiry_interval_ends_the_session(server, paho_client):
    sub = persistent(paho_client, server.port, V5, "expiring", expiry=1).connect()
    sub.subscribe("exp/t", 1)
    sub.disconnect()
    broker = server.platform.broker
    # 3.1.2.11.2: the server keeps the session for the Session Expiry Interval, then ends it.
    eventually(lambda: server.call(lambda: "expiring" not in broker.sessions), what="expiry")
    pub = paho_client(server.port).connect()
    pub.publish("exp/t", b"too late", qos=1)
    back = persistent(paho_client, server.port, V5, "expiring").connect()
    assert back.session_present is False
    back.subscribe("exp/sentinel", 1)
    pub.publish("exp/sentinel", b"", qos=1)
    assert [m.topic for m in back.until("exp/sentinel")] == ["exp/sentinel"]


def test_session_expiry_zero_ends_the_session_with_the_connection(server, paho_client):
    # 5.0 3.1.2.11.2: absent Session Expiry Interval is 0, the session ends at disconnect,
    # even with Clean Start 0.
    sub = paho_client(server.port, client_id="no-expiry", clean=False).connect()
    sub.subscribe("noexp/t", 1)
    sub.disconnect()
    back = paho_client(server.port, client_id="no-expiry", clean=False).connect()
    assert back.session_present is False


def test_disconnect_may_set_a_session_expiry(server, paho_client):
    # 5.0 3.14.2.2.2: a DISCONNECT may carry a new Session Expiry Interval (not from 0 though,
    # MQTT-3.14.2-2); the session is then kept by that value.
    sub = persistent(paho_client, server.port, V5, "extended", expiry=1).connect()
    sub.subscribe("ext/t", 1)
    sub.disconnect(properties=v5_props(PacketTypes.DISCONNECT, SessionExpiryInterval=300))
    pub = paho_client(server.port).connect()
    pub.publish("ext/t", b"kept", qos=1)
    broker = server.platform.broker
    assert server.call(lambda: broker.sessions["extended"].expiry_interval) == 300
    back = persistent(paho_client, server.port, V5, "extended").connect()
    assert back.session_present is True
    assert back.get().payload == b"kept"


@VERSIONS
def test_second_connection_with_the_same_client_id_takes_over(server, paho_client, raw, version):
    properties = {SESSION_EXPIRY: 300} if version == V5 else None
    first = raw(server.port, version=version)
    first.connect("taken", clean=False, properties=properties)
    first.subscribe(1, [("take/t", 1)])
    second = persistent(paho_client, server.port, version, "taken").connect()
    # MQTT-3.1.4-2 (3.1.1) / MQTT-3.1.4-3 (5.0): the server disconnects the existing client;
    # in 5.0 with DISCONNECT 0x8E, Session taken over.
    before_close = first.closed()
    if version == V5:
        assert [(p.type, p.reason) for p in before_close] == [(DISCONNECT, 0x8E)]
    else:
        assert before_close == []
    # The session (and its subscription) passes to the new connection.
    assert second.session_present is True
    pub = paho_client(server.port).connect()
    pub.publish("take/t", b"to the new one", qos=1)
    assert second.get().payload == b"to the new one"
    assert second.client.is_connected()


def test_offline_queue_is_bounded_ordered_and_first_deliveries_have_dup_0(make_server, raw):
    server = make_server(max_queued_messages=10)
    sub = raw(server.port, version=V311)
    sub.connect("queued", clean=False)
    sub.subscribe(1, [("queued/t", 1)])
    sub.disconnect()
    sub.close()
    pub = raw(server.port, version=V311)
    pub.connect("queued-pub")
    for packet_id in range(1, 31):
        pub.publish("queued/t", b"%d" % packet_id, qos=1, packet_id=packet_id)
        assert pub.expect(PUBACK).packet_id == packet_id
    broker = server.platform.broker
    assert server.call(lambda: len(broker.sessions["queued"].queue)) <= 10
    back = raw(server.port, version=V311)
    assert back.connect("queued", clean=False).session_present
    got = back.until_pong()
    numbers = [int(p.payload) for p in got]
    # Bounded by max_queued_messages, and what is kept keeps its order (4.6).
    assert 0 < len(numbers) <= 10
    assert numbers == sorted(numbers)
    # 3.3.1.1, MQTT-3.3.1-1: DUP=0 the first time the server attempts to send a PUBLISH.
    assert not [p for p in got if p.dup]


def test_takeover_passes_unacknowledged_messages_to_the_new_connection(server, raw, paho_client):
    first = raw(server.port, version=V311)
    first.connect("inflight-takeover", clean=False)
    first.subscribe(1, [("ito/t", 1)])
    paho_client(server.port).connect().publish("ito/t", b"unacked", qos=1)
    original = first.expect(PUBLISH)
    second = raw(server.port, version=V311)
    assert second.connect("inflight-takeover", clean=False).session_present
    # MQTT-4.4.0-1: resent on the session's new connection, same identifier, DUP=1.
    resent = second.until_pong()
    assert [(p.packet_id, p.payload, p.dup) for p in resent] == [
        (original.packet_id, b"unacked", True)
    ]
