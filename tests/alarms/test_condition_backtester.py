"""``ConditionBacktester`` without a server, on a history in SQLite filled with recorded posts:
a simple condition, a duration raised at its hold's recorded end (a breaking value prevents
it; a hold under way at the range's start goes on), a repeating one, the clear, a severity
raised by a repeat, tag thresholds, and two versions compared."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from history_places import HistoryPlace, record
from hongshan import messages as m
from hongshan.rules.alarm_conditions import AlarmConditionSpec, StoredAlarmCondition
from hongshan.services.alarms.condition_backtest import ConditionBacktest, ConditionBacktester
from hongshan.store.history.model import HistoryProblem
from hongshan.store.history.sqlite import SQLiteHistory
from hongshan.things.tag_directory import TagDirectory

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
S = 1000
PK = "a1Oximeter"
BED_1 = m.DeviceRef(PK, "bed-1")
BED_2 = m.DeviceRef(PK, "bed-2")


@pytest.fixture
async def history(tmp_path: Path) -> AsyncIterator[SQLiteHistory]:
    opened = await HistoryPlace("sqlite", tmp_path).open()
    assert isinstance(opened, SQLiteHistory)
    try:
        yield opened
    finally:
        await opened.close()


def spo2(at: int, value: Any, device: m.DeviceRef = BED_1) -> m.PropertyValues:
    return m.PropertyValues(device=device, received=T0 + at, ts=T0 + at, values={"SpO2": value})


def low(value: float, **more: Any) -> dict[str, Any]:
    return {"predicates": [{"property": "SpO2", "op": "<", "value": value}], **more}


def condition(condition_id: int = 7, **fields: Any) -> StoredAlarmCondition:
    fields.setdefault("create", [{"severity": "major", **low(92)}])
    spec = msgspec.convert({"productKey": PK, "type": "LowSpO2", **fields}, AlarmConditionSpec)
    return StoredAlarmCondition(id=condition_id, spec=spec, created_at=0, updated_at=0)


def backtester(
    history: SQLiteHistory, tags: dict[str, dict[str, str]] | None = None
) -> ConditionBacktester:
    known = TagDirectory()
    for device_name, device_tags in (tags or {}).items():
        known.change_device((PK, device_name), device_tags)
    return ConditionBacktester(
        history,
        tags=known,
        devices_of=lambda pk: [(PK, "bed-1"), (PK, "bed-2")] if pk == PK else [],
    )


def changes(found: ConditionBacktest) -> list[tuple[int, str, str, str]]:
    return [(c.at - T0, c.change, c.device_name, c.severity) for c in found.condition.changes]


async def test_a_simple_condition_raises_once_per_stretch_and_the_clear_clears(
    history: SQLiteHistory,
) -> None:
    await record(
        history,
        spo2(0, 97),
        spo2(10 * S, 90),
        spo2(20 * S, 89),  # (still holding: no new raise)
        spo2(30 * S, 96),
        spo2(40 * S, 91),
        spo2(45 * S, 99, BED_2),
    )
    spec = condition(clear={"predicates": [{"property": "SpO2", "op": ">=", "value": 95}]})
    found = await backtester(history).run(spec, T0, T0 + 60 * S)
    assert found.complete and (found.uplinks, found.values) == (6, 6)
    assert changes(found) == [
        (10 * S, "raised", "bed-1", "major"),
        (30 * S, "cleared", "bed-1", "major"),
        (40 * S, "raised", "bed-1", "major"),
    ]
    tally = found.condition
    assert (tally.heard, tally.raised, tally.repeated, tally.cleared) == (6, 2, 0, 1)
    assert tally.open_at_end == 1 and tally.type == "LowSpO2"
    raised = tally.changes[0]
    assert raised.details["condition"] == 7 and raised.details["kind"] == "simple"
    assert raised.details["checks"] == [
        {"property": "SpO2", "value": 90, "op": "<", "threshold": 92, "thresholdFrom": "value"}
    ]
    assert "alarms open at the range's start are not read" in found.notes[0]


async def test_a_duration_raises_at_its_holds_recorded_end(history: SQLiteHistory) -> None:
    await record(history, spo2(0, 97), spo2(10 * S, 90), spo2(40 * S, 89), spo2(100 * S, 88))
    spec = condition(create=[{"severity": "major", **low(92, kind="duration", forMs=60 * S)}])
    found = await backtester(history).run(spec, T0, T0 + 200 * S)
    (raised,) = found.condition.changes
    # (between two posts: on the recorded clock, with the value as it was then)
    assert (raised.at, raised.change) == (T0 + 70 * S, "raised")
    assert raised.details["heldSince"] == T0 + 10 * S and raised.details["forMs"] == 60 * S
    assert raised.details["checks"][0]["value"] == 89
    assert (found.condition.timers_started, found.condition.timers_cancelled) == (1, 0)


async def test_a_value_breaking_a_duration_prevents_it(history: SQLiteHistory) -> None:
    await record(history, spo2(10 * S, 90), spo2(50 * S, 97), spo2(100 * S, 90))
    spec = condition(create=[{"severity": "major", **low(92, kind="duration", forMs=60 * S)}])
    found = await backtester(history).run(spec, T0, T0 + 200 * S)
    assert changes(found) == [(160 * S, "raised", "bed-1", "major")]  # (not at 70 s)
    assert (found.condition.timers_started, found.condition.timers_cancelled) == (2, 1)
    shorter = await backtester(history).run(spec, T0, T0 + 150 * S)
    assert shorter.condition.changes == [] and shorter.condition.open_at_end == 0


async def test_a_duration_under_way_at_the_start_goes_on_from_before_it(
    history: SQLiteHistory,
) -> None:
    await record(history, spo2(0, 90), spo2(30 * S, 89))
    spec = condition(create=[{"severity": "major", **low(92, kind="duration", forMs=60 * S)}])
    found = await backtester(history).run(spec, T0 + 20 * S, T0 + 90 * S)
    (raised,) = found.condition.changes
    assert raised.at == T0 + 60 * S and raised.details["heldSince"] == T0


async def test_a_duration_complete_before_the_start_leaves_its_alarm_open_uncounted(
    history: SQLiteHistory,
) -> None:
    await record(history, spo2(0, 90), spo2(10 * S, 89), spo2(70 * S, 97))
    spec = condition(
        create=[{"severity": "major", **low(92, kind="duration", forMs=30 * S)}],
        clear={"predicates": [{"property": "SpO2", "op": ">=", "value": 95}]},
    )
    found = await backtester(history).run(spec, T0 + 60 * S, T0 + 90 * S)
    # (raised at 40 s, before the range: not reported, but open for the clear in it)
    assert changes(found) == [(70 * S, "cleared", "bed-1", "major")]
    assert (found.condition.raised, found.condition.open_at_end) == (0, 0)


async def test_a_repeating_condition_raises_on_the_nth_value_in_a_row(
    history: SQLiteHistory,
) -> None:
    await record(
        history,
        spo2(0, 90),
        spo2(1 * S, 90),
        spo2(2 * S, 97),  # broken: the count starts again
        *(spo2(at * S, 91) for at in (3, 4, 5, 6)),
    )
    spec = condition(create=[{"severity": "minor", **low(92, kind="repeating", count=3)}])
    found = await backtester(history).run(spec, T0, T0 + 10 * S)
    assert changes(found) == [(5 * S, "raised", "bed-1", "minor")]
    assert found.condition.changes[0].details["count"] == 3


async def test_a_more_severe_raise_upgrades_the_open_alarm_and_a_lesser_one_repeats(
    history: SQLiteHistory,
) -> None:
    await record(
        history,
        spo2(0, 90),
        spo2(10 * S, 80),
        spo2(20 * S, 93),  # (breaks the major's run)
        spo2(30 * S, 91),
        spo2(40 * S, 90),
        spo2(50 * S, 96),
    )
    spec = condition(
        create=[
            {"severity": "major", **low(92, kind="repeating", count=2)},
            {"severity": "critical", **low(85)},
        ],
        clear={"predicates": [{"property": "SpO2", "op": ">=", "value": 95}]},
    )
    found = await backtester(history).run(spec, T0, T0 + 60 * S)
    assert changes(found) == [
        (10 * S, "raised", "bed-1", "critical"),  # (80 is both: the most severe raises)
        (40 * S, "repeated", "bed-1", "major"),  # (major's second in a row: never lowers)
        (50 * S, "cleared", "bed-1", "critical"),
    ]
    upgrade = condition(
        create=[{"severity": "major", **low(92)}, {"severity": "critical", **low(85)}]
    )
    await record(history, spo2(50 * S, 90, BED_2), spo2(55 * S, 80, BED_2))
    found = await backtester(history).run(upgrade, T0 + 50 * S, T0 + 60 * S)
    assert changes(found) == [
        (50 * S, "raised", "bed-2", "major"),
        (55 * S, "upgraded", "bed-2", "critical"),
    ]
    assert found.condition.changes[1].previous == "major"
    assert (found.condition.upgraded, found.condition.repeated) == (1, 0)


async def test_a_tag_threshold_is_read_as_it_is_now_and_said(history: SQLiteHistory) -> None:
    await record(history, spo2(0, 93), spo2(0, 93, BED_2))
    spec = condition(
        create=[
            {
                "severity": "major",
                "predicates": [{"property": "SpO2", "op": "<", "tag": "spo2_min", "value": 92}],
            }
        ]
    )
    tags = {"bed-2": {"spo2_min": "94"}}
    found = await backtester(history, tags).run(spec, T0, T0 + S)
    assert changes(found) == [(0, "raised", "bed-2", "major")]
    assert found.condition.changes[0].details["checks"][0]["thresholdFrom"] == (
        "device tag spo2_min"
    )
    assert any("as they are now" in note for note in found.notes)


async def test_two_versions_compared(history: SQLiteHistory) -> None:
    await record(
        history, spo2(0, 90), spo2(10 * S, 97), spo2(20 * S, 85), spo2(30 * S, 97), spo2(40 * S, 91)
    )
    clear = {"predicates": [{"property": "SpO2", "op": ">=", "value": 95}]}
    old = condition(clear=clear)
    new = condition(create=[{"severity": "major", **low(88)}], clear=clear)
    found = await backtester(history).run(new, T0, T0 + 60 * S, against=old)
    assert found.against is not None
    assert (found.condition.raised, found.against.raised) == (1, 3)
    assert found.counts == {"onlyCondition": 0, "onlyAgainst": 3, "same": 2}
    assert [(c.at - T0, c.change) for c in found.only_against] == [
        (0, "raised"),
        (10 * S, "cleared"),
        (40 * S, "raised"),
    ]
    assert found.only_condition == []


async def test_a_backtest_past_its_bound_stops_and_says_where(history: SQLiteHistory) -> None:
    await record(history, *(spo2(at * S, 90 + at % 2 * 7) for at in range(10)))
    found = await backtester(history).run(condition(), T0, T0 + 60 * S, max_values=4)
    # (checked after each chunk of the replay: here the one chunk)
    assert not found.complete and found.stopped_at == T0 + 9 * S + 1
    assert found.end == found.stopped_at and found.values == 10


async def test_a_bad_range_is_refused(history: SQLiteHistory) -> None:
    with pytest.raises(HistoryProblem, match="is not before"):
        await backtester(history).run(condition(), T0, T0)
    with pytest.raises(HistoryProblem, match="limit 0"):
        await backtester(history).run(condition(), T0, T0 + S, limit=0)
