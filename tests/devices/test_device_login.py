"""Devices log in with Alibaba's signed CONNECT against a running server's registry, are refused
when disabled or wrong, are cut off when disabled or deleted, and keep to their own topics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from alibaba_device import make_device, make_product, online_lamp, signed, signed_login
from broker_peers import V5, V311, Paho
from hongshan.things.model import DeviceState
from hongshan.things.naming import new_device_secret

# paho (callback API 2) reports a 3.1.1 CONNACK return code as the matching 5.0 reason code
NOT_AUTHORIZED_311 = 0x87  # return code 5
BAD_CREDENTIALS_311 = 0x86  # return code 4


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def device_state(server: Any, pk: str, dn: str) -> DeviceState:
    state: DeviceState = server.run(server.platform.registry.get_device(pk, dn)).state
    return state


@pytest.mark.parametrize("method", ["hmacsha1", "hmacmd5", "hmacsha256"])
@pytest.mark.parametrize("version", [V311, V5])
def test_a_device_logs_in_with_its_signature_and_goes_online_then_offline(
    server: Any, paho_client: Callable[..., Paho], method: str, version: int
) -> None:
    pk = make_product(server).product_key
    device = make_device(server, pk, "lamp-0001")
    assert device.device_secret is not None
    client_id, username, password = signed_login(
        pk, "lamp-0001", device.device_secret, method=method
    )
    client = paho_client(
        server.port, version=version, client_id=client_id, username=username, password=password
    )
    client.connect()
    wait_for(lambda: device_state(server, pk, "lamp-0001") is DeviceState.ONLINE)
    shown = server.run(server.platform.registry.get_device(pk, "lamp-0001"))
    assert shown.last_ip == "127.0.0.1" and shown.first_online_at is not None
    client.disconnect()
    wait_for(lambda: device_state(server, pk, "lamp-0001") is DeviceState.OFFLINE)


@pytest.mark.parametrize(("version", "code"), [(V311, BAD_CREDENTIALS_311), (V5, 0x86)])
def test_a_wrong_signature_or_unknown_device_is_refused(
    server: Any, paho_client: Callable[..., Paho], version: int, code: int
) -> None:
    pk = make_product(server).product_key
    make_device(server, pk, "lamp-0001")
    for dn, secret in (("lamp-0001", new_device_secret()), ("lamp-9999", new_device_secret())):
        client_id, username, password = signed_login(pk, dn, secret)
        client = paho_client(
            server.port, version=version, client_id=client_id, username=username, password=password
        )
        client.connect(wait=False)
        assert client.connected.wait(10)
        assert client.connack_reason == code
    assert device_state(server, pk, "lamp-0001") is DeviceState.INACTIVE


@pytest.mark.parametrize(("version", "code"), [(V311, NOT_AUTHORIZED_311), (V5, 0x8A)])
def test_a_disabled_device_is_refused_and_disabling_an_online_one_cuts_it_off(
    server: Any, paho_client: Callable[..., Paho], version: int, code: int
) -> None:
    registry = server.platform.registry
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    login = signed(pk, "lamp-0001", secret)
    online = paho_client(server.port, version=version, **login)
    online.connect()
    server.run(registry.set_enabled(pk, "lamp-0001", False))
    assert online.disconnected.wait(10)
    if version == V5:
        assert online.disconnect_reason == 0x98  # Administrative action
    assert device_state(server, pk, "lamp-0001") is DeviceState.DISABLED
    again = paho_client(server.port, version=version, **login)
    again.connect(wait=False)
    assert again.connected.wait(10)
    assert again.connack_reason == code
    server.run(registry.set_enabled(pk, "lamp-0001", True))
    assert device_state(server, pk, "lamp-0001") is DeviceState.OFFLINE


def test_deleting_an_online_device_cuts_it_off(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, client = online_lamp(server, paho_client)
    server.run(server.platform.registry.delete_device(pk, "lamp-0001"))
    assert client.disconnected.wait(10)
    assert client.disconnect_reason == 0x98


def test_one_connection_per_device_whatever_client_id_it_uses(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    first = paho_client(server.port, **signed(pk, "lamp-0001", secret, client_prefix="boot-1"))
    first.connect()
    second = paho_client(server.port, **signed(pk, "lamp-0001", secret, client_prefix="boot-2"))
    second.connect()
    assert first.disconnected.wait(10)
    assert first.disconnect_reason == 0x8E  # Session taken over
    assert device_state(server, pk, "lamp-0001") is DeviceState.ONLINE


def test_a_plain_client_may_not_use_a_device_shaped_client_id(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk = make_product(server).product_key
    make_device(server, pk, "lamp-0001")
    impostor = paho_client(server.port, client_id=f"{pk}&lamp-0001")
    impostor.connect(wait=False)
    assert impostor.connected.wait(10)
    assert impostor.connack_reason == 0x85


def test_a_device_keeps_to_its_own_topics(server: Any, paho_client: Callable[..., Paho]) -> None:
    pk = make_product(server).product_key
    mine = make_device(server, pk, "lamp-0001").device_secret
    make_device(server, pk, "lamp-0002")
    device = paho_client(server.port, **signed(pk, "lamp-0001", mine))
    device.connect()
    watcher = paho_client(server.port, client_id="operator")
    watcher.connect()
    watcher.subscribe("/sys/#", qos=1)
    own = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    other = f"/sys/{pk}/lamp-0002/thing/event/property/post"
    assert device.subscribe(f"/sys/{pk}/lamp-0001/thing/service/+", qos=1) == [1]
    assert device.subscribe(f"/sys/{pk}/lamp-0002/thing/service/+", qos=1) == [0x87]
    assert device.subscribe("/sys/#", qos=1) == [0x87]
    assert device.publish(other, b"{}", qos=1) == 0x87
    # (an Alink post: a payload that is none is refused, 0x99; no reply asked, so the post is
    # the watcher's first message)
    post = b'{"id":"1","params":{"Brightness":1},"sys":{"ack":0}}'
    assert device.publish(own, post, qos=1) in (0, 0x10)
    assert watcher.get().topic == own


def test_ntp_answers_with_the_devices_time_and_the_servers(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, device = online_lamp(server, paho_client)
    device.subscribe(f"/ext/ntp/{pk}/lamp-0001/response", qos=0)
    before = int(time.time() * 1000)
    device.publish(f"/ext/ntp/{pk}/lamp-0001/request", b'{"deviceSendTime":"1571724098000"}')
    answer = json.loads(device.get().payload)
    assert answer["deviceSendTime"] == "1571724098000"
    assert before <= int(answer["serverRecvTime"]) <= int(answer["serverSendTime"])
    assert int(answer["serverSendTime"]) <= int(time.time() * 1000)


def test_the_status_topic_tells_rules_when_a_device_comes_and_goes(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    watcher = paho_client(server.port, client_id="rules")
    watcher.connect()
    watcher.subscribe("/as/mqtt/status/#", qos=1)
    device = paho_client(server.port, **signed(pk, "lamp-0001", secret))
    device.connect()
    online = json.loads(watcher.get().payload)
    assert (online["status"], online["productKey"], online["deviceName"]) == (
        "online",
        pk,
        "lamp-0001",
    )
    assert online["clientIp"] == "127.0.0.1"
    device.disconnect()
    assert json.loads(watcher.get().payload)["status"] == "offline"


def test_latest_values_and_shadows_survive_a_restart(
    make_server: Callable[..., Any], paho_client: Callable[..., Paho]
) -> None:
    first = make_server()
    pk = make_product(first).product_key
    secret = make_device(first, pk, "lamp-0001").device_secret
    device = paho_client(first.port, **signed(pk, "lamp-0001", secret))
    device.connect()
    device.subscribe(f"/sys/{pk}/lamp-0001/thing/event/property/post_reply", qos=1)
    stamp = int(time.time() * 1000) - 60_000  # a minute ago, by the device's clock
    post = {"id": "1", "version": "1.0", "params": {"Brightness": {"value": 42, "time": stamp}}}
    device.publish(f"/sys/{pk}/lamp-0001/thing/event/property/post", json.dumps(post).encode())
    assert json.loads(device.get().payload)["code"] == 200
    first.call(lambda: first.platform.shadows.set_desired(pk, "lamp-0001", {"Brightness": 10}))
    device.stop()
    first.stop()
    second = make_server()
    values = second.call(lambda: second.platform.twin.values(pk, "lamp-0001"))
    assert {k: (v.value, v.time) for k, v in values.items()} == {"Brightness": (42, stamp)}
    shadow = second.call(lambda: second.platform.shadows.get(pk, "lamp-0001"))
    assert shadow.desired == {"Brightness": 10} and shadow.version == 1


def test_a_device_reads_and_clears_its_desired_values(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    desired = server.platform.desired
    server.call(lambda: desired.set(pk, "lamp-0001", {"Brightness": 25, "WorkMode": 1}))
    device = paho_client(server.port, **signed(pk, "lamp-0001", secret))
    device.connect()
    base = f"/sys/{pk}/lamp-0001/thing/property/desired"
    device.subscribe(base + "/get_reply", qos=1)
    device.subscribe(base + "/delete_reply", qos=1)
    device.publish(base + "/get", b'{"id":"1","version":"1.0","params":["Brightness"]}', qos=1)
    answer = json.loads(device.get().payload)
    assert answer["code"] == 200 and answer["data"] == {"Brightness": {"value": 25, "version": 1}}
    clear = b'{"id":"2","version":"1.0","params":{"Brightness":{"version":1}}}'
    device.publish(base + "/delete", clear, qos=1)
    assert json.loads(device.get().payload)["code"] == 200
    assert list(server.call(lambda: desired.get(pk, "lamp-0001"))) == ["WorkMode"]


def test_a_repeated_post_is_answered_again_but_kept_once(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, device = online_lamp(server, paho_client)
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    device.subscribe(topic + "_reply", qos=1)
    stats = server.platform.alink.stats

    def post(body: dict[str, Any]) -> None:
        device.publish(topic, json.dumps(body).encode(), qos=1)

    first = {"id": "123", "version": "1.0", "params": {"Brightness": 10}}
    post(first)
    post(first)  # the device missed our reply and sends the same message again
    assert [json.loads(device.get().payload)["id"] for _ in range(2)] == ["123", "123"]
    assert (stats.accepted, stats.repeated) == (1, 1)
    # the same id with other values is a new message (firmware that reuses "123")
    post({"id": "123", "version": "1.0", "params": {"Brightness": 20}})
    assert json.loads(device.get().payload)["code"] == 200
    assert stats.accepted == 2
    values = server.call(lambda: server.platform.twin.values(pk, "lamp-0001"))
    assert values["Brightness"].value == 20
    # a device that wants no reply gets none, and is still heard
    post({"id": "124", "version": "1.0", "params": {"Brightness": 30}, "sys": {"ack": 0}})
    post({"id": "125", "version": "1.0", "params": {"Brightness": 40}})
    assert json.loads(device.get().payload)["id"] == "125"
    assert stats.accepted == 4


def test_a_deleted_device_leaves_nothing_in_memory(server: Any) -> None:
    pk = make_product(server).product_key
    make_device(server, pk, "lamp-0001")
    platform = server.platform
    server.call(lambda: platform.desired.set(pk, "lamp-0001", {"Brightness": 1}))
    server.call(lambda: platform.shadows.set_desired(pk, "lamp-0001", {"Brightness": 1}))
    server.run(platform.registry.delete_device(pk, "lamp-0001"))
    assert server.call(lambda: platform.desired.get(pk, "lamp-0001")) == {}
    assert server.call(lambda: platform.shadows.get(pk, "lamp-0001")).version == 0
