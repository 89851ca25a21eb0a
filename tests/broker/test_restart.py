"""``hongshan serve`` as a process: what was acknowledged survives ``kill -9``, and SIGTERM is a
clean shutdown that tells 5.0 clients why (DISCONNECT 0x8B) and exits 0."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from broker_peers import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SESSION_EXPIRY,
    TIMEOUT,
    V5,
    V311,
    WILL_DELAY,
    Will,
    eventually,
    payloads,
)

pytestmark = pytest.mark.slow


def test_acknowledged_messages_and_retained_survive_kill_9(tmp_path, spawn_server, paho_client):
    data_dir = tmp_path / "kill9"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = paho_client(first.port, version=V311, client_id="k9-sub", clean=False).connect()
    assert sub.subscribe("k9/t", 1) == [1]
    sub.disconnect()
    pub = paho_client(first.port, version=V311).connect()
    bodies = [b"%d" % i for i in range(200)]
    # Each PUBACK means the server owns the message (MQTT 4.3.2): it must not be lost.
    assert pub.publish_many("k9/t", bodies, qos=1) == [0] * 200
    assert pub.publish("k9/retained", b"kept", qos=1, retain=True) == 0
    first.kill()
    pub.stop()

    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    back = paho_client(second.port, version=V311, client_id="k9-sub", clean=False).connect()
    assert back.session_present is True
    assert payloads(back.take(200)) == bodies
    late = paho_client(second.port).connect()
    late.subscribe("k9/retained", 1)
    message = late.get()
    assert (message.payload, message.retain) == (b"kept", True)


def test_sigterm_disconnects_clients_with_0x8b_and_exits_0(tmp_path, spawn_server, paho_client):
    data_dir = tmp_path / "term"
    server = spawn_server("--allow-anonymous", data_dir=data_dir)
    v5 = paho_client(server.port, version=V5).connect()
    v311 = paho_client(server.port, version=V311).connect()
    pub = paho_client(server.port, version=V5).connect()
    pub.publish("term/retained", b"flushed", qos=1, retain=True)
    assert server.terminate() == 0
    # 5.0 3.14.2.1 / 4.13: the server tells each 5.0 client it is going: 0x8B, Server shutting
    # down. A 3.1.1 client just sees the connection close.
    assert v5.disconnected.wait(TIMEOUT)
    assert v5.disconnect_reason == 0x8B
    assert v311.disconnected.wait(TIMEOUT)
    pub.stop()

    again = spawn_server("--allow-anonymous", data_dir=data_dir)
    late = paho_client(again.port).connect()
    late.subscribe("term/retained", 1)
    assert late.get().payload == b"flushed"
    assert again.terminate() == 0


def test_in_flight_qos_state_survives_kill_9(tmp_path, spawn_server, paho_client, raw):
    data_dir = tmp_path / "inflight"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = raw(first.port, version=V311)
    sub.connect("k9-inflight-sub", clean=False)
    assert sub.subscribe(1, [("k9i/#", 2)]).codes == [2]
    # A persistent publisher half way through a QoS 2 flow: PUBREC received, no PUBREL yet.
    pub = raw(first.port, version=V311)
    pub.connect("k9-inflight-pub", clean=False)
    pub.publish("k9i/two", b"exactly once", qos=2, packet_id=9)
    assert pub.expect(PUBREC).packet_id == 9
    paho_client(first.port).connect().publish("k9i/one", b"at least once", qos=1)
    # The subscriber receives both and acknowledges neither.
    sent = {p.topic: p for p in (sub.expect(PUBLISH), sub.expect(PUBLISH))}
    first.kill()

    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = raw(second.port, version=V311)
    assert sub.connect("k9-inflight-sub", clean=False).session_present
    resent = sub.until_pong()
    # MQTT-4.4.0-1 and MQTT-3.3.1-1: the unacknowledged messages again, same identifiers, DUP=1.
    assert sorted((p.topic, p.packet_id, p.payload, p.dup) for p in resent) == sorted(
        (topic, p.packet_id, p.payload, True) for topic, p in sent.items()
    )
    for p in resent:
        if p.qos == 1:
            sub.ack(PUBACK, p.packet_id)
        else:
            sub.ack(PUBREC, p.packet_id)
            assert sub.expect(PUBREL).packet_id == p.packet_id
            sub.ack(PUBCOMP, p.packet_id)
    pub = raw(second.port, version=V311)
    assert pub.connect("k9-inflight-pub", clean=False).session_present
    # The server still knows packet 9 is received and not released (MQTT-4.3.3-9: a resent
    # PUBLISH is answered with PUBREC and not delivered again) ...
    pub.publish("k9i/two", b"exactly once", qos=2, packet_id=9, dup=True)
    assert pub.expect(PUBREC).packet_id == 9
    pub.ack(PUBREL, 9)
    assert pub.expect(PUBCOMP).packet_id == 9
    assert sub.until_pong() == []


def test_session_expiry_is_kept_across_a_restart(tmp_path, spawn_server, paho_client, raw):
    data_dir = tmp_path / "expiry"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    for client_id, expiry in (("lasting", 300), ("fleeting", 1)):
        client = raw(first.port)
        client.connect(client_id, clean=False, properties={SESSION_EXPIRY: expiry})
        client.subscribe(1, [(f"exr/{client_id}", 1)])
        client.disconnect()
        client.close()
    assert first.terminate() == 0
    time.sleep(1.2)  # the fleeting session's 1 s runs out while the server is down
    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    # 3.1.2.11.2: a session lasts its Session Expiry Interval from the disconnect, whether or
    # not the server restarted in between.
    lasting = raw(second.port)
    assert lasting.connect("lasting", clean=False, properties={SESSION_EXPIRY: 300}).session_present
    fleeting = raw(second.port)
    connack = fleeting.connect("fleeting", clean=False, properties={SESSION_EXPIRY: 300})
    assert connack.session_present is False


def test_a_delayed_will_survives_a_restart(tmp_path, spawn_server, paho_client, raw):
    """MQTT 3.1.3.2.2: a will waits out its Will Delay Interval; the broker stopping meanwhile
    must not lose it. It is sent after the restart, when the delay has run out."""
    data_dir = tmp_path / "will"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    watcher = paho_client(first.port, version=V311, client_id="will-watcher", clean=False)
    assert watcher.connect().subscribe("lamps/+/status", 1) == [1]
    watcher.disconnect()
    lamp = raw(first.port, version=V5)
    will = Will("lamps/17/status", b"offline", qos=1, properties={WILL_DELAY: 2})
    lamp.connect("lamp-17", will=will, properties={SESSION_EXPIRY: 300})
    lamp.close()  # the lamp loses power: no DISCONNECT, the will delay starts
    health = f"http://127.0.0.1:{first.ports()['http']}/api/health"

    def lamp_gone() -> bool:
        with urllib.request.urlopen(health, timeout=TIMEOUT) as response:
            return json.load(response)["broker"]["clients/connected"] == "0"

    eventually(lamp_gone, what="the server to notice the lamp is gone")
    assert first.terminate() == 0  # within the delay

    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    back = paho_client(second.port, version=V311, client_id="will-watcher", clean=False)
    back.connect()
    message = back.get(timeout=TIMEOUT)
    assert (message.topic, message.payload) == ("lamps/17/status", b"offline")
