"""MQTT 5.0 message properties and subscription details: what the server must forward unaltered,
what it must adjust (Message Expiry), and reason codes of SUBACK/UNSUBACK."""

from __future__ import annotations

import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from broker_peers import (
    DISCONNECT,
    PUBLISH,
    SESSION_EXPIRY,
    SUBACK,
    SUBSCRIBE,
    SUBSCRIPTION_ID,
    UNSUBACK,
    UNSUBSCRIBE,
    V5,
    V311,
    Closed,
    packet,
    props,
    utf8,
    v5_props,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
MESSAGE_EXPIRY = 0x02


def test_publish_properties_are_forwarded_unaltered(server, paho_client):
    sub = paho_client(server.port).connect()
    sub.subscribe("prop/t", 1)
    pub = paho_client(server.port).connect()
    properties = v5_props(
        PacketTypes.PUBLISH,
        PayloadFormatIndicator=1,
        ContentType="application/json",
        ResponseTopic="prop/reply",
        CorrelationData=b"\x00\x01corr",
        UserProperty=[("b", "2"), ("a", "1"), ("a", "0")],
    )
    pub.publish("prop/t", b"{}", qos=1, properties=properties)
    got = sub.get().properties
    # MQTT-3.3.2-4: Payload Format Indicator unaltered; MQTT-3.3.2-20: Content Type;
    # MQTT-3.3.2-15: Response Topic; MQTT-3.3.2-16: Correlation Data; MQTT-3.3.2-17/-18:
    # every User Property, in order.
    assert got.PayloadFormatIndicator == 1
    assert got.ContentType == "application/json"
    assert got.ResponseTopic == "prop/reply"
    assert got.CorrelationData == b"\x00\x01corr"
    assert got.UserProperty == [("b", "2"), ("a", "1"), ("a", "0")]


def test_message_expiry_is_counted_down_when_forwarded(server, paho_client, raw):
    sub = raw(server.port)
    sub.connect("expiry-live")
    sub.subscribe(1, [("mexp/t", 1)])
    pub = paho_client(server.port).connect()
    pub.publish(
        "mexp/t", b"x", qos=1, properties=v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=60)
    )
    got = sub.expect(PUBLISH)
    # MQTT-3.3.2-6: the received value minus the time it waited in the server.
    assert 55 <= got.properties.get(MESSAGE_EXPIRY, -1) <= 60


def test_expired_messages_are_not_delivered_to_a_returning_session(server, paho_client, raw):
    sub = raw(server.port)
    sub.connect("expiry-away", clean=False, properties={SESSION_EXPIRY: 300})
    sub.subscribe(1, [("mexp/away", 1)])
    sub.close()
    pub = paho_client(server.port).connect()
    short = v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=1)
    pub.publish("mexp/away", b"stale", qos=1, properties=short)
    pub.publish("mexp/away", b"fresh", qos=1)
    time.sleep(1.2)  # let the 1 s expiry pass: the subject of the test is time itself
    back = raw(server.port)
    assert back.connect(
        "expiry-away", clean=False, properties={SESSION_EXPIRY: 300}
    ).session_present
    # MQTT-3.3.2-5: expired before onward delivery started, the copy is deleted.
    assert [p.payload for p in back.until_pong() if p.type == PUBLISH] == [b"fresh"]


def test_subscription_identifier_in_a_client_publish_is_a_protocol_error(server, raw):
    client = raw(server.port)
    client.connect("sends-sub-id")
    client.publish("sid/t", b"x", qos=0, properties={SUBSCRIPTION_ID: 5})
    # MQTT-3.3.4-6: a PUBLISH from a client MUST NOT contain a Subscription Identifier.
    assert [p.reason for p in client.closed() if p.type == DISCONNECT] in ([], [0x82])


@VERSIONS
def test_unsubscribe_without_a_subscription_is_still_acknowledged(server, raw, version):
    client = raw(server.port, version=version)
    client.connect("unsub-nothing")
    body = b"\x00\x05" + (props() if version == V5 else b"") + utf8("never/subscribed")
    client.send(packet(UNSUBSCRIBE, 0x02, body))
    unsuback = client.expect(UNSUBACK)
    # MQTT-3.10.4-5: an UNSUBACK even when nothing was deleted; 5.0 3.11.3: reason 0x11,
    # No subscription existed (0x00 would claim one did).
    assert unsuback.packet_id == 5
    if version == V5:
        assert unsuback.codes == [0x11]


@VERSIONS
def test_resubscribing_replaces_the_subscription(server, paho_client, version):
    sub = paho_client(server.port, version=version).connect()
    pub = paho_client(server.port).connect()
    assert sub.subscribe("rep/t", 0) == [0]
    assert sub.subscribe("rep/t", 2) == [2]
    sub.subscribe("rep/end", 2)
    pub.publish("rep/t", b"x", qos=2)
    pub.publish("rep/end", b"", qos=2)
    # MQTT-3.8.4-3: an identical filter replaces the subscription: one copy, at the new QoS.
    copies = [m for m in sub.until("rep/end") if m.topic == "rep/t"]
    assert [(m.payload, m.qos) for m in copies] == [(b"x", 2)]


@VERSIONS
@pytest.mark.parametrize("bad_filter", ["a/#/b", "a#", "a/b+", "#/a", ""])
def test_invalid_topic_filters_are_refused(server, raw, version, bad_filter):
    client = raw(server.port, version=version)
    client.connect("bad-filter")
    body = b"\x00\x01" + (props() if version == V5 else b"") + utf8(bad_filter) + b"\x01"
    client.send(packet(SUBSCRIBE, 0x02, body))
    # 4.7.1 / 4.7.3: invalid filters. 3.1.1 SUBACK 0x80 or close; 5.0 SUBACK 0x8F (Topic
    # Filter invalid) or, for a malformed packet, DISCONNECT >= 0x80 and close.
    try:
        answer = client.read()
    except Closed:
        return
    if answer.type == SUBACK:
        assert answer.codes and answer.codes[0] >= 0x80, answer
    else:
        assert answer.type == DISCONNECT and answer.reason >= 0x80, answer


WILDCARDS = [
    # (filter, matching topics, non-matching topics): the examples of 4.7.1.2 and 4.7.1.3
    (
        "sport/tennis/player1/#",
        ["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/s/w"],
        ["sport/tennis/player2", "sport/tennis"],
    ),
    ("sport/#", ["sport", "sport/tennis", "sport/"], ["sports", "other/sport"]),
    ("sport/tennis/+", ["sport/tennis/player1", "sport/tennis/"], ["sport/tennis/p/ranking"]),
    ("sport/+", ["sport/"], ["sport", "sport/a/b"]),
    ("+/+", ["/finance", "a/b"], ["finance", "a/b/c"]),
    ("/+", ["/finance"], ["finance", "a/b"]),
    ("+", ["finance"], ["/finance"]),
    ("#", ["a", "a/b", "/"], []),
    ("Case/Sensitive", ["Case/Sensitive"], ["case/sensitive", "CASE/SENSITIVE"]),
    ("with space/+", ["with space/x"], ["withspace/x"]),
]


@pytest.mark.parametrize(
    ("topic_filter", "hits", "misses"), WILDCARDS, ids=[w[0] for w in WILDCARDS]
)
def test_topic_filter_matching(server, paho_client, topic_filter, hits, misses):
    sub = paho_client(server.port, version=V311).connect()
    sub.subscribe([(topic_filter, 1), ("zz-sentinel", 1)])
    pub = paho_client(server.port, version=V311).connect()
    for topic in hits + misses:
        pub.publish(topic, topic.encode(), qos=1)
    pub.publish("zz-sentinel", b"", qos=1)
    received = [m.topic for m in sub.until("zz-sentinel") if m.topic != "zz-sentinel"]
    assert received == [t for t in hits + misses if t in hits]


def test_retained_message_on_subscribe_carries_the_subscription_identifier(server, paho_client):
    pub = paho_client(server.port).connect()
    pub.publish("sidr/t", b"kept", qos=1, retain=True)
    sub = paho_client(server.port).connect()
    properties = v5_props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7)
    sub.subscribe("sidr/#", 1, properties=properties)
    message = sub.get()
    # MQTT-3.3.4-3: a message sent because of a subscription carries its identifier, retained
    # messages sent on subscribing included.
    assert (message.payload, message.retain) == (b"kept", True)
    assert message.properties.SubscriptionIdentifier == [7]
