"""Alink params to checked uplinks: one post, a history post, a gateway's pack post; all or
nothing, with Alibaba's codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hongshan.dialects.alink.topics import Topic, parse, sync_service_topic
from hongshan.dialects.alink.uplinks import (
    Refusal,
    event_uplink,
    history_uplinks,
    pack_uplinks,
    property_uplink,
)
from hongshan.messages import EventRaised, PropertyValues
from hongshan.things.tsl import ThingModel

DATA = Path(__file__).parent / "data"
LAMP = ThingModel.from_json((DATA / "streetlight.json").read_bytes())
GW, SUB, OTHER = ("a1Gateway01", "gw-1"), ("a1LampLamp1", "lamp-1"), ("a1LampLamp1", "lamp-9")
NOW = 1_764_374_400_000


def model_of(pk: str) -> ThingModel | None:
    return LAMP if pk == SUB[0] else None


def speaks(pk: str, dn: str) -> bool:
    return (pk, dn) == SUB


@pytest.mark.parametrize(
    ("topic", "kind", "identifier"),
    [
        ("/sys/a1B/dn/thing/event/property/post", Topic.PROPERTY_POST, ""),
        ("/sys/a1B/dn/thing/event/property/history/post", Topic.HISTORY_POST, ""),
        ("/sys/a1B/dn/thing/event/property/pack/post", Topic.PACK_POST, ""),
        ("/sys/a1B/dn/thing/event/LampFault/post", Topic.EVENT_POST, "LampFault"),
        ("/sys/a1B/dn/thing/service/property/set_reply", Topic.PROPERTY_SET_REPLY, ""),
        ("/sys/a1B/dn/thing/service/Reboot_reply", Topic.SERVICE_REPLY, "Reboot"),
        ("/sys/a1B/dn/rrpc/response/123", Topic.RRPC_RESPONSE, "123"),
    ],
)
def test_topics(topic: str, kind: Topic, identifier: str) -> None:
    found = parse(topic)
    assert found is not None
    assert (found.product_key, found.device_name) == ("a1B", "dn")
    assert (found.topic, found.identifier) == (kind, identifier)


@pytest.mark.parametrize(
    "topic",
    [
        "/sys/a1B/dn/thing/event/property/post_reply",
        "/sys/a1B/dn/thing/service/Reboot",
        "/sys/a1B/dn/thing/service/_reply",
        "sys/a1B/dn/thing/event/property/post",
        "/a1B/dn/user/update",
    ],
)
def test_not_uplink_topics(topic: str) -> None:
    assert parse(topic) is None


def test_a_sync_service_reply_topic() -> None:
    found = sync_service_topic("/ext/rrpc/77/sys/a1B/dn/thing/service/Reboot")
    assert found is not None and found[0] == "77" and found[1].identifier == "Reboot"
    assert sync_service_topic("/ext/rrpc/77/a1B/dn/user/get") is None


def test_a_property_post_keeps_device_times() -> None:
    made = property_uplink(
        LAMP, *SUB, {"Brightness": {"value": 30, "time": NOW - 1000}, "LightSwitch": 1}, "1", NOW
    )
    assert isinstance(made, PropertyValues)
    assert made.values == {"Brightness": 30, "LightSwitch": 1}
    assert made.device_time == {"Brightness": NOW - 1000} and made.ts == NOW - 1000


@pytest.mark.parametrize(
    ("claimed", "kept"),
    [
        (NOW - 86_400_000, NOW - 86_400_000),  # a day late: a device that was offline
        (NOW + 60_000, NOW + 60_000),  # a minute ahead: clocks drift
        (NOW + 3_600_000, NOW),  # an hour ahead: ours instead
        (1000, NOW),  # a clock never set (1970): ours instead
    ],
)
def test_device_times_are_kept_when_plausible(claimed: int, kept: int) -> None:
    made = property_uplink(LAMP, *SUB, {"Brightness": {"value": 30, "time": claimed}}, "1", NOW)
    assert (
        isinstance(made, PropertyValues)
        and made.device_time == {"Brightness": kept}
        and made.ts == kept
    )
    event = event_uplink(
        LAMP, *SUB, "LampFault", {"value": {"FaultCode": 1}, "time": claimed}, "1", NOW
    )
    assert isinstance(event, EventRaised) and event.ts == kept


def test_a_history_post_for_the_device_and_its_logged_in_sub_device() -> None:
    params = [
        {
            "identity": {"productKey": SUB[0], "deviceName": SUB[1]},
            "properties": [
                {"Brightness": {"value": 10, "time": NOW - 3000}},
                {"Brightness": {"value": 20, "time": NOW - 2000}},
            ],
            "events": [{"LampFault": {"value": {"FaultCode": 1}, "time": NOW - 2500}}],
        }
    ]
    made = history_uplinks(model_of, GW, params, "9", NOW, speaks)
    assert isinstance(made, list)
    kinds = [(type(u), u.ts, u.device.product) for u in made]  # type: ignore[attr-defined]
    assert kinds == [
        (PropertyValues, NOW - 3000, SUB[0]),
        (PropertyValues, NOW - 2000, SUB[0]),
        (EventRaised, NOW - 2500, SUB[0]),
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([], 460),
        ({"properties": []}, 460),
        ([{"identity": {"productKey": OTHER[0], "deviceName": OTHER[1]}, "properties": []}], 460),
        ([{"identity": {"productKey": SUB[0], "deviceName": SUB[1]},
           "properties": [{"Brightness": {"value": 10, "time": 1}}, {"Brightness": 500}]}], 6306),
        ([{"identity": {"productKey": SUB[0], "deviceName": SUB[1]},
           "events": [{"Nonsense": {"value": {}}}]}], 6300),
    ],
)  # fmt: skip
def test_a_bad_history_post_is_refused_whole(params: Any, code: int) -> None:
    made = history_uplinks(model_of, GW, params, "9", NOW, speaks)
    assert isinstance(made, Refusal) and made.code == code


def test_a_pack_post() -> None:
    params = {
        "properties": {"CPU": {"value": 12, "time": 1000}},  # the gateway has no model
        "subDevices": [
            {
                "identity": {"productKey": SUB[0], "deviceName": SUB[1]},
                "properties": {"Brightness": {"value": 70, "time": 1200}},
                "events": {"LampFault": {"value": {"FaultCode": 2}, "time": 1300}},
            }
        ],
    }
    made = pack_uplinks(model_of, GW, params, "5", NOW, speaks)
    assert isinstance(made, list)
    assert [(u.device.product, type(u)) for u in made] == [
        (GW[0], PropertyValues),
        (SUB[0], PropertyValues),
        (SUB[0], EventRaised),
    ]
    bad = {"subDevices": [{"identity": {"productKey": OTHER[0], "deviceName": OTHER[1]}}]}
    refused = pack_uplinks(model_of, GW, bad, "5", NOW, speaks)
    assert isinstance(refused, Refusal) and "lamp-9" in refused.message
    wrong = {"subDevices": [{"identity": {"productKey": SUB[0], "deviceName": SUB[1]},
                             "properties": {"Brightness": "bright"}}]}  # fmt: skip
    refused = pack_uplinks(model_of, GW, wrong, "5", NOW, speaks)
    assert isinstance(refused, Refusal) and refused.code == 6306


def test_without_a_model_stamped_values_are_still_read() -> None:
    stamped = {"CPU": {"value": 12, "time": NOW - 900}, "Mem": 40}
    made = property_uplink(None, *GW, stamped, "1", NOW)
    assert isinstance(made, PropertyValues)
    assert made.values == {"CPU": 12, "Mem": 40} and made.device_time == {"CPU": NOW - 900}


def test_each_part_of_one_message_has_its_own_idempotency_key() -> None:
    """A bus between processes drops a message whose key it has seen (JetStream's message
    ids): the parts of one history or pack post must not share one. The first keeps the
    message's key (the history remembers that one), the others add their number."""
    params = [
        {
            "identity": {"productKey": SUB[0], "deviceName": SUB[1]},
            "properties": [{"Brightness": {"value": 10, "time": NOW - 3000}}],
            "events": [{"LampFault": {"value": {"FaultCode": 1}, "time": NOW - 2500}}],
        },
        {"properties": [{"CPU": {"value": 3, "time": NOW - 100}}]},
    ]
    made = history_uplinks(model_of, GW, params, "9", NOW, speaks, b"KKKKKKKK")
    assert isinstance(made, list) and len(made) == 3
    assert made[0].key == b"KKKKKKKK"
    assert len({uplink.key for uplink in made}) == 3
    pack = {"properties": {"CPU": 1}, "events": {"Boot": {"value": {}}}}
    packed = pack_uplinks(model_of, GW, pack, "5", NOW, speaks, b"PPPPPPPP")
    assert isinstance(packed, list) and len({uplink.key for uplink in packed}) == 2
    alone = history_uplinks(model_of, GW, params[1:], "9", NOW, speaks, b"AAAAAAAA")
    assert isinstance(alone, list) and [uplink.key for uplink in alone] == [b"AAAAAAAA"]
