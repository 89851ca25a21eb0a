"""A ThingsBoard device's attributes as its attribute requests are answered (sans-IO): client
ones from the platform's latest values (the twin), shared ones from what the platform pushed."""

from __future__ import annotations

from hongshan.dialects.thingsboard.attributes import Attributes
from hongshan.messages import DeviceRef, PropertyValues
from hongshan.twin.properties import PropertyTwin

DEVICE = ("a1Thermo", "thermostat-1")


def values(ts: int, times: dict[str, int] | None = None, **kept: object) -> PropertyValues:
    return PropertyValues(
        device=DeviceRef(*DEVICE), received=ts, values=kept, ts=ts, device_time=times or {}
    )


def latest_of(twin: PropertyTwin) -> Attributes:
    return Attributes(lambda device: twin.peek(*device))


def test_client_attributes_are_the_latest_values_reported() -> None:
    twin = PropertyTwin()
    attributes = latest_of(twin)
    twin.restore({DEVICE: {"firmware": ("1.0.1", 100), "humidity": (40, 100)}})
    twin.on_uplink(values(200, firmware="1.0.2", temperature=21.5))
    # a value the device timed before the one kept does not replace it
    twin.on_uplink(values(300, {"humidity": 50}, humidity=38))
    assert attributes.read(DEVICE, None, None) == (
        {"firmware": "1.0.2", "humidity": 40, "temperature": 21.5},
        {},
    )
    assert attributes.read(DEVICE, ["firmware", "nothing"], None) == ({"firmware": "1.0.2"}, {})


def test_shared_attributes_are_what_was_pushed() -> None:
    attributes = latest_of(PropertyTwin())
    attributes.pushed(DEVICE, {"mode": "auto"})
    attributes.pushed(DEVICE, {"level": 3, "mode": "eco"})
    assert attributes.read(DEVICE, None, ["mode"]) == ({}, {"mode": "eco"})
    assert attributes.read(DEVICE, None, None) == ({}, {"mode": "eco", "level": 3})
    attributes.forget(DEVICE)
    assert attributes.read(DEVICE, None, None) == ({}, {})
    assert attributes.read(("a1Other", "x"), ["a"], ["b"]) == ({}, {})
