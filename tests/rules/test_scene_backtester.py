"""``SceneBacktester`` without a server, on a history in SQLite filled with recorded uplinks:
holds, silences and cron on the recorded clock, conditions judged on the recorded time and
values, modes, delays moving the recorded time, two versions compared."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from history_places import HistoryPlace, record
from hongshan import messages as m
from hongshan.rules.scene import SceneSpec
from hongshan.services.scenes.backtest import SceneBacktest, SceneBacktester
from hongshan.store.history.sqlite import SQLiteHistory

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
S = 1000
LUX = m.DeviceRef("a1Lux", "lux-1")
LAMP = m.DeviceRef("a1Lamp", "lamp-1")


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[SQLiteHistory]:
    opened = await HistoryPlace("sqlite", tmp_path).open()
    assert isinstance(opened, SQLiteHistory)
    try:
        yield opened
    finally:
        await opened.close()


def lux(at: int, value: Any, device: m.DeviceRef = LUX) -> m.PropertyValues:
    return m.PropertyValues(device=device, received=T0 + at, ts=T0 + at, values={"Lux": value})


def lamp(at: int, switch: int) -> m.PropertyValues:
    return m.PropertyValues(
        device=LAMP, received=T0 + at, ts=T0 + at, values={"LightSwitch": switch}
    )


def knock(at: int) -> m.EventRaised:
    return m.EventRaised(device=LUX, received=T0 + at, ts=T0 + at, event="Knock", params={})


def scene(**fields: Any) -> SceneSpec:
    fields.setdefault("name", "a scene")
    fields.setdefault("actions", [{"type": "republish", "topic": "town/on"}])
    return msgspec.convert(fields, SceneSpec)


def above(value: float, hold: float = 0) -> dict[str, Any]:
    return {
        "type": "threshold",
        "device": {"productKey": "a1Lux", "deviceName": "lux-1"},
        "property": "Lux",
        "op": ">",
        "value": value,
        "forSeconds": hold,
    }


def backtester(history: SQLiteHistory) -> SceneBacktester:
    async def members(group: str, tenant: str) -> list[tuple[str, str]]:
        return []

    return SceneBacktester(
        history,
        zone=dt.UTC,
        place=None,
        members=members,
        devices_of=lambda pk: [(LUX.product, LUX.device)] if pk == LUX.product else [],
    )


def ran_at(found: SceneBacktest) -> list[int]:
    return [run.at - T0 for run in found.scene.runs if run.ran]


async def test_a_hold_fires_at_the_recorded_time_it_ended(history: SQLiteHistory) -> None:
    await record(history, lux(0, 10), lux(10 * S, 90), lux(40 * S, 95), lux(100 * S, 97))
    found = await backtester(history).run(scene(triggers=[above(50, 60)]), T0, T0 + 200 * S)
    assert found.complete and (found.uplinks, found.values) == (4, 4)
    (run,) = found.scene.runs
    assert run.ran and run.at == T0 + 70 * S and run.state == "done"
    # (the value as it was then: the post at 40 s, not the one after)
    assert run.trigger["heldSince"] == T0 + 10 * S and run.trigger["value"] == 95
    (step,) = run.steps
    assert (step["type"], step["topic"], step["at"]) == ("republish", "town/on", T0 + 70 * S)
    assert step["payload"]["deviceName"] == "lux-1"


async def test_a_value_breaking_a_hold_prevents_it(history: SQLiteHistory) -> None:
    await record(history, lux(10 * S, 90), lux(50 * S, 10), lux(100 * S, 90))
    found = await backtester(history).run(scene(triggers=[above(50, 60)]), T0, T0 + 200 * S)
    assert ran_at(found) == [160 * S]  # (not at 70 s: broken at 50 s)
    shorter = await backtester(history).run(scene(triggers=[above(50, 60)]), T0, T0 + 150 * S)
    assert shorter.scene.runs == [] and shorter.scene.triggered == 0


async def test_a_hold_under_way_at_the_start_goes_on_from_before_it(
    history: SQLiteHistory,
) -> None:
    await record(history, lux(0, 90), lux(30 * S, 95))
    found = await backtester(history).run(scene(triggers=[above(50, 60)]), T0 + 20 * S, T0 + 90 * S)
    assert ran_at(found) == [60 * S]


async def test_a_cron_trigger_fires_at_its_recorded_times(history: SQLiteHistory) -> None:
    found = await backtester(history).run(
        scene(triggers=[{"type": "cron", "expr": "0 * * * *"}]), T0, T0 + 3 * 3600 * S
    )
    assert ran_at(found) == [0, 3600 * S, 7200 * S]
    assert found.scene.runs[1].trigger == {"trigger": "cron", "index": 0, "at": T0 + 3600 * S}
    assert found.uplinks == 0 and found.notes == []  # (a schedule reads no history)


async def test_a_silence_fires(history: SQLiteHistory) -> None:
    await record(history, lux(0, 1), lux(10 * S, 2), lux(200 * S, 3))
    silence = {"type": "noData", "device": {"productKey": "a1Lux"}, "forSeconds": 60}
    found = await backtester(history).run(scene(triggers=[silence]), T0, T0 + 300 * S)
    assert ran_at(found) == [70 * S, 260 * S]
    assert found.scene.runs[0].trigger["lastHeard"] == T0 + 10 * S


async def test_conditions_are_judged_on_the_recorded_time_and_values(
    history: SQLiteHistory,
) -> None:
    await record(
        history,
        lamp(0, 0),
        knock(10 * S),  # the lamp is off
        lamp(20 * S, 1),
        knock(30 * S),  # on, in the window: runs
        knock(90 * S),  # outside the window
    )
    found = await backtester(history).run(
        scene(
            triggers=[
                {"type": "event", "device": {"productKey": "a1Lux"}, "event": "Knock"},
            ],
            conditions={
                "all": [
                    {"type": "timeWindow", "window": "00:00-00:01"},
                    {
                        "type": "deviceValue",
                        "productKey": "a1Lamp",
                        "deviceName": "lamp-1",
                        "property": "LightSwitch",
                        "op": "==",
                        "value": 1,
                    },
                ]
            },
        ),
        T0,
        T0 + 120 * S,
    )
    first, second, third = found.scene.runs
    assert not first.ran and first.reason == "condition"
    assert first.condition == "deviceValue a1Lamp/lamp-1 LightSwitch == 1"
    assert first.why == "a1Lamp/lamp-1 LightSwitch is 0, not == 1"
    assert second.ran and second.at == T0 + 30 * S
    assert not third.ran and third.condition == "timeWindow 00:00-00:01"
    assert (found.scene.triggered, found.scene.ran, found.scene.not_run) == (3, 1, 2)


async def test_mode_single_drops_a_trigger_while_a_run_waits_in_a_delay(
    history: SQLiteHistory,
) -> None:
    await record(history, lux(0, 90), lux(10 * S, 10), lux(20 * S, 90), lux(30 * S, 10))
    await record(history, lux(100 * S, 90))
    steps = [
        {"type": "delay", "seconds": 60},
        {"type": "set", "productKey": "a1Lamp", "deviceName": "lamp-1", "values": {"On": 1}},
    ]
    spec = scene(triggers=[above(50)], actions=steps, mode="single")
    found = await backtester(history).run(spec, T0, T0 + 130 * S)
    first, dropped, third = found.scene.runs
    assert first.ran and first.state == "done"
    (step,) = first.steps  # (the delay moved the recorded time)
    assert (step["step"], step["at"], step["values"]) == (2, T0 + 60 * S, {"On": 1})
    assert not dropped.ran and dropped.reason == "mode" and dropped.at == T0 + 20 * S
    assert third.ran and third.steps == [] and third.state == "waiting"  # (past the end)
    assert found.scene.skipped == 1
    queued = await backtester(history).run(
        msgspec.structs.replace(spec, mode="queued"), T0, T0 + 200 * S
    )
    assert ran_at(queued) == [0, 60 * S, 120 * S]  # (the second once the first was done)
    assert [run.steps[0]["at"] - T0 for run in queued.scene.runs] == [60 * S, 120 * S, 180 * S]


async def test_two_versions_compared(history: SQLiteHistory) -> None:
    await record(history, lux(0, 60), lux(10 * S, 10), lux(20 * S, 90), lux(30 * S, 10))
    await record(history, lux(40 * S, 70))
    old, new = scene(triggers=[above(50)]), scene(name="new", triggers=[above(80)])
    found = await backtester(history).run(new, T0, T0 + 60 * S, against=old)
    assert found.against is not None
    assert (found.scene.ran, found.against.ran) == (1, 3)
    assert found.counts == {"onlyScene": 0, "onlyAgainst": 2, "same": 1}
    assert [run.at - T0 for run in found.only_against] == [0, 40 * S]
    assert found.only_scene == []


async def test_a_webhook_trigger_is_said_not_replayed(history: SQLiteHistory) -> None:
    found = await backtester(history).run(scene(triggers=[{"type": "webhook"}]), T0, T0 + S)
    assert found.scene.runs == []
    assert "webhook trigger cannot be replayed" in found.notes[0]


async def test_mode_restart_cancels_the_run_in_its_delay(history: SQLiteHistory) -> None:
    await record(history, lux(0, 90), lux(10 * S, 10), lux(20 * S, 90))
    steps = [{"type": "delay", "seconds": 30}, {"type": "republish", "topic": "town/late"}]
    spec = scene(triggers=[above(50)], actions=steps, mode="restart")
    found = await backtester(history).run(spec, T0, T0 + 100 * S)
    first, second = found.scene.runs
    assert (first.state, first.steps) == ("cancelled", [])
    assert second.state == "done" and second.steps[0]["at"] == T0 + 50 * S


async def test_a_group_aggregate_is_judged_on_the_values_as_they_were(
    history: SQLiteHistory,
) -> None:
    other = m.DeviceRef("a1Lux", "lux-2")
    await record(
        history,
        lux(0, 10),
        lux(0, 30, other),
        knock(10 * S),  # avg 20
        lux(20 * S, 90, other),
        knock(30 * S),  # avg 50
    )

    async def members(group: str, tenant: str) -> list[tuple[str, str]]:
        assert group == "street"
        return [("a1Lux", "lux-1"), ("a1Lux", "lux-2")]

    backtests = SceneBacktester(
        history, zone=dt.UTC, place=None, members=members, devices_of=lambda pk: []
    )
    spec = scene(
        triggers=[{"type": "event", "device": {"productKey": "a1Lux"}, "event": "Knock"}],
        conditions={
            "all": [
                {
                    "type": "groupAggregate",
                    "group": "street",
                    "property": "Lux",
                    "fn": "avg",
                    "op": ">=",
                    "value": 40,
                }
            ]
        },
    )
    found = await backtests.run(spec, T0, T0 + 60 * S)
    first, second = found.scene.runs
    assert not first.ran and first.why == "avg of Lux over group street is 20.0, not >= 40"
    assert second.ran and second.at == T0 + 30 * S
