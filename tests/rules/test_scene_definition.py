"""A scene's stored form: read from JSON/YAML as written, and what is wrong with it named."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from hongshan.rules.definition import SetAction
from hongshan.rules.scene import (
    DelayStep,
    SceneSpec,
    SunTriggerSpec,
    ThresholdTrigger,
    compares,
    scene_problem,
)

LAMP = {"productKey": "a1Lamp", "deviceName": "lamp-0001"}


def scene(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "lamps",
        "triggers": [{"type": "sun", "event": "dusk", "offsetSeconds": -600}],
        "actions": [{"type": "set", **LAMP, "values": {"LightSwitch": 1}}],
    }
    body.update(changes)
    return body


def test_a_scene_reads_as_written_and_round_trips() -> None:
    body = scene(
        triggers=[
            {
                "type": "threshold",
                "device": {"productKey": "a1Lux"},
                "property": "Illuminance",
                "op": "<",
                "value": 20,
                "forSeconds": 300,
            }
        ],
        actions=[{"type": "delay", "seconds": 5}, {"type": "set", **LAMP, "values": {"A": 1}}],
    )
    spec = msgspec.convert(body, SceneSpec)
    assert spec.triggers == [
        ThresholdTrigger(
            device=spec.triggers[0].device,  # type: ignore[union-attr]
            property="Illuminance",
            op="<",
            value=20,
            for_seconds=300,
        )
    ]
    assert spec.actions == [
        DelayStep(seconds=5),
        SetAction(product_key="a1Lamp", device_name="lamp-0001", values={"A": 1}),
    ]
    assert scene_problem(spec) is None
    again = msgspec.json.decode(msgspec.json.encode(spec), type=SceneSpec)
    assert again == spec
    assert isinstance(msgspec.convert(scene(), SceneSpec).triggers[0], SunTriggerSpec)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"name": " "}, "a scene's name is 1 to 64 characters"),
        ({"max": 0}, "max 0: 1 to 100"),
        ({"triggers": [{"type": "cron", "expr": "61 * * * *"}]}, "trigger 1 (cron): minute: 61"),
        (
            {
                "triggers": [
                    {"type": "sun", "event": "dusk", "place": {"latitude": 91, "longitude": 0}}
                ]
            },
            "trigger 1 (sun): latitude: 91",
        ),
        (
            {"conditions": {"any": [{"type": "timeWindow", "window": "25:00-01:00"}]}},
            "condition 1 (timeWindow): time:",
        ),
        ({"actions": [{"type": "delay", "seconds": -1}]}, "action 1 (delay): -1 s"),
        ({"actions": [{"type": "republish", "topic": "a/#"}]}, "action 1: republish:"),
        (
            {"triggers": [{"type": "noData", "device": LAMP, "forSeconds": 0}]},
            "trigger 1 (noData): forSeconds 0",
        ),
    ],
)
def test_what_is_wrong_with_a_scene_is_named(changes: dict[str, Any], problem: str) -> None:
    found = scene_problem(msgspec.convert(scene(**changes), SceneSpec))
    assert found is not None and found.startswith(problem), found


def test_a_scene_without_triggers_or_with_an_unknown_field_is_no_scene() -> None:
    with pytest.raises(msgspec.ValidationError, match="triggers"):
        msgspec.convert(scene(triggers=[]), SceneSpec)
    with pytest.raises(msgspec.ValidationError, match="colour"):
        msgspec.convert(scene(colour="red"), SceneSpec)


@pytest.mark.parametrize(
    ("value", "op", "than", "holds"),
    [
        (19, "<", 20, True),
        (20, "<", 20, False),
        ("on", "==", "on", True),
        ("5", ">", 1, False),
        (None, "<", 20, False),
        (True, ">", 0, False),
        (2.5, ">=", 2.5, True),
    ],
)
def test_a_comparison_of_different_kinds_never_holds(
    value: Any, op: str, than: Any, holds: bool
) -> None:
    assert compares(value, op, than) is holds
