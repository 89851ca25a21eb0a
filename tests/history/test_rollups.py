"""The planning of rollup passes on the event loop (``rollups.Rollups``): which minutes, hours
and days a pass recomputes, and what a failed one owes back. The stores' tests check that the
rollups they make are what the points make."""

from __future__ import annotations

import asyncio
from typing import Any

from hongshan.store.history.ingest import Ingest, Loaded, Series, Statements
from hongshan.store.history.rollups import (
    HOUR,
    MINUTE,
    Pass,
    Rollups,
    TownDays,
    hours_of,
    key_runs,
    minute_key,
)

T0 = 1_764_547_200_000  # 2025-12-01 00:00 UTC


def plans() -> tuple[Rollups, list[Pass]]:
    made: list[Pass] = []

    def parts(plan: Pass, days: TownDays) -> Any:
        made.append(plan)
        return plan

    return Rollups({}, TownDays("UTC"), parts), made


def add(rollups: Rollups, series_id: int, start: int, minutes: int) -> None:
    rollups.dirty.update(minute_key(series_id, start + n * MINUTE) for n in range(minutes))


def test_runs_of_keys_break_at_gaps_and_between_series() -> None:
    keys = {minute_key(1, T0 + n * MINUTE) for n in (0, 1, 2, 5, 6)} | {minute_key(2, T0)}
    assert key_runs(keys) == [
        (1, T0, T0 + 3 * MINUTE),
        (1, T0 + 5 * MINUTE, T0 + 7 * MINUTE),
        (2, T0, T0 + MINUTE),
    ]
    hours = hours_of(minute_key(1, T0 + n * MINUTE) for n in (0, 59, 60, 180))
    assert key_runs(hours, 60) == [(1, T0, T0 + 2 * HOUR), (1, T0 + 3 * HOUR, T0 + 4 * HOUR)]
    assert key_runs(set()) == []


def test_a_backlog_pass_makes_the_hours_its_series_have_moved_past() -> None:
    rollups, made = plans()
    add(rollups, 1, T0, 90)  # an hour and a half
    add(rollups, 2, T0, 30)  # half an hour: still filling
    rollups.take_pass(backlog=True)
    first = made[-1]
    assert first.hours == {minute_key(1, T0)} and first.days == set()
    assert first.marks == {} and first.number is None
    add(rollups, 2, T0 + 30 * MINUTE, 40)  # series 2 moves on to its second hour
    rollups.take_pass(backlog=True)
    assert made[-1].hours == {minute_key(2, T0)}
    add(rollups, 1, T0 + 90 * MINUTE, 5)
    rollups.take_pass()  # the full pass: the held hours, and every day
    full = made[-1]
    assert full.hours == {minute_key(1, T0 + HOUR), minute_key(2, T0 + HOUR)}
    assert full.days == hours_of(minute_key(s, T0 + h * HOUR) for s in (1, 2) for h in (0, 1))
    assert full.marks == {1: T0 + 94 * MINUTE, 2: T0 + 69 * MINUTE}
    assert not rollups.unrolled and not rollups.dirty


def test_a_late_value_makes_its_hour_owed_again() -> None:
    rollups, made = plans()
    add(rollups, 1, T0, 70)
    rollups.take_pass(backlog=True)
    add(rollups, 1, T0 + 5 * MINUTE, 1)  # late: into the hour made
    rollups.take_pass(backlog=True)
    assert made[-1].hours == {minute_key(1, T0)}  # (its latest hour is still held)
    assert made[-1].minutes == [(1, T0 + 5 * MINUTE, T0 + 6 * MINUTE)]


def test_what_a_failed_pass_took_on_is_owed_to_the_next() -> None:
    rollups, made = plans()
    add(rollups, 1, T0, 70)
    rollups.take_pass(backlog=True)
    _, owed = rollups.take_pass()  # the full pass, which fails
    assert not rollups.unrolled
    rollups.owe(owed)
    rollups.take_pass()
    again = made[-1]
    assert again.minutes == []  # (the backlog pass made them)
    assert again.hours == {minute_key(1, T0 + HOUR)}
    assert again.days == hours_of(minute_key(1, T0 + h * HOUR) for h in (0, 1))
    assert again.marks == {1: T0 + 69 * MINUTE}

    rollups, made = plans()
    add(rollups, 1, T0, 70)
    _, owed = rollups.take_pass(backlog=True)  # fails
    rollups.owe(owed)
    rollups.take_pass()
    assert made[-1].minutes == [(1, T0, T0 + 70 * MINUTE)]
    assert made[-1].hours == hours_of(minute_key(1, T0 + h * HOUR) for h in (0, 1))


def test_a_value_in_a_minute_a_pass_took_owes_that_minute_again() -> None:
    """``add_points`` notes a series' minute once, not once a value: a value after a pass
    took the minute is noted again, and a series gone quiet holds nothing of the pass."""

    class Writer:
        error = None

        def execute(self, sql: str, params: Any = ()) -> None: ...

        def executemany(self, *parts: Any, outcome: Any = None) -> None: ...

        def committed(self) -> Any: ...

        async def close(self) -> None: ...

    async def main() -> None:
        history = Ingest(
            Writer(),
            Statements(*["-"] * 10),
            Loaded({}, {}, [], {}, {}),
            loop=asyncio.get_running_loop(),
            days=TownDays(),
            pass_parts=lambda plan, days: plan,
            retention=None,
        )
        lamp = ("a1Lamp", "lamp-1")
        history.add_points(lamp, [("t", T0, 1.0), ("t", T0 + 1_000, 2.0)])
        assert history._rollups.dirty == {minute_key(1, T0)}
        history._rollups.take_pass()
        history.add_points(lamp, [("t", T0 + 2_000, 3.0)])  # (the same minute)
        assert history._rollups.dirty == {minute_key(1, T0)}
        assert not any(isinstance(value, set) for value in vars_of(history._series[lamp]["t"]))
        for timer in (history._rollup, history._flush_timer):
            if timer is not None:
                timer.cancel()

    asyncio.run(main())


def vars_of(found: Series) -> list[Any]:
    return [getattr(found, name) for name in Series.__slots__]
