"""ThingsBoard's Python device SDK (``.venv-tb``) on our broker as a plain MQTT server: what it
sends and what it waits for, seen by an MQTT client that plays ThingsBoard. This pins the
contract the thingsboard dialect implements (topics, payload shapes, QoS, the SDK's own
``getSessionLimits`` call), so that a new SDK release that changes it fails here first.

The broker routes ``v1/…`` like any topic here, so the device also receives its own requests
(its subscription to ``v1/devices/me/rpc/request/+`` matches its client-side RPCs): a dialect
must never hand a device's uplink back to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions
from tb_sdk import TbSdkDevice
from test_device_login import wait_for

from broker_peers import Paho

LIMITS = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""},
}


def subscriptions(server: Any, *expected: str) -> set[str]:
    """The filters of the one session that is not the platform's, once ``expected`` are among
    them (the SDK subscribes from its on-connect callback: they arrive after the CONNACK)."""
    found: set[str] = set()

    def subscribed() -> bool:
        sessions = server.call(lambda: dict(server.platform.broker.sessions))
        devices = [session for client_id, session in sessions.items() if client_id != "thingsboard"]
        found.clear()
        found.update(*(set(session.subscriptions) for session in devices))
        return len(devices) == 1 and set(expected) <= found

    wait_for(subscribed)
    return found


class Platform:
    """An MQTT client on ``v1/#`` standing in for ThingsBoard."""

    def __init__(self, paho: Paho) -> None:
        self.paho = paho

    def next_on(self, prefix: str) -> tuple[str, Any]:
        """The next message whose topic starts with ``prefix``."""
        while True:
            message = self.paho.get()
            if message.topic.startswith(prefix):
                return message.topic, json.loads(message.payload)

    def send(self, topic: str, payload: Any) -> None:
        self.paho.publish(topic, json.dumps(payload).encode(), qos=1)

    def answer_session_limits(self, device: TbSdkDevice) -> None:
        topic, request = self.next_on("v1/devices/me/rpc/request/")
        assert request == {"method": "getSessionLimits", "params": {"timeout": 5000}}
        self.send(topic.replace("/request/", "/response/"), LIMITS)
        assert device.next("session_limits") == [int(topic.rsplit("/", 1)[1]), LIMITS]


@pytest.fixture
def platform(server: Any, paho_client: Any) -> Platform:
    paho = paho_client(server.port, client_id="thingsboard").connect()
    paho.subscribe("v1/#", qos=SubscribeOptions(qos=1, noLocal=True))  # not what it sends
    return Platform(paho)


@pytest.fixture
def started(server: Any) -> Iterator[list[TbSdkDevice]]:
    devices: list[TbSdkDevice] = []
    yield devices
    for device in devices:
        device.stop()


def test_the_sdk_device_api_seen_from_the_server(
    server: Any, platform: Platform, started: list[TbSdkDevice]
) -> None:
    device = TbSdkDevice(
        server.port, "A1b2C3d4E5f6G7h8I9j0", rpc_answers={"setLight": {"done": True}}
    )
    started.append(device.start())
    # MQTT 5 with an empty client id (the server assigns one), username = the token, and these
    # subscriptions, all before it asks for its session limits
    platform.answer_session_limits(device)
    assert subscriptions(server) == {
        "v1/devices/me/attributes",
        "v1/devices/me/attributes/response/+",
        "v1/devices/me/rpc/request/+",
        "v1/devices/me/rpc/response/+",
    }

    # telemetry is always a list; attributes an object; every publish QoS 1, acknowledged
    assert device.call("send_telemetry", {"temperature": 21.5, "on": True}) == {
        "rc": 0,
        "published": True,
    }
    assert platform.next_on("v1/devices/me/telemetry")[1] == [{"temperature": 21.5, "on": True}]
    device.call("send_telemetry", {"ts": 1451649600512, "values": {"temperature": 22}})
    assert platform.next_on("v1/devices/me/telemetry")[1] == [
        {"ts": 1451649600512, "values": {"temperature": 22}}
    ]
    device.call("send_attributes", {"firmware": "1.0.3"})
    assert platform.next_on("v1/devices/me/attributes")[1] == {"firmware": "1.0.3"}

    # attribute request: keys as comma-separated strings, answered on …/response/{id}
    device.call("request_attributes", ["firmware"], ["mode", "level"])
    topic, keys = platform.next_on("v1/devices/me/attributes/request/")
    assert keys == {"clientKeys": "firmware", "sharedKeys": "mode,level"}
    answer = {"client": {"firmware": "1.0.3"}, "shared": {"mode": "auto"}}
    platform.send(topic.replace("/request/", "/response/"), answer)
    assert device.next("attributes_response") == [answer, None]

    # client-side RPC: ids count up from 1 (getSessionLimits was 1)
    device.call("send_rpc_call", "getTime", {"zone": "Asia/Shanghai"})
    topic, call = platform.next_on("v1/devices/me/rpc/request/")
    assert (topic, call) == (
        "v1/devices/me/rpc/request/2",
        {"method": "getTime", "params": {"zone": "Asia/Shanghai"}},
    )
    platform.send("v1/devices/me/rpc/response/2", {"time": 1451649600512})
    assert device.next("rpc_response") == [2, {"time": 1451649600512}, None]

    # server-side RPC: request and answer carry the server's id in the topic
    platform.send("v1/devices/me/rpc/request/42", {"method": "setLight", "params": {"on": 1}})
    assert platform.next_on("v1/devices/me/rpc/response/") == (
        "v1/devices/me/rpc/response/42",
        {"done": True},
    )
    # shared attribute update: a bare object on v1/devices/me/attributes
    platform.send("v1/devices/me/attributes", {"mode": "manual"})
    seen = [device.next("attributes_update")[0] for _ in range(2)]
    assert {"mode": "manual"} in seen  # (the other: its own attributes, routed back)


def test_the_sdk_gateway_api_seen_from_the_server(
    server: Any, platform: Platform, started: list[TbSdkDevice]
) -> None:
    gateway = TbSdkDevice(
        server.port, "GwT0kenGwT0kenGwT0ke", gateway=True, rpc_answers={"setLight": {"done": True}}
    )
    started.append(gateway.start())
    platform.answer_session_limits(gateway)
    # a device's four, then the gateway's three (not v1/gateway/disconnect, which it handles)
    gateway_topics = ("v1/gateway/attributes", "v1/gateway/attributes/response", "v1/gateway/rpc")
    assert len(subscriptions(server, *gateway_topics)) == 7

    gateway.call("gw_connect_device", "Lamp 7", "streetlight")
    assert platform.next_on("v1/gateway/connect")[1] == {"device": "Lamp 7", "type": "streetlight"}
    gateway.call("gw_send_telemetry", "Lamp 7", {"ts": 5, "values": {"temperature": 20}})
    assert platform.next_on("v1/gateway/telemetry")[1] == {
        "Lamp 7": [{"ts": 5, "values": {"temperature": 20}}]
    }
    gateway.call("gw_send_attributes", "Lamp 7", {"firmware": "2.0"})
    assert platform.next_on("v1/gateway/attributes")[1] == {"Lamp 7": {"firmware": "2.0"}}
    gateway.call("gw_request_shared_attributes", "Lamp 7", ["mode"])
    assert platform.next_on("v1/gateway/attributes/request")[1] == {
        "keys": ["mode"],
        "device": "Lamp 7",
        "client": False,
        "id": 1,
    }
    platform.send("v1/gateway/attributes/response", {"id": 1, "device": "Lamp 7", "value": "auto"})
    assert gateway.next("gw_attributes_response") == [
        {"id": 1, "device": "Lamp 7", "value": "auto"},
        None,
    ]
    request = {"device": "Lamp 7", "data": {"id": 7, "method": "setLight", "params": {"on": 1}}}
    platform.send("v1/gateway/rpc", request)
    assert gateway.next("gw_rpc") == [request]
    # the answer goes back on the same topic the request came on
    assert platform.next_on("v1/gateway/rpc") == (
        "v1/gateway/rpc",
        {"device": "Lamp 7", "id": 7, "data": {"done": True}},
    )
    gateway.call("gw_disconnect_device", "Lamp 7")
    assert platform.next_on("v1/gateway/disconnect")[1] == {"device": "Lamp 7"}
