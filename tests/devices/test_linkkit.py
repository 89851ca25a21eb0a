"""Alibaba's Python device SDK against a real server: it logs in with its device secret, posts
properties and events and reads our replies, takes a property set, answers service calls
(asynchronous, and synchronous over RRPC), and is told what was wrong with a bad post."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from linkkit_device import LinkkitDevice
from test_device_login import wait_for

from alibaba_device import make_device, make_product
from broker_peers import Paho
from hongshan.dialects.alink.messages import DEVICE_OFFLINE
from hongshan.identity.device_topics import TopicClass
from hongshan.things.model import DeviceState
from hongshan.things.tsl import ThingModel

TSL = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"


class Lamp:
    def __init__(self, server: Any, device: LinkkitDevice, pk: str, dn: str) -> None:
        self.server = server
        self.device = device
        self.pk = pk
        self.dn = dn

    @property
    def alink(self) -> Any:
        return self.server.platform.alink

    def twin(self) -> dict[str, Any]:
        values = self.server.call(lambda: self.server.platform.twin.values(self.pk, self.dn))
        return {key: value.value for key, value in values.items()}


@pytest.fixture
def lamp(server: Any) -> Iterator[Lamp]:
    model = ThingModel.from_json(TSL.read_bytes())
    pk = make_product(server, "Streetlight", thing_model=model).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    assert secret is not None
    device = LinkkitDevice(
        server.port,
        pk,
        "lamp-0001",
        secret,
        TSL,
        service_answers={"SetSchedule": (200, {"Accepted": 1}), "Reboot": (200, {})},
    ).start()
    device.next("enable")
    try:
        yield Lamp(server, device, pk, "lamp-0001")
    finally:
        device.stop()


def test_the_sdk_logs_in_and_its_property_post_is_answered_and_kept(lamp: Lamp) -> None:
    assert lamp.server.run(lamp.server.platform.registry.get_device(lamp.pk, lamp.dn)).state is (
        DeviceState.ONLINE
    )
    rc, request_id = lamp.device.call(
        "thing_post_property", {"LightSwitch": 1, "Brightness": 80, "Voltage": 220.5}
    )
    assert rc == 0
    reply_id, code, _data, message = lamp.device.next("prop_post")
    assert (reply_id, code, message) == (request_id, 200, "success")
    assert lamp.twin() == {"LightSwitch": 1, "Brightness": 80, "Voltage": 220.5}


def test_a_bad_post_gets_alibabas_code_and_nothing_is_kept(lamp: Lamp) -> None:
    lamp.device.call("thing_post_property", {"LightSwitch": 1, "Brightness": 150})
    _, code, _, message = lamp.device.next("prop_post")
    assert code == 6306
    assert "Brightness" in message
    lamp.device.call("thing_post_property", {"Colour": "red"})
    _, code, _, message = lamp.device.next("prop_post")
    assert code == 6304 and message == "tsl parse: params not exist -> Colour"
    assert lamp.twin() == {}


def test_an_event_is_answered(lamp: Lamp) -> None:
    rc, request_id = lamp.device.call(
        "thing_trigger_event", ["LampFault", {"FaultCode": 3, "Voltage": 180.5}]
    )
    assert rc == 0
    event, reply_id, code, _, message = lamp.device.next("event_post")
    assert (event, reply_id, code, message) == ("LampFault", request_id, 200, "success")
    lamp.device.call("thing_trigger_event", ["LampFault", {"FaultCode": 9}])
    _, _, code, _, message = lamp.device.next("event_post")
    assert code == 6309 and "FaultCode" in message


def test_a_property_set_reaches_the_sdk_and_its_reply_comes_back(lamp: Lamp) -> None:
    result = lamp.server.run(
        lamp.alink.set_properties(lamp.pk, lamp.dn, {"Brightness": 40, "WorkMode": 2}, wait=5)
    )
    assert result.code == 200
    (params,) = lamp.device.next("prop_changed")
    assert params == {"Brightness": 40, "WorkMode": 2}


def test_an_async_service_call_is_answered_by_the_sdk(lamp: Lamp) -> None:
    schedule = [{"OnTime": "18:30", "OffTime": "06:00", "Brightness": 70}]
    result = lamp.server.run(
        lamp.alink.invoke(
            lamp.pk, lamp.dn, "SetSchedule", {"Schedule": schedule, "StartDate": "1764374400000"}
        )
    )
    identifier, _, params = lamp.device.next("call_service")
    assert identifier == "SetSchedule" and params["Schedule"] == schedule
    assert (result.code, result.data, result.problems) == (200, {"Accepted": 1}, [])


def test_a_sync_service_call_goes_over_rrpc_and_is_answered(
    lamp: Lamp, server: Any, paho_client: Callable[..., Paho]
) -> None:
    watcher = paho_client(server.port, client_id="operator")
    watcher.connect()
    watcher.subscribe("/ext/rrpc/#", qos=0)
    result = lamp.server.run(lamp.alink.invoke(lamp.pk, lamp.dn, "Reboot", {}))
    assert result.code == 200
    identifier, request_id, _ = lamp.device.next("call_service")
    assert identifier == "Reboot" and request_id == result.msg_id
    topics = {watcher.get().topic, watcher.get().topic}
    assert topics == {f"/ext/rrpc/{result.msg_id}/sys/{lamp.pk}/{lamp.dn}/thing/service/Reboot"}


def test_a_call_to_an_offline_device_fails_at_once(lamp: Lamp) -> None:
    lamp.device.stop()
    registry = lamp.server.platform.registry
    wait_for(lambda: not lamp.server.call(lambda: registry.is_online(lamp.pk, lamp.dn)))
    result = lamp.server.run(lamp.alink.invoke(lamp.pk, lamp.dn, "Reboot", {}))
    assert result.code == DEVICE_OFFLINE
    assert lamp.device.nothing("call_service")


def test_the_shadow_reported_by_the_sdk_desired_by_the_platform(lamp: Lamp) -> None:
    rc, _ = lamp.device.call("thing_update_shadow", {"Brightness": 80}, 1)
    assert rc == 0
    (answer,) = lamp.device.next("shadow")
    assert answer["method"] == "reply" and answer["payload"] == {"status": "success", "version": 1}
    lamp.device.call("thing_update_shadow", {"Brightness": 90}, 1)  # not newer: refused
    (conflict,) = lamp.device.next("shadow")
    assert conflict["payload"]["status"] == "error"
    assert conflict["payload"]["content"]["errorcode"] == "409"
    shadows = lamp.server.platform.shadows
    lamp.server.call(lambda: shadows.set_desired(lamp.pk, lamp.dn, {"Brightness": 40}))
    (control,) = lamp.device.next("shadow")
    assert control["method"] == "control" and control["version"] == 2
    assert control["payload"]["state"] == {
        "reported": {"Brightness": 80},
        "desired": {"Brightness": 40},
    }
    lamp.device.call("thing_get_shadow")
    (document,) = lamp.device.next("shadow")
    assert document["method"] == "reply" and document["version"] == 2
    assert set(document["payload"]["metadata"]) == {"reported", "desired"}


def test_desired_values_set_while_offline_reach_the_sdk_when_it_returns(lamp: Lamp) -> None:
    lamp.device.stop()
    registry = lamp.server.platform.registry
    wait_for(lambda: not lamp.server.call(lambda: registry.is_online(lamp.pk, lamp.dn)))
    desired = lamp.server.platform.desired
    lamp.server.call(lambda: desired.set(lamp.pk, lamp.dn, {"Brightness": 25, "WorkMode": 1}))
    secret = lamp.server.run(registry.get_device(lamp.pk, lamp.dn, with_secret=True))
    back = LinkkitDevice(lamp.server.port, lamp.pk, lamp.dn, secret.device_secret, TSL).start()
    try:
        (params,) = back.next("prop_changed")
        assert params == {"Brightness": 25, "WorkMode": 1}
    finally:
        back.stop()


def test_rrpc_from_the_api_over_a_custom_topic_and_the_original_form(
    server: Any,
) -> None:
    classes = (TopicClass("/${productKey}/${deviceName}/user/get", "sub"),)
    pk = make_product(server, "Meter", topic_classes=classes).product_key
    secret = make_device(server, pk, "meter-0001").device_secret
    assert secret is not None
    device = LinkkitDevice(server.port, pk, "meter-0001", secret).start()
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    url = f"http://127.0.0.1:{server.ports['http']}/api/products/{pk}/devices/meter-0001/rrpc"
    headers = {"Authorization": f"Bearer {token}"}
    custom = f"/{pk}/meter-0001/user/get"
    try:
        assert device.call("subscribe_rrpc_topic", custom)[0] == 0
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            # RRPC over the device's own topic: the SDK's subscribe_rrpc_topic and answer
            call = pool.submit(
                httpx.post, url, json={"payload": "ping", "topic": custom}, headers=headers
            )
            rrpc_id, topic, payload = device.next("rrpc")
            assert (topic, payload) == (f"/ext/rrpc/{rrpc_id}{custom}", "ping")
            device.call("thing_answer_rrpc", rrpc_id, "pong")
            answer = call.result(timeout=10).json()
            assert answer.pop("commandId") > 0  # (its record: GET /api/commands/{id})
            assert answer == {"msgId": rrpc_id, "code": 200, "message": "", "payload": "pong",
                              "payloadBase64": None}  # fmt: skip
            # the original form: /sys/…/rrpc/request/{id}, answered on …/rrpc/response/{id}
            call = pool.submit(httpx.post, url, json={"payload": "hello"}, headers=headers)
            topic, payload = device.next("topic_message")
            if topic.startswith("/ext/rrpc/"):
                # the SDK hands an RRPC request to on_topic_message as well (its
                # __try_parse_rrpc_topic returns None, which reads as "not handled")
                topic, payload = device.next("topic_message")
            assert topic.startswith(f"/sys/{pk}/meter-0001/rrpc/request/")
            response = topic.replace("/request/", "/response/")
            device.call("publish_topic", response, "world", 0)
            assert call.result(timeout=10).json()["payload"] == "world"
            # the device's answer went to the platform alone, not back to the device
            assert device.nothing("rrpc")
            # nobody answers: 5005 after the timeout
            late = httpx.post(url, json={"payload": "x", "timeout": 0.3}, headers=headers)
            assert late.json()["code"] == 5005
    finally:
        device.stop()


def test_the_sdk_reports_its_firmware_versions(lamp: Lamp) -> None:
    lamp.device.call("ota_report_version", None, "1.0.3")
    lamp.device.call("ota_report_version", "MCU", "2.1")
    registry = lamp.server.platform.registry

    def firmware() -> dict[str, str]:
        device = lamp.server.run(registry.get_device(lamp.pk, lamp.dn))
        return dict(device.firmware)

    wait_for(lambda: firmware() == {"default": "1.0.3", "MCU": "2.1"})
