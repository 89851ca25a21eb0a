"""The latest value of each property: newer values win, a late (history) value does not."""

from __future__ import annotations

from typing import Any

from hongshan.messages import DeviceRef, EventRaised, PropertyValues
from hongshan.twin.properties import PropertyTwin

LAMP = DeviceRef("a1BenchLamp", "lamp-1")


def post(params: dict[str, Any], ts: int, times: dict[str, int] | None = None) -> PropertyValues:
    return PropertyValues(device=LAMP, received=ts, values=params, ts=ts, device_time=times or {})


def latest(twin: PropertyTwin) -> dict[str, tuple[Any, int]]:
    return {k: (v.value, v.time) for k, v in twin.values("a1BenchLamp", "lamp-1").items()}


def test_newer_values_win_and_late_ones_do_not() -> None:
    twin = PropertyTwin()
    twin.on_uplink(post({"Brightness": 40, "Voltage": 220.0}, ts=1000))
    twin.on_uplink(post({"Brightness": 50}, ts=2000))
    assert latest(twin) == {"Brightness": (50, 2000), "Voltage": (220.0, 1000)}
    # a value the device stamped earlier (a history post) arrives late: kept out
    twin.on_uplink(post({"Brightness": 10, "Voltage": 230.0}, ts=3000, times={"Brightness": 1500}))
    assert latest(twin) == {"Brightness": (50, 2000), "Voltage": (230.0, 3000)}
    # a post without device times but older than what is kept (a clock stepped back)
    twin.on_uplink(post({"Voltage": 1.0}, ts=2500))
    assert latest(twin)["Voltage"] == (230.0, 3000)
    twin.on_uplink(post({"Voltage": 240.0}, ts=4000))
    assert latest(twin)["Voltage"] == (240.0, 4000)
    twin.forget("a1BenchLamp", "lamp-1")
    assert latest(twin) == {}


def test_other_uplinks_do_not_touch_properties() -> None:
    twin = PropertyTwin()
    event = EventRaised(device=LAMP, received=1, event="LampFault", params={"FaultCode": 1}, ts=1)
    twin.on_uplink(event)
    assert latest(twin) == {}
