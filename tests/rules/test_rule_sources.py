"""What rules read of the bus's uplinks: the platform's ``$things`` streams and Alibaba's
rules-engine data, topics and payloads; and the topic templates of republish."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any

import pytest

from hongshan.dialects.alink.rule_data import AlibabaRuleData
from hongshan.messages import (
    CommandGivenUp,
    CommandSent,
    DeviceRef,
    EventRaised,
    PropertyValues,
    ServiceReplied,
    StatusChanged,
    Uplink,
)
from hongshan.rules.references import RuleRefused
from hongshan.rules.sql import parse
from hongshan.services.rules.actions import ActionFailed, TopicTemplate
from hongshan.services.rules.sources import PlatformStreams
from hongshan.things.tsl import ThingModel

LAMP = DeviceRef("a1B", "lamp-1")
MODEL = ThingModel.from_json(
    (Path(__file__).parent.parent / "things" / "data" / "streetlight.json").read_text()
)


def presented(source: Any, uplink: Uplink) -> dict[str, Any]:
    return {topic: make() for topic, make in source.messages(uplink)}


def test_the_platform_streams() -> None:
    streams = PlatformStreams()
    values = PropertyValues(
        device=LAMP, received=1000, values={"Brightness": 5, "Voltage": 220.5}, ts=990,
        device_time={"Voltage": 980},
    )  # fmt: skip
    assert presented(streams, values) == {
        "$things/a1B/lamp-1/properties": {
            "productKey": "a1B",
            "deviceName": "lamp-1",
            "ts": 990,
            "values": {"Brightness": 5, "Voltage": 220.5},
            "times": {"Brightness": 990, "Voltage": 980},
        }
    }
    event = EventRaised(device=LAMP, received=1000, event="LampFault", params={"code": 3}, ts=999)
    assert presented(streams, event)["$things/a1B/lamp-1/events/LampFault"]["params"] == {"code": 3}
    gateway = DeviceRef("a1G", "gw-1")
    status = StatusChanged(
        device=LAMP, received=1000, online=True, address="1.2.3.4:5", gateway=gateway
    )
    assert presented(streams, status)["$things/a1B/lamp-1/status"] == {
        "productKey": "a1B", "deviceName": "lamp-1", "ts": 1000, "online": True, "reason": "",
        "address": "1.2.3.4:5", "gateway": "a1G/gw-1",
    }  # fmt: skip
    sent = CommandSent(device=LAMP, received=1, call_id="7", service="set", params={"a": 1})
    given_up = CommandGivenUp(device=LAMP, received=2, call_id="7", service="set", why="timeout")
    assert presented(streams, sent)["$things/a1B/lamp-1/commands"]["state"] == "sent"
    assert presented(streams, given_up)["$things/a1B/lamp-1/commands"]["why"] == "timeout"
    reply = ServiceReplied(device=LAMP, received=3, call_id="7", service="Reboot", code=200)
    assert presented(streams, reply)["$things/a1B/lamp-1/replies"]["code"] == 200
    assert streams.product_in("$things/a1B/+/properties") == "a1B"
    assert streams.product_in("$things/+/+/properties") is None
    assert streams.product_in("things/a1B/x") is None


def test_a_things_rule_is_checked_against_the_model() -> None:
    streams = PlatformStreams()
    streams.check(parse('SELECT values.Brightness FROM "$things/a1B/+/properties"'), MODEL)
    with pytest.raises(RuleRefused) as refused:
        streams.check(parse('SELECT * FROM "$things/a1B/+/properties" WHERE times.Nope > 1'), MODEL)
    assert refused.value.name == "Nope"
    # on another stream, "values" is nothing of the model's
    streams.check(parse('SELECT values.Nope FROM "$things/a1B/+/status"'), MODEL)


def test_alibabas_rule_data() -> None:
    data = AlibabaRuleData(lambda pk: MODEL if pk == "a1B" else None, lambda pk, dn: pk == "a1B")
    values = PropertyValues(
        device=LAMP, received=1000, values={"Brightness": 5}, ts=990, message_id="42"
    )
    found = presented(data, values)
    expected = {
        "iotId": "a1B.lamp-1",
        "requestId": "42",
        "productKey": "a1B",
        "deviceName": "lamp-1",
        "gmtCreate": 1000,
        "items": {"Brightness": {"value": 5, "time": 990}},
    }
    assert found == {
        "/a1B/lamp-1/thing/event/property/post": expected,
        "/sys/a1B/lamp-1/thing/event/property/post": expected,
    }
    event = EventRaised(device=LAMP, received=1000, event="LampFault", params={"x": 1}, ts=999)
    fault = presented(data, event)["/a1B/lamp-1/thing/event/LampFault/post"]
    assert fault["identifier"] == "LampFault" and fault["type"] in ("info", "alert", "error")
    assert (fault["value"], fault["time"], fault["gmtCreate"]) == ({"x": 1}, 999, 1000)
    at = calendar.timegm((2018, 8, 31, 7, 32, 28)) * 1000 + 205
    online = StatusChanged(device=LAMP, received=at, online=True, address="192.0.2.1:5000")
    status = presented(data, online)["/as/mqtt/status/a1B/lamp-1"]
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at // 1000)) + ".205"
    assert status == {
        "status": "online", "iotId": "a1B.lamp-1", "productKey": "a1B", "deviceName": "lamp-1",
        "time": local, "utcTime": "2018-08-31T07:32:28.205Z", "lastTime": local,
        "utcLastTime": "2018-08-31T07:32:28.205Z", "clientIp": "192.0.2.1",
    }  # fmt: skip
    assert (
        "clientIp"
        not in presented(data, StatusChanged(device=LAMP, received=at, online=False))[
            "/as/mqtt/status/a1B/lamp-1"
        ]
    )
    assert data.translates("/sys/a1B/lamp-1/thing/event/property/post")
    assert data.translates("/sys/a1B/lamp-1/thing/event/LampFault/post")
    assert not data.translates("/sys/a1B/lamp-1/thing/event/property/post_reply")
    assert not data.translates("/a1B/lamp-1/user/update")
    assert data.device_in("/a1B/lamp-1/user/update") == LAMP
    assert data.device_in("/sys/a1B/lamp-1/thing/event/property/post") == LAMP
    assert data.device_in("/a1X/lamp-1/user/update") is None  # (no such device)
    assert data.device_in("town/a1B/lamp-1") is None
    assert data.product_in("/a1B/+/thing/event/property/post") == "a1B"
    assert data.product_in("/as/mqtt/status/a1B/+") == "a1B"
    assert data.product_in("/+/+/thing/event/property/post") is None
    assert data.product_in("/town/square/lights") is None


@pytest.mark.parametrize(
    ("template", "output", "topic"),
    [
        ("town/out", {}, "town/out"),
        ("town/${device}/on", {"device": "lamp-1"}, "town/lamp-1/on"),
        ("t/${a.b}/${n}/${ok}", {"a": {"b": "x"}, "n": 2.5, "ok": True}, "t/x/2.5/true"),
        ("t/${o}", {"o": {"x": 1}}, 't/{"x":1}'),
    ],
)
def test_topic_templates(template: str, output: dict[str, Any], topic: str) -> None:
    assert TopicTemplate(template).fill(output) == topic


@pytest.mark.parametrize("output", [{}, {"device": None}, {"other": "lamp-1"}])
def test_a_template_without_its_field_fails(output: dict[str, Any]) -> None:
    with pytest.raises(ActionFailed, match=r"\$\{device\}"):
        TopicTemplate("town/${device}").fill(output)
