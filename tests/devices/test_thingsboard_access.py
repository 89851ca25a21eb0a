"""Who a ThingsBoard device is and what it may do, seen from plain MQTT clients: a wrong token
refused (CONNACK 0x86, 3.1.1: 4), basic MQTT credentials, a token device kept inside its own
topics, nobody else speaking on them, what it is sent at the QoS it subscribed with, and what a
device is told of a payload that breaks the API or the thing model (5.0: PUBACK 0x99; 3.1.1: a
plain PUBACK) — nothing of it kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from tb_sdk import TbSdkDevice
from test_device_login import wait_for

from broker_peers import V5, V311, Paho, RawClient
from hongshan.things.model import MqttBasic
from thingsboard_device import make_tb_device, make_tb_product, rest

SDK_TOPICS = [
    "v1/devices/me/attributes",
    "v1/devices/me/attributes/response/+",
    "v1/devices/me/rpc/request/+",
    "v1/devices/me/rpc/response/+",
]


def twin(server: Any, pk: str, dn: str) -> dict[str, Any]:
    values = server.call(lambda: server.platform.twin.values(pk, dn))
    return {key: value.value for key, value in values.items()}


@pytest.mark.parametrize("anonymous", [False, True], ids=["users-only", "anonymous-allowed"])
def test_a_wrong_token_is_refused(make_server: Callable[..., Any], anonymous: bool) -> None:
    """As ThingsBoard refuses it (0x86; 3.1.1: 4), anonymous access or not: a username that
    could be an access token, without a password, is a token login, and a wrong one is no
    anonymous client's."""
    server = make_server(allow_anonymous=anonymous)
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-1")
    TbSdkDevice(server.port, "A1b2C3d4E5f6G7h8I9j0").start(expect_rc=0x86).stop()
    for username, code in (("A1b2C3d4E5f6G7h8I9j0", 4), (token, 0)):
        raw = RawClient(server.port, version=V311)
        try:
            connack = raw.connect("", username=username)
            assert connack is not None and connack.reason == code
        finally:
            raw.close()
    TbSdkDevice(server.port, token).start().stop()  # the right one
    # anonymous access stays what it was: no username, or (no users file) any with a password;
    # without it, 3.1.1's 5 (not authorized) and 4 (bad user name or password)
    for username, password, refused in ((None, None, 5), ("visitor", "any", 4)):
        raw = RawClient(server.port, version=V311)
        try:
            connack = raw.connect("dashboard", username=username, password=password)
            assert connack is not None and connack.reason == (0 if anonymous else refused)
        finally:
            raw.close()


def test_an_mqtt5_client_is_told_the_id_its_session_is_kept_under(
    make_server: Callable[..., Any],
) -> None:
    """A ThingsBoard device connects with an empty client id; its session is kept under the
    device's own id, and an MQTT 5 client is told that one (Assigned Client Identifier), not
    the one the broker would have made up for it."""
    server = make_server(allow_anonymous=False)
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-1")
    raw = RawClient(server.port, version=V5)
    try:
        connack = raw.connect("", username=token)
        assert connack is not None and connack.reason == 0
        assert connack.properties[0x12] == f"{pk}&thermostat-1"  # Assigned Client Identifier
    finally:
        raw.close()


def test_basic_mqtt_credentials(
    make_server: Callable[..., Any], paho_client: Callable[..., Paho]
) -> None:
    server = make_server(allow_anonymous=False)
    pk = make_tb_product(server).product_key
    make_tb_device(server, pk, "thermostat-1")
    login = MqttBasic(client_id="thermo-c1", username="thermo-u1", password="secret-1")
    server.run(server.platform.registry.set_credentials(pk, "thermostat-1", mqtt_basic=login))
    wrong = paho_client(server.port, client_id="thermo-c1", username="thermo-u1", password="no")
    wrong.connect(wait=False)
    assert wrong.connected.wait(10) and wrong.connack_reason == 0x86
    device = paho_client(
        server.port, client_id="thermo-c1", username="thermo-u1", password="secret-1"
    ).connect()
    assert device.publish("v1/devices/me/telemetry", b'{"temperature": 22.5}', qos=1) == 0
    assert twin(server, pk, "thermostat-1") == {"temperature": 22.5}


@pytest.fixture
def thermostat(server: Any, paho_client: Callable[..., Paho]) -> tuple[str, str]:
    """A thermostat product and its device's token."""
    pk = make_tb_product(server).product_key
    return pk, make_tb_device(server, pk, "thermostat-1")[1]


def test_a_token_device_is_kept_inside_its_own_topics(
    server: Any, paho_client: Callable[..., Paho], thermostat: tuple[str, str]
) -> None:
    pk, token = thermostat
    watcher = paho_client(server.port, client_id="watcher").connect()
    assert watcher.subscribe("#") == [0]
    device = paho_client(server.port, username=token).connect()
    assert device.subscribe([(topic, 1) for topic in SDK_TOPICS]) == [1, 1, 1, 1]
    for wide in ("#", "v1/#", "v1/devices/me/#", "v1/devices/me/telemetry", "v1/gateway/rpc"):
        assert device.subscribe(wide, 1) == [0x87], wide
    for other in ("town/lamps/1", "v1/devices/me/claim", "v1/gateway/connect"):
        assert device.publish(other, b"{}", qos=1) == 0x87, other
    # what it says goes to the platform alone: nobody else sees it, not even on "#"
    assert device.publish("v1/devices/me/telemetry", b'{"temperature": 20}', qos=1) == 0
    assert device.publish("v1/devices/me/rpc/request/1", b'{"method": "x"}', qos=1) == 0
    answer = device.get()
    assert answer.topic == "v1/devices/me/rpc/response/1"  # its answer, not its request back
    # nobody speaks on its topics but the platform
    assert watcher.publish("v1/devices/me/attributes", b'{"mode": "evil"}', qos=1) == 0x87
    assert watcher.publish("v1/devices/me/rpc/request/9", b'{"method": "x"}', qos=1) == 0x87
    watcher.publish("sentinel", b"", qos=1)
    assert not [m.topic for m in watcher.until("sentinel") if m.topic.startswith("v1/")]
    assert device.drain() == []
    assert twin(server, pk, "thermostat-1") == {"temperature": 20}


@pytest.mark.parametrize("version", [V5, V311])
def test_what_is_sent_to_a_device_goes_at_the_qos_it_subscribed_with(
    server: Any, paho_client: Callable[..., Paho], thermostat: tuple[str, str], version: int
) -> None:
    """MQTT delivers at the lower of the message's QoS and the one granted (MQTT-3.8.4-6):
    shared attributes and attribute answers to a device that subscribed at 0 go at 0, an RPC
    request to one that subscribed at 1 at 1."""
    pk, token = thermostat
    device = paho_client(server.port, version=version, username=token).connect()
    granted = device.subscribe(
        [
            ("v1/devices/me/attributes", 0),
            ("v1/devices/me/attributes/response/+", 0),
            ("v1/devices/me/rpc/request/+", 1),
        ]
    )
    assert granted == [0, 0, 1]
    with rest(server) as api:
        url = f"/api/products/{pk}/devices/thermostat-1"
        api.post(f"{url}/properties", json={"params": {"mode": "auto"}})
        update = device.get()
        assert (update.topic, update.payload, update.qos) == (
            "v1/devices/me/attributes",
            b'{"mode":"auto"}',
            0,
        )
        assert device.publish("v1/devices/me/attributes/request/7", b'{"sharedKeys": "mode"}') == 0
        response = device.get()
        assert (response.topic, response.qos) == ("v1/devices/me/attributes/response/7", 0)
        late = api.post(f"{url}/services/reboot", json={"params": {}, "timeout": 0.2}).json()
        assert late["outcome"] == "timed_out"
        request = device.get()
        assert request.topic.startswith("v1/devices/me/rpc/request/") and request.qos == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'["temperature", 1]',
        b'{"ts": "yesterday", "values": {"temperature": 20}}',
        b'{"temperature": 20, "colour": "red"}',  # not in the thing model
        b'{"temperature": 20, "humidity": 40.5}',  # an int property
        b'[{"temperature": 20}, {"humidity": "many"}]',  # all or nothing
    ],
)
@pytest.mark.parametrize("version", [V5, V311])
def test_a_payload_that_breaks_the_api_or_the_model_is_refused_and_not_kept(
    server: Any,
    paho_client: Callable[..., Paho],
    thermostat: tuple[str, str],
    version: int,
    payload: bytes,
) -> None:
    pk, token = thermostat
    device = paho_client(server.port, version=version, username=token).connect()
    expected = 0x99 if version == V5 else 0  # 3.1.1's PUBACK says nothing
    assert device.publish("v1/devices/me/telemetry", payload, qos=1) == expected
    assert device.publish("v1/devices/me/attributes", payload, qos=1) == expected
    # the connection stays up, and a good one is kept
    assert device.publish("v1/devices/me/telemetry", b'{"humidity": 40}', qos=1) == 0
    assert twin(server, pk, "thermostat-1") == {"humidity": 40}
    (dialect,) = [d for d in server.platform.dialects if d.name == "thingsboard"]
    stats = dialect.stats
    assert stats.refused + stats.malformed == 2


def test_a_schemaless_product_learns_its_properties_from_first_values(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk = make_tb_product(server, "Sensors", schemaless=True).product_key
    _, token = make_tb_device(server, pk, "sensor-1")
    device = paho_client(server.port, username=token).connect()
    first = {"rssi": -70, "label": "north", "on": True, "state": {"door": "open"}}
    assert device.publish("v1/devices/me/telemetry", json.dumps(first), qos=1) == 0
    assert twin(server, pk, "sensor-1") == {
        "rssi": -70,
        "label": "north",
        "on": 1,
        "state": '{"door":"open"}',
    }
    registry = server.platform.registry

    def model() -> dict[str, str]:
        found = server.call(lambda: registry.thing_model_of(pk))
        return {} if found is None else {p.identifier: p.data_type.type for p in found.properties}

    wait_for(lambda: len(model()) == 4)
    assert model() == {"rssi": "int", "label": "text", "on": "bool", "state": "text"}
    # typed now: a value of another type is refused; a key that is no identifier too
    assert device.publish("v1/devices/me/telemetry", b'{"rssi": "weak"}', qos=1) == 0x99
    assert device.publish("v1/devices/me/telemetry", b'{"battery-level": 3}', qos=1) == 0x99
    assert device.publish("v1/devices/me/telemetry", b'{"rssi": -60, "snr": 7.5}', qos=1) == 0
    wait_for(lambda: model().get("snr") == "double")
