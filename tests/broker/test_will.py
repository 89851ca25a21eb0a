"""Will messages (MQTT 3.1.1 3.1.2.5, 5.0 3.1.2.5 and 3.1.3.2): the client whose will is at stake
is the raw client, so it can go silent or drop its socket without a DISCONNECT.

"No will was published" is shown by ordering: a second client's will, published later for
certain, arrives first."""

from __future__ import annotations

import time

import pytest
from paho.mqtt.packettypes import PacketTypes

from broker_peers import (
    DISCONNECT,
    PINGRESP,
    SESSION_EXPIRY,
    V5,
    V311,
    WILL_DELAY,
    Will,
    v5_props,
)

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])


@VERSIONS
def test_will_published_when_keep_alive_expires(server, paho_client, raw, version):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/#", 1)
    silent = raw(server.port, version=version)
    connack = silent.connect("ka-silent", keepalive=1, will=Will("will/ka", b"gone", qos=1))
    assert connack.reason == 0
    # From now on the client sends nothing. MQTT-3.1.2-24 (3.1.1) / MQTT-3.1.2-22 (5.0): the
    # server closes the connection after 1.5 x Keep Alive, as if the network had failed ...
    before_close = silent.closed(timeout=5)
    if version == V5:  # ... optionally saying why (0x8D Keep Alive timeout, 4.13)
        assert [(p.type, p.reason) for p in before_close] in ([], [(DISCONNECT, 0x8D)])
    else:
        assert before_close == []
    # ... and publishes the will (MQTT-3.1.2-8).
    message = watcher.get()
    assert (message.topic, message.payload, message.qos) == ("will/ka", b"gone", 1)


def test_keep_alive_is_kept_by_pings(server, raw):
    client = raw(server.port)
    client.connect("ka-pinger", keepalive=1)
    deadline = time.monotonic() + 2.0  # past 1.5 x Keep Alive
    while time.monotonic() < deadline:
        time.sleep(0.4)  # pacing a well-behaved client, not waiting for an event
        client.ping()
        # MQTT-3.12.4-1: the server answers PINGREQ with PINGRESP, and keeps the connection.
        assert client.expect(PINGRESP).type == PINGRESP


@VERSIONS
def test_will_not_published_after_normal_disconnect(server, paho_client, raw, version):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/#", 1)
    polite = raw(server.port, version=version)
    polite.connect("polite", will=Will("will/polite", b"should not", qos=1))
    polite.disconnect()
    polite.close()  # MQTT-3.14.4-1: after DISCONNECT the client closes the connection
    # MQTT-3.14.4-3 (3.1.1) / MQTT-3.14.4-3 (5.0, reason 0): the will is discarded.
    rude = raw(server.port, version=version)
    rude.connect("rude", will=Will("will/rude", b"dropped", qos=1))
    rude.close()  # no DISCONNECT: a network failure, the will is published (MQTT-3.1.2-8)
    assert [m.topic for m in watcher.until("will/rude")] == ["will/rude"]


def test_will_published_on_disconnect_with_will_message_reason(server, paho_client, raw):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/#", 1)
    client = raw(server.port)
    client.connect("leaving-loudly", will=Will("will/loud", b"bye", qos=1))
    client.disconnect(reason=0x04)  # 5.0 3.14.2.1: "Disconnect with Will Message"
    client.close()
    assert watcher.get().payload == b"bye"


@VERSIONS
def test_will_with_retain_becomes_retained(server, paho_client, raw, version):
    client = raw(server.port, version=version)
    client.connect("retained-will", will=Will("will/kept", b"last words", qos=1, retain=True))
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/kept", 1)
    client.close()
    assert watcher.get().payload == b"last words"
    # MQTT-3.1.2-17 (3.1.1) / MQTT-3.1.2-15 (5.0): published as a retained message.
    late = paho_client(server.port, version=version).connect()
    late.subscribe("will/kept", 1)
    message = late.get()
    assert (message.payload, message.retain) == (b"last words", True)


def test_will_delay_is_cancelled_by_a_reconnect(server, paho_client, raw):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/#", 1)
    session = {SESSION_EXPIRY: 60}
    delay = {WILL_DELAY: 1}
    back = raw(server.port)
    back.connect("wd-back", properties=session, will=Will("will/wd-back", b"x", 1, False, delay))
    gone = raw(server.port)
    gone.connect("wd-gone", properties=session, will=Will("will/wd-gone", b"y", 1, False, delay))
    back.close()
    again = raw(server.port)
    # Reconnected to the session within the Will Delay Interval: MQTT-3.1.3-9 (5.0), the
    # server MUST NOT send the will.
    assert again.connect("wd-back", clean=False, properties=session).session_present
    gone.close()
    # The will of a client that stays away waits out its delay (3.1.3.2.2): a message published
    # now arrives first.
    watcher.client.publish("will/now", b"now", qos=1)
    received = watcher.until("will/wd-gone")
    assert [m.topic for m in received] == ["will/now", "will/wd-gone"]


def test_will_published_when_the_session_ends_before_the_delay(server, paho_client, raw):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/#", 1)
    client = raw(server.port)
    client.connect(
        "wd-short-session",
        properties={SESSION_EXPIRY: 1},
        will=Will("will/session-end", b"z", 1, False, {WILL_DELAY: 3600}),
    )
    client.close()
    # 3.1.3.2.2: the will is published when the Will Delay Interval passes or the session
    # ends, whichever happens first: here after the 1 s session expiry.
    assert watcher.get(timeout=5).topic == "will/session-end"


def test_will_properties_are_forwarded(server, paho_client):
    watcher = paho_client(server.port).connect()
    watcher.subscribe("will/props", 1)
    properties = v5_props(
        PacketTypes.WILLMESSAGE,
        ContentType="text/plain",
        ResponseTopic="will/reply",
        CorrelationData=b"c",
        UserProperty=[("z", "1"), ("a", "2")],
    )
    dying = paho_client(
        server.port, client_id="dying", will=("will/props", b"bye", 1, False),
        will_properties=properties,
    ).connect()  # fmt: skip
    dying.client.socket().close()  # a network failure, from the server's point of view
    message = watcher.get()
    # 3.1.3.2: the will's properties go out with it; MQTT-3.1.3-10: User Properties in order.
    assert message.payload == b"bye"
    assert message.properties.ContentType == "text/plain"
    assert message.properties.ResponseTopic == "will/reply"
    assert message.properties.CorrelationData == b"c"
    assert message.properties.UserProperty == [("z", "1"), ("a", "2")]
