"""A schemaless product's thing model grown from first-seen values: each value's type, and
what cannot become a property."""

from __future__ import annotations

from typing import Any

import pytest

from hongshan.things.first_seen import BOOL, DOUBLE, INT, TEXT, data_type_of, extend
from hongshan.things.tsl import DataType, ThingModel


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, BOOL),
        (False, BOOL),
        (0, INT),
        (-(2**31), INT),
        (2**31 - 1, INT),
        (2**31, DOUBLE),  # beyond int32: a time in ms, a counter
        (-(2**31) - 1, DOUBLE),
        (21.5, DOUBLE),
        ("auto", TEXT),
        ("", TEXT),
        ({"interval": 5}, TEXT),
        ([1, 2, 3], TEXT),
        (None, None),
    ],
)
def test_the_first_value_gives_the_type(value: Any, expected: DataType | None) -> None:
    assert data_type_of(value) == expected


def test_a_model_is_made_grown_and_left_alone_when_nothing_is_new() -> None:
    model, seen = extend(None, "a1Station01", {"temperature": 21.5, "ok": True})
    assert model is not None and seen.added == ("temperature", "ok") and seen.refused == {}
    assert model.profile is not None and model.profile.product_key == "a1Station01"
    assert model == ThingModel.from_json(model.to_json())  # valid TSL, exported as kept
    again, nothing = extend(model, "a1Station01", {"temperature": "warm"})
    assert again is model and nothing.added == ()
    grown, more = extend(model, "a1Station01", {"humidity": 40, "ok": False})
    assert grown is not None and more.added == ("humidity",)
    assert [p.identifier for p in grown.properties] == ["temperature", "ok", "humidity"]
    writable, _ = extend(None, "a1Station01", {"mode": "auto"}, access_mode="rw")
    assert writable is not None and writable.properties[0].access_mode == "rw"


def test_what_cannot_be_a_property_is_refused_and_said_why() -> None:
    values = {"room.temperature": 1, "x" * 51: 1, "battery": None, "ok": 1}
    _, seen = extend(None, "a1Station01", values)
    assert seen.added == ("ok",)
    assert set(seen.refused) == {"room.temperature", "x" * 51, "battery"}
    assert "letters, digits and underscores" in seen.refused["room.temperature"]
    assert "null" in seen.refused["battery"]
    full, _ = extend(None, "a1Station01", {f"p{n}": n for n in range(300)})
    assert full is not None and len(full.properties) == 300
    same, over = extend(full, "a1Station01", {"p300": 1})
    assert same is full and "at most 300" in over.refused["p300"]
