"""A scene's device triggers as state machines, on a fake clock: crossings, holds, changes and
silences, against a plain reference where hypothesis helps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hongshan.rules.scene_triggers import Changed, Next, Silence, Threshold


def test_a_crossing_fires_once_not_on_every_value_past_it() -> None:
    threshold = Threshold(0)
    assert threshold.observe(False, 1) is Next.KEEP
    assert threshold.observe(True, 2) is Next.FIRE
    assert threshold.observe(True, 3) is Next.KEEP
    assert threshold.observe(False, 4) is Next.KEEP
    assert threshold.observe(True, 5) is Next.FIRE


def test_a_hold_fires_when_it_has_held_and_a_breaking_value_resets_it() -> None:
    threshold = Threshold(1000)
    assert threshold.observe(True, 0) is Next.WAIT
    assert threshold.due == 1000
    assert threshold.observe(True, 500) is Next.KEEP  # (the wait goes on from 0)
    assert not threshold.expire(999)
    assert threshold.observe(False, 800) is Next.CANCEL
    assert threshold.due is None and not threshold.expire(1000)
    assert threshold.observe(True, 900) is Next.WAIT
    assert threshold.expire(1900)
    assert not threshold.expire(5000)  # once
    assert threshold.observe(True, 6000) is Next.KEEP


@given(st.lists(st.tuples(st.integers(0, 3000), st.booleans()), max_size=40), st.integers(0, 2000))
def test_a_hold_fires_exactly_where_a_reference_says(
    steps: list[tuple[int, bool]], hold: int
) -> None:
    """Values at increasing times, the timer run before each value as a loop would: a fire
    at every stretch of holding values that lasted ``hold`` before a breaking one."""
    threshold = Threshold(hold)
    fires: list[int] = []
    now = 0
    timeline: list[tuple[int, bool]] = []
    for gap, holds in steps:
        now += gap
        due = threshold.due
        if due is not None and due <= now:
            assert threshold.expire(due)
            fires.append(due)
        timeline.append((now, holds))
        if threshold.observe(holds, now) is Next.FIRE:
            fires.append(now)
    due = threshold.due
    if due is not None:
        assert threshold.expire(due)
        fires.append(due)
    expected = []
    start = None
    for at, holds in [*timeline, (10**9, False)]:
        if holds and start is None:
            start = at
        elif not holds and start is not None:
            if start + hold <= at or at == 10**9:
                expected.append(start + hold)
            start = None
    assert fires == expected


@pytest.mark.parametrize(
    ("history", "hold", "since", "due"),
    [
        ([], 1000, None, None),  # nothing heard
        ([(0, False), (500, True), (700, True)], 1000, 500, 1500),  # under way: 1500
        ([(0, True), (200, False), (300, True)], 1000, 300, 1300),  # broken, then again
        ([(0, True), (1200, True)], 1000, 0, None),  # complete while running: fired then
        ([(0, True)], 0, 0, None),  # a crossing seen before: not again
        ([(0, True), (900, False)], 1000, None, None),
    ],
)
def test_a_hold_resumes_from_the_values_heard_before_a_restart(
    history: list[tuple[int, bool]], hold: int, since: int | None, due: int | None
) -> None:
    threshold = Threshold(hold)
    threshold.resume(history)
    assert (threshold.since, threshold.due) == (since, due)


def test_a_change_is_a_value_other_than_the_last() -> None:
    changed = Changed()
    assert not changed.observe(1)  # the first one heard
    assert not changed.observe(1)
    assert changed.observe(2)
    assert Changed(last=5).observe(6)


def test_a_silence_fires_once_and_rearms_on_what_is_heard_next() -> None:
    silence = Silence(1000, heard=0)
    assert silence.due == 1000
    assert silence.observe(400) == 1400
    assert not silence.expire(1000)
    assert silence.expire(1400)
    assert silence.due is None and not silence.expire(9000)
    assert silence.observe(9000) == 10_000
    assert silence.observe(100) == 10_000  # (a late value does not shorten it)
