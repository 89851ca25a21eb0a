"""Topic aliases (MQTT 5.0 3.3.2.3.4): client to server with paho, server to client with the raw
client announcing a Topic Alias Maximum."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes

from broker_peers import (
    DISCONNECT,
    PUBLISH,
    SESSION_EXPIRY,
    TOPIC_ALIAS,
    TOPIC_ALIAS_MAXIMUM,
    V311,
    v5_props,
)


def alias(number):
    return v5_props(PacketTypes.PUBLISH, TopicAlias=number)


def test_client_sets_and_uses_topic_aliases(make_server, paho_client):
    server = make_server(topic_alias_maximum=2)
    sub = paho_client(server.port, version=V311).connect()
    sub.subscribe("ta/#", 1)
    pub = paho_client(server.port).connect()
    # 3.2.2.3.8: the server announces how many aliases it accepts.
    assert pub.connack_properties.TopicAliasMaximum == 2
    pub.publish("ta/one", b"1", qos=1, properties=alias(1))  # sets alias 1
    pub.publish("", b"2", qos=1, properties=alias(1))  # uses it
    pub.publish("ta/two", b"3", qos=1, properties=alias(1))  # remaps it
    pub.publish("", b"4", qos=1, properties=alias(1))
    pub.publish("ta/three", b"5", qos=1, properties=alias(2))
    pub.publish("", b"6", qos=1, properties=alias(2))
    got = [(m.topic, m.payload) for m in sub.take(6)]
    assert got == [
        ("ta/one", b"1"),
        ("ta/one", b"2"),
        ("ta/two", b"3"),
        ("ta/two", b"4"),
        ("ta/three", b"5"),
        ("ta/three", b"6"),
    ]


@pytest.mark.parametrize("number", [0, 3])
def test_topic_alias_out_of_range_is_0x94(make_server, raw, number):
    server = make_server(topic_alias_maximum=2)
    client = raw(server.port)
    client.connect("bad-alias")
    client.publish("ta/x", b"", qos=0, properties={TOPIC_ALIAS: number})
    # 3.3.2.3.4, MQTT-3.3.2-8/-9: 0 or above the server's Topic Alias Maximum is an error:
    # DISCONNECT 0x94, Topic Alias invalid, then the connection is closed.
    assert [(p.type, p.reason) for p in client.closed()] == [(DISCONNECT, 0x94)]


def test_unknown_topic_alias_is_a_protocol_error(server, raw):
    client = raw(server.port)
    client.connect("unknown-alias")
    client.publish("", b"", qos=0, properties={TOPIC_ALIAS: 1})
    # 3.3.2.3.4: an empty topic with an alias that has no mapping is a Protocol Error.
    packets = client.closed()
    assert [p.reason for p in packets if p.type == DISCONNECT] in ([], [0x82])


def test_topic_aliases_do_not_outlive_the_connection(server, raw, paho_client):
    sub = paho_client(server.port).connect()
    sub.subscribe("tl/#", 0)
    client = raw(server.port)
    client.connect("alias-reconnect")
    client.publish("tl/t", b"set", qos=0, properties={TOPIC_ALIAS: 1})
    assert sub.get().topic == "tl/t"
    client.disconnect()
    client.close()
    again = raw(server.port)
    again.connect("alias-reconnect")
    again.publish("", b"use", qos=0, properties={TOPIC_ALIAS: 1})
    # MQTT-3.3.2-7: no alias mapping carries over to a new Network Connection.
    assert [p.reason for p in again.closed() if p.type == DISCONNECT] in ([], [0x82])


@pytest.mark.parametrize("maximum", [None, 2])
def test_server_topic_aliases_stay_within_the_clients_maximum(server, raw, paho_client, maximum):
    client = raw(server.port)
    properties = {} if maximum is None else {TOPIC_ALIAS_MAXIMUM: maximum}
    client.connect("alias-receiver", properties=properties)
    client.subscribe(1, [("tas/#", 0)])
    pub = paho_client(server.port).connect()
    topics = ["tas/a", "tas/b", "tas/c"] * 4
    for index, topic in enumerate(topics):
        pub.publish(topic, b"%d" % index, qos=1)
    received = [client.expect(PUBLISH) for _ in topics]
    mapping: dict[int, str] = {}
    resolved = []
    for p in received:
        number = p.properties.get(TOPIC_ALIAS)
        if maximum is None:
            # MQTT-3.1.2-27: no Topic Alias Maximum from the client, no aliases to it.
            assert number is None, p
        elif number is not None:
            # MQTT-3.1.2-26: never above the client's Topic Alias Maximum.
            assert 1 <= number <= maximum, p
            if p.topic:
                mapping[number] = p.topic
            else:
                assert number in mapping, f"alias {number} used before it was set"
        resolved.append(p.topic or mapping[number])
    assert resolved == topics
    assert [p.payload for p in received] == [b"%d" % i for i in range(len(topics))]


def test_server_topic_aliases_start_afresh_on_a_new_connection(server, raw, paho_client):
    settings = {SESSION_EXPIRY: 300, TOPIC_ALIAS_MAXIMUM: 2}
    client = raw(server.port)
    client.connect("alias-again", clean=False, properties=settings)
    client.subscribe(1, [("taa/#", 0)])
    pub = paho_client(server.port).connect()
    pub.publish_many("taa/t", [b"1", b"2"], qos=1)
    assert len(client.until_pong()) == 2
    client.close()
    again = raw(server.port)
    again.connect("alias-again", clean=False, properties=settings)
    pub.publish("taa/t", b"3", qos=1)
    # MQTT-3.3.2-7: mappings do not carry over; the first PUBLISH must name the topic.
    [message] = again.until_pong()
    assert (message.topic, message.payload) == ("taa/t", b"3")
