"""``hongshan serve`` as a process: what was acknowledged survives ``kill -9``, and SIGTERM is a
clean shutdown that tells 5.0 clients why (DISCONNECT 0x8B) and exits 0."""

from __future__ import annotations

import pytest
from broker_peers import TIMEOUT, V5, V311, payloads

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
