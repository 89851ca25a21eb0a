"""A device's topic rights: its own Alink, shadow, OTA, NTP, session and custom topics only."""

from __future__ import annotations

import pytest

from hongshan.dialects.alink.device_topics import DeviceTopics
from hongshan.things.model import TopicClass

PK, DN = "a1lamp00001", "lamp-17"
CLASSES = (
    TopicClass("/${productKey}/${deviceName}/user/update", "pub"),
    TopicClass("/${productKey}/${deviceName}/user/get", "sub"),
)


@pytest.fixture
def lamp() -> DeviceTopics:
    return DeviceTopics(PK, DN, CLASSES)


@pytest.mark.parametrize(
    ("topic", "allowed"),
    [
        (f"/sys/{PK}/{DN}/thing/event/property/post", True),
        (f"/sys/{PK}/{DN}/thing/service/property/set_reply", True),
        (f"/sys/{PK}/{DN}/rrpc/response/123", True),
        (f"/sys/{PK}/lamp-18/thing/event/property/post", False),  # another device
        (f"/sys/a1other0001/{DN}/thing/event/property/post", False),  # another product
        (f"/shadow/update/{PK}/{DN}", True),
        (f"/shadow/get/{PK}/{DN}", False),  # the platform's side
        (f"/ota/device/inform/{PK}/{DN}", True),
        (f"/ota/device/upgrade/{PK}/{DN}", False),
        (f"/ext/ntp/{PK}/{DN}/request", True),
        (f"/ext/ntp/{PK}/{DN}/response", False),
        (f"/{PK}/{DN}/user/update", True),
        (f"/{PK}/{DN}/user/get", False),  # a subscribe-only class
        (f"/ext/rrpc/99/{PK}/{DN}/user/update", True),
        (f"/ext/rrpc/99/sys/{PK}/{DN}/thing/x", False),
        (f"/ext/rrpc/99/sys/{PK}/{DN}/thing/service/Reboot", True),  # a synchronous call
        (f"/ext/rrpc/99/sys/{PK}/lamp-18/thing/service/Reboot", False),
        (f"/as/mqtt/status/{PK}/{DN}", False),
        ("town/lamps/17", False),
    ],
)
def test_publish(lamp: DeviceTopics, topic: str, allowed: bool) -> None:
    assert lamp.may_publish(topic) is allowed


@pytest.mark.parametrize(
    ("topic_filter", "allowed"),
    [
        (f"/sys/{PK}/{DN}/thing/service/property/set", True),
        (f"/sys/{PK}/{DN}/#", True),
        (f"/sys/{PK}/+/thing/service/property/set", False),  # every lamp's commands
        (f"/sys/{PK}/#", False),
        ("#", False),
        (f"/shadow/get/{PK}/{DN}", True),
        (f"/shadow/update/{PK}/{DN}", False),
        (f"/ota/device/upgrade/{PK}/{DN}", True),
        (f"/ext/ntp/{PK}/{DN}/response", True),
        (f"/ext/session/{PK}/{DN}/combine/login_reply", True),
        (f"/{PK}/{DN}/user/get", True),
        (f"/{PK}/{DN}/user/update", False),
        (f"/ext/rrpc/+/{PK}/{DN}/user/get", True),
        (f"/ext/rrpc/+/{PK}/lamp-18/user/get", False),
        (f"/ext/rrpc/+/sys/{PK}/{DN}/thing/service/+", True),  # automatic subscription
        (f"/ext/rrpc/+/sys/{PK}/lamp-18/thing/service/+", False),
    ],
)
def test_subscribe(lamp: DeviceTopics, topic_filter: str, allowed: bool) -> None:
    assert lamp.may_subscribe(topic_filter) is allowed


def test_a_gateway_also_speaks_for_its_logged_in_sub_devices() -> None:
    gateway = DeviceTopics("a1gateway01", "gw-1", (), also=[(PK, DN, CLASSES)])
    assert gateway.may_publish("/sys/a1gateway01/gw-1/thing/topo/add")
    assert gateway.may_publish(f"/sys/{PK}/{DN}/thing/event/property/post")
    assert gateway.may_subscribe(f"/{PK}/{DN}/user/get")
    assert not gateway.may_publish(f"/sys/{PK}/lamp-18/thing/event/property/post")


@pytest.mark.parametrize("name", ["#", "+", "a/b", ""])
def test_names_that_would_widen_a_rule_get_no_rights(name: str) -> None:
    device = DeviceTopics(PK, name)
    assert not device.may_publish(f"/sys/{PK}/x/thing/event/property/post")
    assert not device.may_subscribe(f"/sys/{PK}/#")
