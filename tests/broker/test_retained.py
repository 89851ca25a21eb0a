"""Retained messages (MQTT 3.1.1 3.3.1.3, 5.0 3.3.1.3 and 3.8.3.1), with paho-mqtt.

"Nothing retained arrived" is shown with a sentinel: after the SUBACK another client publishes
a live message on the same topic; whatever the server sends on subscribing precedes it."""

from __future__ import annotations

import time

import pytest
from paho.mqtt.client import SubscribeOptions
from paho.mqtt.packettypes import PacketTypes

from broker_peers import V5, V311, v5_props

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


@VERSIONS
def test_retained_message_is_kept_and_sent_on_subscribe_with_retain_set(
    server, paho_client, version
):
    pub = paho_client(server.port, version=version).connect()
    pub.publish("rt/a", b"first", qos=1, retain=True)
    pub.publish("rt/a", b"second", qos=1, retain=True)  # replaces (MQTT-3.3.1-5 3.1.1)
    pub.publish("rt/b", b"b", qos=2, retain=True)
    sub = paho_client(server.port, version=version).connect()
    sub.subscribe("rt/+", 2)
    got = sorted(sub.take(2), key=lambda m: m.topic)
    # MQTT-3.3.1-6/-8 (3.1.1), MQTT-3.3.1-5/-9 (5.0): stored, sent to a new subscription with
    # RETAIN=1, at min(stored QoS, granted QoS).
    assert [(m.topic, m.payload, m.retain, m.qos) for m in got] == [
        ("rt/a", b"second", True, 1),
        ("rt/b", b"b", True, 2),
    ]
    pub.publish("rt/a", b"live", qos=1)
    assert [(m.payload, m.retain) for m in sub.until("rt/a")] == [(b"live", False)]


@pytest.mark.parametrize(
    ("version", "retain_as_published", "expected"),
    [(V311, None, False), (V5, False, False), (V5, True, True)],
    ids=["3.1.1", "5.0", "5.0-rap"],
)
def test_retain_flag_on_messages_for_an_established_subscription(
    server, paho_client, version, retain_as_published, expected
):
    sub = paho_client(server.port, version=version).connect()
    if version == V5:
        sub.subscribe("rf/t", SubscribeOptions(qos=1, retainAsPublished=retain_as_published))
    else:
        sub.subscribe("rf/t", 1)
    pub = paho_client(server.port).connect()
    pub.publish("rf/t", b"r", qos=1, retain=True)
    message = sub.get()
    # MQTT-3.3.1-9 (3.1.1) and MQTT-3.3.1-12 (5.0): RETAIN 0 for an established subscription;
    # MQTT-3.3.1-13 (5.0): with Retain As Published, the flag as published.
    assert (message.payload, message.retain) == (b"r", expected)


@VERSIONS
def test_empty_retained_payload_deletes_and_is_delivered(server, paho_client, version):
    pub = paho_client(server.port, version=version).connect()
    pub.publish("rd/t", b"x", qos=1, retain=True)
    live = paho_client(server.port, version=version).connect()
    live.subscribe("rd/t", 1)
    assert live.get().payload == b"x"
    pub.publish("rd/t", b"", qos=1, retain=True)
    # MQTT-3.3.1-10 (3.1.1) / MQTT-3.3.1-6 (5.0): processed as normal by the server, sent to
    # current subscribers ...
    cleared = live.get()
    assert (cleared.topic, cleared.payload) == ("rd/t", b"")
    # ... and the retained message is removed, the empty one not stored (MQTT-3.3.1-11 3.1.1,
    # MQTT-3.3.1-7 5.0): a new subscriber gets nothing before the live sentinel.
    late = paho_client(server.port, version=version).connect()
    late.subscribe("rd/t", 1)
    pub.publish("rd/t", b"sentinel", qos=1)
    assert [(m.payload, m.retain) for m in late.until("rd/t")] == [(b"sentinel", False)]


def sentinel_then_received(pub, sub, topic):
    pub.publish(topic, b"sentinel", qos=1)
    return [m.payload for m in sub.until(topic, payload=b"sentinel")][:-1]


@pytest.mark.parametrize(
    ("handling", "first", "again"),
    [(0, [b"r"], [b"r"]), (1, [b"r"], []), (2, [], [])],
    ids=["send", "send-if-new", "never"],
)
def test_retain_handling(server, paho_client, handling, first, again):
    pub = paho_client(server.port).connect()
    pub.publish("rh/t", b"r", qos=1, retain=True)
    sub = paho_client(server.port).connect()
    options = SubscribeOptions(qos=1, retainHandling=handling)
    # MQTT-3.3.1-9: 0 sends retained messages on every subscribe; MQTT-3.3.1-10: 1 only when
    # the subscription did not exist; MQTT-3.3.1-11: 2 never.
    assert sub.subscribe("rh/t", options) == [1]
    assert sentinel_then_received(pub, sub, "rh/t") == first
    assert sub.subscribe("rh/t", options) == [1]
    assert sentinel_then_received(pub, sub, "rh/t") == again


@VERSIONS
def test_retained_messages_for_wildcard_filters(server, paho_client, version):
    pub = paho_client(server.port, version=version).connect()
    for topic in ("rw/a/x", "rw/b/x", "rw/b/y", "rw/c/x/deep"):
        pub.publish(topic, topic.encode(), qos=1, retain=True)
    sub = paho_client(server.port, version=version).connect()
    sub.subscribe("rw/+/x", 1)
    got = sorted(m.topic for m in sentinel_messages(pub, sub, "rw/end/x"))
    assert got == ["rw/a/x", "rw/b/x"]
    sub.subscribe("rw/c/#", 1)
    assert [m.topic for m in sentinel_messages(pub, sub, "rw/c/end")] == ["rw/c/x/deep"]


def sentinel_messages(pub, sub, topic):
    pub.publish(topic, b"sentinel", qos=1)
    return sub.until(topic)[:-1]


def test_retained_message_expiry(server, paho_client):
    pub = paho_client(server.port).connect()
    for topic, seconds in (("rx/long", 60), ("rx/short", 1)):
        properties = v5_props(PacketTypes.PUBLISH, MessageExpiryInterval=seconds)
        pub.publish(topic, b"r", qos=1, retain=True, properties=properties)
    sub = paho_client(server.port).connect()
    sub.subscribe("rx/long", 1)
    # MQTT-3.3.2-6: sent with what is left of the Message Expiry Interval.
    assert 55 <= sub.get().properties.MessageExpiryInterval <= 60
    time.sleep(1.2)  # the subject is time passing: let the short expiry run out
    late = paho_client(server.port).connect()
    late.subscribe("rx/short", 1)
    # 3.3.2.3.3: once its interval has passed an expired retained message is not delivered.
    assert sentinel_then_received(pub, late, "rx/short") == []


def test_retained_topics_beyond_the_maximum_are_delivered_but_not_kept(make_server, paho_client):
    server = make_server(max_retained_messages=2)
    pub = paho_client(server.port).connect()
    live = paho_client(server.port).connect()
    live.subscribe("cap/#", 1)
    for topic in ("cap/a", "cap/b", "cap/c"):
        pub.publish(topic, topic.encode(), qos=1, retain=True)
    # the third is delivered to the live subscriber all the same
    assert [m.topic for m in live.until("cap/c")] == ["cap/a", "cap/b", "cap/c"]
    pub.publish("cap/a", b"replaced", qos=1, retain=True)  # an existing topic may be replaced
    sub = paho_client(server.port).connect()
    sub.subscribe("cap/#", 1)
    pub.publish("cap/end", b"sentinel", qos=1)
    got = sorted((m.topic, m.payload) for m in sub.until("cap/end")[:-1])
    assert got == [("cap/a", b"replaced"), ("cap/b", b"cap/b")]  # no cap/c
    assert server.call(lambda: server.platform.broker.stats.refused_retained) == 1
