"""Shared subscriptions (MQTT 5.0 4.8.2): ``$share/{group}/{filter}``."""

from __future__ import annotations

from paho.mqtt.client import SubscribeOptions

from broker_peers import DISCONNECT, PUBLISH, SUBSCRIBE, V311, packet, payloads, props, utf8


def test_shared_subscription_gives_each_message_to_exactly_one_member(server, paho_client):
    members = [paho_client(server.port, client_id=f"member-{i}").connect() for i in range(3)]
    # 3.2.2.3.14: absent Shared Subscription Available means supported; it must not say 0.
    assert getattr(members[0].connack_properties, "SharedSubscriptionAvailable", 1) == 1
    for member in members:
        assert member.subscribe([("$share/g/sh/t", 1), ("sh/sentinel", 1)]) == [1, 1]
    plain = paho_client(server.port, version=V311).connect()
    plain.subscribe("sh/t", 1)
    pub = paho_client(server.port).connect()
    bodies = [b"%d" % i for i in range(30)]
    pub.publish_many("sh/t", bodies, qos=1)
    pub.publish("sh/sentinel", b"", qos=1)
    shares = [
        [m.payload for m in member.until("sh/sentinel") if m.topic == "sh/t"] for member in members
    ]
    # 4.8.2: each message of the shared subscription goes to one member of the group ...
    assert sorted((body for share in shares for body in share), key=int) == bodies
    assert sum(len(share) for share in shares) == 30
    # ... spread over the members (Hongshan's choice; the spec leaves the algorithm open).
    assert sum(1 for share in shares if share) >= 2, [len(share) for share in shares]
    # A non-shared subscription on the same filter is unaffected.
    assert payloads(plain.take(30)) == bodies


def test_two_groups_each_get_every_message(server, paho_client):
    group_a = paho_client(server.port).connect()
    group_b = paho_client(server.port).connect()
    group_a.subscribe("$share/a/sg/#", 1)
    group_b.subscribe("$share/b/sg/#", 1)
    pub = paho_client(server.port).connect()
    bodies = [b"x", b"y", b"z"]
    pub.publish_many("sg/t", bodies, qos=1)
    # 4.8.2: each Shared Subscription (group) is delivered independently.
    assert payloads(group_a.take(3)) == bodies
    assert payloads(group_b.take(3)) == bodies


def test_no_local_on_a_shared_subscription_is_a_protocol_error(server, raw):
    client = raw(server.port)
    client.connect("shared-no-local")
    no_local_qos1 = 0x04 | 0x01
    client.send(
        packet(
            SUBSCRIBE, 0x02, b"\x00\x01" + props() + utf8("$share/g/nl") + bytes([no_local_qos1])
        )
    )
    # MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error; 4.13: the server
    # closes the connection, with DISCONNECT 0x82 if it says why.
    packets = client.closed()
    disconnects = [p.reason for p in packets if p.type == DISCONNECT]
    assert disconnects in ([], [0x82])
    assert all(p.type != PUBLISH for p in packets)


def test_shared_subscription_options_are_honoured(server, paho_client):
    member = paho_client(server.port).connect()
    assert member.subscribe("$share/q/sq/t", SubscribeOptions(qos=1)) == [1]
    pub = paho_client(server.port).connect()
    pub.publish("sq/t", b"two", qos=2)
    assert member.get().qos == 1  # MQTT-3.8.4-8: min(publish QoS, granted QoS)


def test_retained_messages_are_not_sent_to_a_new_shared_subscription(server, paho_client):
    pub = paho_client(server.port).connect()
    pub.publish("shr/t", b"retained", qos=1, retain=True)
    member = paho_client(server.port).connect()
    member.subscribe([("$share/g/shr/t", 1), ("shr/sentinel", 1)])
    pub.publish("shr/sentinel", b"", qos=1)
    # 3.3.1.3 (5.0): retained messages go to a new *non-shared* subscription only.
    assert [m.topic for m in member.until("shr/sentinel")] == ["shr/sentinel"]


def test_unsubscribing_from_a_shared_subscription(server, paho_client):
    member = paho_client(server.port).connect()
    member.subscribe([("$share/g/shu/t", 1), ("shu/sentinel", 1)])
    member.unsubscribe("$share/g/shu/t")
    pub = paho_client(server.port).connect()
    pub.publish("shu/t", b"nobody", qos=1)
    pub.publish("shu/sentinel", b"", qos=1)
    assert [m.topic for m in member.until("shu/sentinel")] == ["shu/sentinel"]
