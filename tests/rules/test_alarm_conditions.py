"""A product's alarm conditions, pure: the ``Repeated`` machine, predicates and their
thresholds (constants, a device's tag, a group's, the default), and ``DeviceConditions``
deciding raises, severities, clears and timers on told values and times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from hongshan.rules.alarm_conditions import (
    CLEAR,
    AlarmConditionSpec,
    DeviceConditions,
    Predicate,
    Tags,
    check,
    condition_problem,
    holding,
    threshold_of,
)
from hongshan.rules.scene_triggers import Next, Repeated


def spec(**fields: Any) -> AlarmConditionSpec:
    return msgspec.convert({"productKey": "pk", "type": "LowSpO2", **fields}, AlarmConditionSpec)


def low(op: str = "<", value: Any = 90, **more: Any) -> dict[str, Any]:
    return {"predicates": [{"property": "SpO2", "op": op, "value": value}], **more}


def test_repeated_fires_on_the_nth_in_a_row_once_and_a_break_starts_again() -> None:
    machine = Repeated(3)
    assert [machine.observe(True, at) for at in (1, 2)] == [Next.KEEP, Next.KEEP]
    assert machine.observe(True, 3) is Next.FIRE
    assert machine.observe(True, 4) is Next.KEEP  # (fired once for this run)
    assert machine.observe(False, 5) is Next.KEEP
    assert [machine.observe(True, at) for at in (6, 7)] == [Next.KEEP, Next.KEEP]
    assert machine.observe(False, 8) is Next.KEEP  # broken before the third
    assert [machine.observe(True, at) for at in (9, 10, 11)][-1] is Next.FIRE


def test_repeated_counts_only_the_values_within_its_window() -> None:
    machine = Repeated(3, window=1000)
    assert machine.observe(True, 0) is Next.KEEP
    assert machine.observe(True, 600) is Next.KEEP
    assert machine.observe(True, 1200) is Next.KEEP  # (0 is out: 600 and 1200 only)
    assert machine.observe(True, 1500) is Next.FIRE
    assert machine.due is None and not machine.expire(10_000)


@pytest.mark.parametrize(
    ("tags", "threshold", "source"),
    [
        (Tags(device={"spo2_min": "93"}), 93, "device tag spo2_min"),
        (
            Tags(device={"x": "1"}, groups=[("ward-a", {"spo2_min": "91.5"})]),
            91.5,
            "group ward-a tag spo2_min",
        ),
        (
            Tags(device={"spo2_min": "94"}, groups=[("ward-a", {"spo2_min": "91"})]),
            94,
            "device tag spo2_min",
        ),
        (Tags(), 90, "default"),
        (Tags(device={"spo2_min": "low"}), "low", "device tag spo2_min"),
    ],
)
def test_a_tag_threshold_comes_from_the_device_then_its_groups_then_the_default(
    tags: Tags, threshold: Any, source: str
) -> None:
    predicate = Predicate(property="SpO2", op="<", tag="spo2_min", value=90)
    assert threshold_of(predicate, tags) == (threshold, source)


def test_a_tag_threshold_with_no_default_and_no_tag_never_holds() -> None:
    condition = spec(create=[{"severity": "major", "predicates": [
        {"property": "SpO2", "op": "<", "tag": "spo2_min"}]}]).create[0]  # fmt: skip
    holds, checks = check(condition, {"SpO2": 50}, Tags())
    assert not holds and checks[0]["thresholdFrom"] == "none"
    holds, checks = check(condition, {"SpO2": 50}, Tags(device={"spo2_min": "92"}))
    assert holds and checks[0] == {
        "property": "SpO2",
        "value": 50,
        "op": "<",
        "threshold": 92,
        "thresholdFrom": "device tag spo2_min",
    }


def test_every_predicate_must_hold_and_a_missing_value_does_not() -> None:
    condition = spec(create=[{"severity": "major", "predicates": [
        {"property": "SpO2", "op": "<", "value": 90},
        {"property": "Pulse", "op": ">", "value": 120}]}]).create[0]  # fmt: skip
    assert not check(condition, {"SpO2": 80}, Tags())[0]
    assert not check(condition, {"SpO2": 80, "Pulse": 100}, Tags())[0]
    assert check(condition, {"SpO2": 80, "Pulse": 130}, Tags())[0]


def test_the_most_severe_that_fires_raises_and_the_clear_clears() -> None:
    state = DeviceConditions(
        spec(
            create=[
                {"severity": "major", **low(value=92)},
                {"severity": "critical", **low(value=85)},
            ],
            clear=low(">=", 95),
        )
    )
    assert state.observe({"SpO2": 97}, Tags(), 1).severity is None
    raised = state.observe({"SpO2": 80}, Tags(), 2)  # both fire: the critical one raises
    assert raised.severity == "critical" and not raised.clear
    assert raised.details["checks"][0]["threshold"] == 85
    assert state.observe({"SpO2": 81}, Tags(), 3).severity is None  # (still holding)
    assert state.observe({"SpO2": 90}, Tags(), 4).severity is None  # major still holds
    cleared = state.observe({"SpO2": 96}, Tags(), 5)
    assert cleared.clear and cleared.severity is None
    assert cleared.details["checks"][0]["value"] == 96
    again = state.observe({"SpO2": 91}, Tags(), 6)
    assert again.severity == "major"


def test_a_duration_waits_and_a_breaking_value_gives_the_wait_up() -> None:
    state = DeviceConditions(
        spec(create=[{"severity": "major", **low(kind="duration", forMs=300)}])
    )
    verdict = state.observe({"SpO2": 80}, Tags(), 1000)
    assert verdict.severity is None and verdict.timers == {0: 1300}
    assert state.observe({"SpO2": 85}, Tags(), 1100).timers == {}  # (still holding)
    assert state.observe({"SpO2": 99}, Tags(), 1200).timers == {0: None}
    assert state.expire(0, {"SpO2": 99}, Tags(), 1300).severity is None
    assert state.observe({"SpO2": 80}, Tags(), 1400).timers == {0: 1700}
    assert state.expire(0, {"SpO2": 80}, Tags(), 1699).severity is None
    fired = state.expire(0, {"SpO2": 82}, Tags(), 1700)
    assert fired.severity == "major"
    assert fired.details["heldSince"] == 1400 and fired.details["forMs"] == 300


def test_a_repeating_clear_clears_on_the_nth_good_value_unless_a_create_holds() -> None:
    state = DeviceConditions(
        spec(
            create=[{"severity": "minor", **low()}],
            clear=low(">", 94, kind="repeating", count=2),
        )
    )
    assert state.observe({"SpO2": 80}, Tags(), 1).severity == "minor"
    assert not state.observe({"SpO2": 96}, Tags(), 2).clear
    assert state.observe({"SpO2": 97}, Tags(), 3).clear


def test_a_held_clear_does_not_clear_while_a_create_condition_holds() -> None:
    # (a clear on another property than the create's: both may hold at once)
    heat = {"predicates": [{"property": "Temp", "op": ">", "value": 40}]}
    state = DeviceConditions(
        spec(
            create=[{"severity": "major", **heat}],
            clear={
                "predicates": [{"property": "Fan", "op": "==", "value": 1}],
                "kind": "duration",
                "forMs": 100,
            },
        )
    )
    assert state.observe({"Temp": 45, "Fan": 0}, Tags(), 0).severity == "major"
    assert state.observe({"Temp": 45, "Fan": 1}, Tags(), 10).timers == {CLEAR: 110}
    assert not state.expire(CLEAR, {"Temp": 45, "Fan": 1}, Tags(), 110).clear  # still hot
    state.observe({"Temp": 30, "Fan": 0}, Tags(), 200)  # (cool: the fan off breaks the hold)
    assert state.observe({"Temp": 30, "Fan": 1}, Tags(), 300).timers == {CLEAR: 400}
    assert state.expire(CLEAR, {"Temp": 30, "Fan": 1}, Tags(), 400).clear


def test_a_duration_resumes_from_the_values_heard_before_a_restart() -> None:
    state = DeviceConditions(
        spec(create=[{"severity": "major", **low(kind="duration", forMs=1000)}])
    )
    condition = state.conditions[0]
    series = {"SpO2": [(0, 99), (500, 80), (700, 85)]}
    assert holding(condition, series, Tags()) == [(0, False), (500, True), (700, True)]
    assert state.resume(0, holding(condition, series, Tags())) == 1500
    assert state.expire(0, {"SpO2": 85}, Tags(), 1500).severity == "major"
    assert state.resume(CLEAR, [(0, True)]) is None  # (no clear condition)


def test_holding_merges_several_properties_at_their_last_values() -> None:
    condition = spec(create=[{"severity": "major", "predicates": [
        {"property": "SpO2", "op": "<", "value": 90},
        {"property": "Pulse", "op": ">", "value": 120}]}]).create[0]  # fmt: skip
    series = {"SpO2": [(1, 80), (5, 95)], "Pulse": [(2, 130), (5, 125)]}
    assert holding(condition, series, Tags()) == [(1, False), (2, True), (5, False)]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"type": "", "create": [{"severity": "major", **low()}]}, "alarm's type"),
        ({"create": []}, "create: 1 to 5"),
        (
            {"create": [{"severity": "major", **low()}, {"severity": "major", **low()}]},
            "one condition per severity",
        ),
        ({"create": [{"severity": "major", **low(kind="duration")}]}, "create major: duration"),
        (
            {"create": [{"severity": "major", **low()}], "clear": low(kind="repeating")},
            "clear: repeating: count 0",
        ),
        (
            {"create": [{"severity": "major", "predicates": [{"property": "SpO2", "op": "<"}]}]},
            "give a value or a tag",
        ),
    ],
)
def test_a_condition_that_cannot_run_is_named(fields: dict[str, Any], words: str) -> None:
    problem = condition_problem(spec(**fields))
    assert problem is not None and words in problem


def test_the_readmes_condition_is_one_that_runs() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Alarms") :]
    text = section[section.index("```yaml\n") + 8 :]
    written = msgspec.convert(yaml.safe_load(text[: text.index("```\n")]), AlarmConditionSpec)
    assert condition_problem(written) is None
    state = DeviceConditions(written)
    assert state.observe({"SpO2": 80}, Tags(), 0).severity == "critical"
    assert threshold_of(written.create[1].predicates[0], Tags(device={"spo2_min": "90"}))[0] == 90


def test_a_repeating_count_and_a_simple_hold_resume_from_the_values_before_a_restart() -> None:
    state = DeviceConditions(
        spec(
            create=[
                {"severity": "critical", **low(value=80)},
                {"severity": "major", **low(kind="repeating", count=3, windowMs=1000)},
            ],
            clear=low(">", 94, kind="repeating", count=2),
        )
    )
    assert [state.lookback(slot) for slot in (0, 1, CLEAR)] == [0, 1000, None]
    # two low values within the window before the stop: the third after it raises
    assert state.resume(1, [(100, False), (500, True), (900, True)]) is None
    assert state.observe({"SpO2": 85}, Tags(), 1200).severity == "major"
    # a critical value held when it stopped raised then: the next one is no new crossing
    state.resume(0, [(1100, True)])
    assert state.observe({"SpO2": 70}, Tags(), 1300).severity is None


def test_repeated_resumes_by_counting_the_values_again() -> None:
    machine = Repeated(2, window=1000)
    machine.resume([(0, True), (10, True), (20, True)])  # (fired before the stop)
    assert machine.observe(True, 30) is Next.KEEP
    machine = Repeated(2, window=1000)
    machine.resume([(0, True)])
    assert machine.observe(True, 2000) is Next.KEEP  # (out of the window)
    assert machine.observe(True, 2500) is Next.FIRE
