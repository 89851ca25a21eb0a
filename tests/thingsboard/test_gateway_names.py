"""A gateway's devices: their Hongshan names (sans-IO)."""

from __future__ import annotations

import pytest

from hongshan.dialects.thingsboard.gateway import device_name_for
from hongshan.things.naming import check_device_name


@pytest.mark.parametrize(
    "name", ["lamp-0001", "Lamp 7", "A1", "温度计 3", "x" * 40, "a/b+c#", "Lamp_7"]
)
def test_a_gateway_device_name_is_a_hongshan_one(name: str) -> None:
    made = device_name_for(name)
    assert check_device_name(made) == made
    assert device_name_for(name) == made
    if name == "lamp-0001":
        assert made == name  # one that fits is kept as it is


def test_names_that_map_alike_stay_apart() -> None:
    assert device_name_for("Lamp 7") == "Lamp_7_d1c9482a"  # (as the README says)
    assert device_name_for("Lamp 7") != device_name_for("Lamp_7")
    assert device_name_for("Lamp 7") != device_name_for("Lamp?7")
