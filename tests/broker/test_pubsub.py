"""Publish and subscribe at QoS 0, 1 and 2, both directions, against clients we did not write:
paho-mqtt (3.1.1 and 5.0), gmqtt (5.0, asyncio), ``mosquitto_pub``/``mosquitto_sub``, and the
raw client for the packet-level rules no library lets us see."""

from __future__ import annotations

import asyncio
import threading

import gmqtt
import pytest
from gmqtt.mqtt.constants import MQTTv50
from paho.mqtt.client import SubscribeOptions
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker_peers import (
    HOST,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    TIMEOUT,
    V5,
    V311,
    mosquitto_pub,
    payloads,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


@VERSIONS
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_delivered_qos_is_the_minimum_of_published_and_granted(
    server, paho_client, version, pub_qos, sub_qos
):
    sub = paho_client(server.port, version=version).connect()
    pub = paho_client(server.port, version=version).connect()
    # Hongshan supports QoS 2, so it grants what is asked (MQTT-3.9.3: granted <= requested).
    assert sub.subscribe("q/t", sub_qos) == [sub_qos]
    assert pub.publish("q/t", b"hello", qos=pub_qos) == 0
    message = sub.get()
    # MQTT-3.8.4-6 (3.1.1) / MQTT-3.8.4-8 (5.0): delivered at min(publish QoS, granted QoS).
    assert (message.topic, message.payload, message.qos) == ("q/t", b"hello", min(pub_qos, sub_qos))
    assert not message.retain


@VERSIONS
def test_qos2_from_client_is_delivered_once_despite_a_resent_publish(
    server, paho_client, raw, version
):
    sub = paho_client(server.port, version=V311).connect()
    sub.subscribe("q2/#", 2)
    client = raw(server.port, version=version)
    client.connect("q2-publisher")
    message = client.publish_bytes("q2/t", b"once", qos=2, packet_id=7)
    client.send(message)
    assert client.expect(PUBREC).packet_id == 7
    # The PUBREC "was lost": the sender resends the PUBLISH with DUP=1 (MQTT-4.3.3). The
    # receiver MUST NOT cause duplicate delivery to onward recipients (MQTT-4.3.3-2 3.1.1 /
    # MQTT-4.3.3-9 5.0) and answers with PUBREC again.
    client.publish("q2/t", b"once", qos=2, packet_id=7, dup=True)
    assert client.expect(PUBREC).packet_id == 7
    client.ack(PUBREL, 7)
    assert client.expect(PUBCOMP).packet_id == 7
    # After PUBCOMP the same identifier starts a new message (MQTT-4.3.3, method B).
    client.publish("q2/t", b"again", qos=2, packet_id=7)
    assert client.expect(PUBREC).packet_id == 7
    client.ack(PUBREL, 7)
    assert client.expect(PUBCOMP).packet_id == 7
    # paho hands a QoS 2 message over at PUBREL (method A), so the sentinel is QoS 2 too.
    client.publish("q2/end", b"", qos=2, packet_id=8)
    assert client.expect(PUBREC).packet_id == 8
    client.ack(PUBREL, 8)
    assert client.expect(PUBCOMP).packet_id == 8
    assert [(m.topic, m.payload) for m in sub.until("q2/end")] == [
        ("q2/t", b"once"),
        ("q2/t", b"again"),
        ("q2/end", b""),
    ]


@VERSIONS
def test_server_side_qos_flows_at_packet_level(server, paho_client, raw, version):
    """What the server sends a subscriber: non-zero, distinct packet identifiers for QoS 1/2
    in flight (MQTT-2.3.1-1, -2), PUBREL with flags 0010 (MQTT-3.6.1-1), PUBREL answered by
    PUBCOMP ends the flow."""
    client = raw(server.port, version=version)
    client.connect("flows-sub")
    assert client.subscribe(1, [("fl/1", 1), ("fl/2", 2)]).codes == [1, 2]
    pub = paho_client(server.port).connect()
    pub.publish_many("fl/1", [b"a", b"b", b"c"], qos=1)
    pub.publish_many("fl/2", [b"x", b"y", b"z"], qos=2)
    got = [client.expect(PUBLISH) for _ in range(6)]
    ids = [p.packet_id for p in got]
    assert 0 not in ids
    assert len(set(ids)) == 6, ids
    assert [(p.topic, p.qos, p.payload, p.dup) for p in got] == [
        ("fl/1", 1, b"a", False),
        ("fl/1", 1, b"b", False),
        ("fl/1", 1, b"c", False),
        ("fl/2", 2, b"x", False),
        ("fl/2", 2, b"y", False),
        ("fl/2", 2, b"z", False),
    ]
    for p in got[:3]:
        client.ack(PUBACK, p.packet_id)
    for p in got[3:]:
        client.ack(PUBREC, p.packet_id)
        pubrel = client.expect(PUBREL)
        assert (pubrel.packet_id, pubrel.flags) == (p.packet_id, 0b0010)
        client.ack(PUBCOMP, p.packet_id)
    assert client.until_pong() == []


@VERSIONS
def test_overlapping_subscriptions_deliver_at_the_highest_qos(server, paho_client, version):
    sub = paho_client(server.port, version=version).connect()
    pub = paho_client(server.port).connect()
    assert sub.subscribe([("ov/#", 0), ("ov/+/c", 2), ("ov/b/c", 1), ("end-ov", 2)]) == [
        0,
        2,
        1,
        2,
    ]
    pub.publish("ov/b/c", b"m", qos=2)
    pub.publish("end-ov", b"", qos=2)
    copies = [m for m in sub.until("end-ov") if m.topic == "ov/b/c"]
    # MQTT-3.3.5-1 (3.1.1) / MQTT-3.3.4-2 (5.0): delivered respecting the maximum QoS of all
    # matching subscriptions; further copies, one per extra matching subscription, MAY follow.
    assert 1 <= len(copies) <= 3
    assert max(m.qos for m in copies) == 2
    assert all(m.payload == b"m" for m in copies)


def test_overlapping_subscriptions_carry_every_subscription_identifier(server, paho_client):
    sub = paho_client(server.port).connect()
    pub = paho_client(server.port).connect()
    for topic_filter, qos, ident in (("si/#", 2, 1), ("si/+/c", 2, 2)):
        properties = Properties(PacketTypes.SUBSCRIBE)
        properties.SubscriptionIdentifier = ident
        assert sub.subscribe(topic_filter, qos, properties=properties) == [qos]
    sub.subscribe("si/b/c", 1)  # no identifier
    pub.publish("si/b/c", b"m", qos=1)
    pub.publish("si/x", b"one", qos=2)  # QoS 2 like the copies: paho's order is PUBREL order
    received = sub.until("si/x")
    copies = [m for m in received if m.topic == "si/b/c"]
    seen = set()
    for message in copies:
        seen.update(getattr(message.properties, "SubscriptionIdentifier", []))
    # MQTT-3.3.4-3/-4/-5: every matching subscription's identifier reaches the client, whether
    # in one copy or one per copy.
    assert seen == {1, 2}
    only = received[-1]
    assert only.properties.SubscriptionIdentifier == [1]


def test_no_local_subscription_does_not_echo_own_messages(server, paho_client):
    client = paho_client(server.port, client_id="no-local").connect()
    other = paho_client(server.port).connect()
    client.subscribe("nl/#", SubscribeOptions(qos=1, noLocal=True))
    client.publish("nl/mine", b"mine", qos=1)
    other.publish("nl/theirs", b"theirs", qos=1)
    # MQTT-3.8.3-3: with No Local, not forwarded to the publishing connection's client id.
    assert [m.topic for m in client.until("nl/theirs")] == ["nl/theirs"]


@VERSIONS
def test_unsubscribe_stops_delivery(server, paho_client, version):
    sub = paho_client(server.port, version=version).connect()
    pub = paho_client(server.port).connect()
    sub.subscribe([("un/a", 1), ("un/b", 1)])
    sub.unsubscribe("un/a")
    pub.publish("un/a", b"gone", qos=1)
    pub.publish("un/b", b"kept", qos=1)
    # MQTT-3.10.4-2 (3.1.1) / MQTT-3.10.4-2 (5.0): the Server MUST stop adding new messages.
    assert payloads(sub.until("un/b")) == [b"kept"]


@VERSIONS
def test_one_publishers_qos1_messages_arrive_in_order(server, paho_client, version):
    sub = paho_client(server.port, version=version).connect()
    pub = paho_client(server.port, version=version).connect()
    sub.subscribe("order/t", 1)
    bodies = [str(i).encode() for i in range(1000)]
    assert pub.publish_many("order/t", bodies, qos=1) == [0] * 1000
    # MQTT 4.6 (MQTT-4.6.0-5 3.1.1 / MQTT-4.6.0-6 5.0): an ordered topic by default.
    assert payloads(sub.take(1000, timeout=30)) == bodies


def test_interleaved_publishers_each_keep_their_order(server, paho_client):
    sub = paho_client(server.port, version=V311).connect()
    sub.subscribe("mix/#", 1)
    publishers = [paho_client(server.port).connect() for _ in range(2)]
    errors: list[BaseException] = []

    def flood(index: int) -> None:
        try:
            publishers[index].publish_many(f"mix/{index}", [b"%d" % i for i in range(300)], 1)
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not errors
    received = sub.take(600, timeout=20)
    for index in range(2):
        mine = [int(m.payload) for m in received if m.topic == f"mix/{index}"]
        assert mine == list(range(300))


# -- gmqtt (asyncio, 5.0) ---------------------------------------------------------------------


async def gmqtt_client(port: int, client_id: str, received: asyncio.Queue) -> gmqtt.Client:
    client = gmqtt.Client(client_id)
    client.set_config({"reconnect_retries": 0})
    subscribed = asyncio.Event()

    def on_message(client, topic, payload, qos, properties):
        received.put_nowait((topic, payload, qos, properties))
        return 0

    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.subscribed = subscribed
    await asyncio.wait_for(client.connect(HOST, port, version=MQTTv50), TIMEOUT)
    return client


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_gmqtt_publish_and_subscribe(server, qos):
    received: asyncio.Queue = asyncio.Queue()
    sub = await gmqtt_client(server.port, "gm-sub", received)
    pub = await gmqtt_client(server.port, "gm-pub", asyncio.Queue())
    try:
        sub.subscribe("gm/t", qos=qos)
        await asyncio.wait_for(sub.subscribed.wait(), TIMEOUT)
        for i in range(3):
            pub.publish("gm/t", f"m{i}".encode(), qos=qos)
        got = [await asyncio.wait_for(received.get(), TIMEOUT) for _ in range(3)]
        assert [(t, p, q) for t, p, q, _ in got] == [
            ("gm/t", b"m0", qos),
            ("gm/t", b"m1", qos),
            ("gm/t", b"m2", qos),
        ]
    finally:
        await pub.disconnect()
        await sub.disconnect()


async def test_gmqtt_subscriber_receives_from_paho_publisher(server, paho_client):
    received: asyncio.Queue = asyncio.Queue()
    sub = await gmqtt_client(server.port, "gm-sub2", received)
    try:
        sub.subscribe("gm/x/#", qos=2)
        await asyncio.wait_for(sub.subscribed.wait(), TIMEOUT)
        pub = paho_client(server.port, version=V311).connect()
        await asyncio.to_thread(pub.publish, "gm/x/1", b"from paho", 2)
        topic, payload, qos, _ = await asyncio.wait_for(received.get(), TIMEOUT)
        assert (topic, payload, qos) == ("gm/x/1", b"from paho", 2)
    finally:
        await sub.disconnect()


# -- mosquitto_pub / mosquitto_sub -------------------------------------------------------------


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_clients(server, mosquitto_sub, version, qos):
    sub = mosquitto_sub(server.port, "mq/#", "-q", str(qos), "-C", "2", version=version)
    mosquitto_pub(server.port, "mq/a", "hello", "-q", str(qos), version=version)
    mosquitto_pub(server.port, "mq/b", "world", "-q", str(qos), version=version)
    assert sub.messages(2) == [("mq/a", qos, False, "hello"), ("mq/b", qos, False, "world")]
    assert sub.proc.wait(TIMEOUT) == 0


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_retained_and_cleared(server, mosquitto_sub, version):
    mosquitto_pub(server.port, "mqr/t", "kept", "-q", "1", "-r", version=version)
    sub = mosquitto_sub(server.port, "mqr/t", "-q", "1", "-C", "1", version=version)
    assert sub.messages(1) == [("mqr/t", 1, True, "kept")]
    mosquitto_pub(server.port, "mqr/t", None, "-q", "1", "-r", version=version)
    mosquitto_pub(server.port, "mqr/u", "other", "-q", "1", "-r", version=version)
    sub = mosquitto_sub(server.port, "mqr/#", "-q", "1", "-C", "2", version=version)
    mosquitto_pub(server.port, "mqr/end", "live", "-q", "1", version=version)
    # The retained message on mqr/t is gone (MQTT-3.3.1-10 3.1.1 / MQTT-3.3.1-6 5.0): the
    # only retained message for mqr/# is mqr/u, then comes the live one.
    assert sub.messages(2) == [("mqr/u", 1, True, "other"), ("mqr/end", 1, False, "live")]


def test_fan_out_to_many_subscribers(server, raw, paho_client):
    subscribers = []
    for index in range(200):
        client = raw(server.port, version=V5 if index % 2 else V311)
        client.connect(f"fan-{index}")
        client.subscribe(1, [("fan/t", 1)])
        subscribers.append(client)
    paho_client(server.port).connect().publish("fan/t", b"to all", qos=1)
    for client in subscribers:
        message = client.expect(PUBLISH)
        assert (message.topic, message.payload, message.qos) == ("fan/t", b"to all", 1)


def test_a_derived_subscription_delivers_to_the_client_the_topic_names(server, paho_client):
    broker = server.platform.broker
    server.call(lambda: broker.derive("derived/+/in", lambda topic: topic.split("/")[1] or None))
    alice = paho_client(server.port, client_id="alice")
    alice.connect()
    bob = paho_client(server.port, client_id="bob")
    bob.connect()
    bob.publish("derived/alice/in", b"for alice", qos=1)
    assert alice.get().payload == b"for alice"
    bob.publish("derived/carol/in", b"nobody's", qos=1)  # no such session: dropped
    alice.publish("derived/alice/in", b"her own", qos=1)  # no-local: not back to her
    # an explicit subscription that overlaps: still one copy
    alice.subscribe("derived/#", qos=1)
    bob.publish("derived/alice/in", b"once", qos=1)
    messages = [m.payload for m in alice.until("derived/alice/in", payload=b"once")]
    assert messages.count(b"once") == 1 and b"nobody's" not in messages
    bob.publish("derived/bob/in", b"bob's", qos=1)  # alice sees it by her own subscription
    assert alice.get().payload == b"bob's"
    assert alice.drain() == []


@VERSIONS
def test_a_message_sent_to_one_session_goes_at_its_granted_qos(server, paho_client, version):
    """``send_to`` (a dialect's answer to one client): at the lower of the QoS asked and the
    highest one a matching subscription granted; a topic without one, at the QoS asked."""
    broker = server.platform.broker
    alice = paho_client(server.port, version=version, client_id="alice").connect()
    assert alice.subscribe([("to/alice/+", 0), ("to/alice/rpc", 0), ("to/alice/#", 1)]) == [
        0,
        0,
        1,
    ]
    assert alice.subscribe("low/#", 0) == [0]
    for topic, qos in (("low/x", 1), ("to/alice/rpc", 2), ("unasked", 1), ("low/y", 0)):
        assert server.call(lambda t=topic, q=qos: broker.send_to("alice", t, b"", q))
    received = [(m.topic, m.qos) for m in alice.take(4)]
    assert received == [("low/x", 0), ("to/alice/rpc", 1), ("unasked", 1), ("low/y", 0)]
    assert not server.call(lambda: broker.send_to("nobody", "low/x", b"", 1))
