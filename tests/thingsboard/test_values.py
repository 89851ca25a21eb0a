"""Values against the thing model both ways, and telemetry as property values with their
idempotency keys (sans-IO)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hongshan.dialects.thingsboard.uplinks import message_digest, property_values
from hongshan.dialects.thingsboard.values import (
    Checked,
    Refusal,
    check,
    from_device,
    param_types,
    property_types,
    to_device,
)
from hongshan.things.tsl import ThingModel

LAMP = ThingModel.from_json(
    (Path(__file__).parent.parent / "things" / "data" / "streetlight.json").read_bytes()
)
NOW = 1_764_374_400_000


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"LightSwitch": True, "Brightness": 40}, {"LightSwitch": 1, "Brightness": 40}),
        ({"Brightness": "40", "Voltage": "220.5"}, {"Brightness": 40, "Voltage": 220.5}),
        ({"Brightness": 40.0}, {"Brightness": 40}),
        ({"Voltage": 220}, {"Voltage": 220}),
    ],
)
def test_values_that_fit(values: dict[str, Any], expected: dict[str, Any]) -> None:
    assert check(LAMP, values) == Checked(expected)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"Brightness": 40, "Colour": "red"}, "Colour"),
        ({"Brightness": 150}, "Brightness"),
        ({"Brightness": 40.5}, "Brightness"),
        ({"Brightness": "forty"}, "Brightness"),
        ({"Brightness": " 40"}, "Brightness"),
        ({"Brightness": "1_0"}, "Brightness"),
        ({"LightSwitch": 2}, "LightSwitch"),
    ],
)
def test_values_that_do_not(values: dict[str, Any], key: str) -> None:
    refused = check(LAMP, values)
    assert isinstance(refused, Refusal) and refused.key == key


def test_no_model_takes_every_key() -> None:
    assert check(None, {"anything": [1]}) == Checked({"anything": [1]})


def test_a_schemaless_product_takes_new_keys_typed_by_their_first_value() -> None:
    checked = check(
        LAMP,
        {"Brightness": 40, "rssi": -70, "label": "north", "state": {"a": 1}, "ok": True},
        schemaless=True,
        product_key="a1Lamp",
    )
    assert isinstance(checked, Checked)
    assert checked.values == {
        "Brightness": 40,
        "rssi": -70,
        "label": "north",
        "state": '{"a":1}',  # an object for a text property: its JSON text
        "ok": 1,
    }
    assert checked.new == {"rssi": -70, "label": "north", "state": {"a": 1}, "ok": True}
    assert check(None, {"t": 1}, schemaless=True, product_key="a1Lamp") == Checked(
        {"t": 1}, {"t": 1}
    )
    # a key that cannot be a TSL identifier refuses the message as an unknown key does
    refused = check(LAMP, {"battery-level": 3}, schemaless=True, product_key="a1Lamp")
    assert isinstance(refused, Refusal) and refused.key == "battery-level"
    # a known key is checked as ever
    assert isinstance(check(LAMP, {"Brightness": 500}, schemaless=True), Refusal)


def test_values_to_a_device_are_json_again() -> None:
    types = property_types(LAMP)
    assert to_device(types, {"LightSwitch": 1, "Brightness": 3}) == {
        "LightSwitch": True,
        "Brightness": 3,
    }
    assert to_device(property_types(None), {"LightSwitch": 1}) == {"LightSwitch": 1}
    assert param_types(LAMP, "set")["LightSwitch"] == types["LightSwitch"]  # its "set" service
    assert param_types(LAMP, "Reboot") == {}
    assert param_types(LAMP, "nothing") == {}
    assert from_device(types, {"LightSwitch": True, "x": True}) == {"LightSwitch": 1, "x": True}


def test_property_values_and_their_keys() -> None:
    device = ("a1Lamp", "lamp-1")
    entries: list[Any] = [(None, {"t": 1}), (NOW - 5000, {"t": 2}), (0, {"t": 3}), (None, {})]
    payload = json.dumps(entries).encode()
    digest = message_digest(device, "v1/devices/me/telemetry", 7, payload)
    # the message's key: its packet id is part of it (another message, another id)
    assert message_digest(device, "v1/devices/me/telemetry", 8, payload) != digest
    made = property_values(device, entries, now=NOW, digest=digest)
    assert [(u.ts, u.values, u.device_time) for u in made] == [
        (NOW, {"t": 1}, {}),  # arrival time, no device time
        (NOW - 5000, {"t": 2}, {"t": NOW - 5000}),
        (NOW, {"t": 3}, {"t": NOW}),  # a clock never set: ours
    ]
    assert len({u.key for u in made}) == 3 and all(u.key.startswith(digest) for u in made)
    # a value the device timed has the same key when sent again; one it did not, another (a
    # resend is known by the message's key, before its values are made)
    again = property_values(device, entries, now=NOW + 1000, digest=digest)
    assert again[1].key == made[1].key and again[0].key != made[0].key
    assert all(u.key == b"" for u in property_values(device, entries, now=NOW))  # QoS 0
