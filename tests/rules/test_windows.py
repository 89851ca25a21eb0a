"""Time windows: their text, windows across midnight, weekdays and dates, the DST nights, and
a minute-by-minute check that the next change is the next change."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hongshan.rules.cron import ScheduleError
from hongshan.rules.windows import TimeWindow

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def iso(instant: int | None, zone: dt.tzinfo) -> str | None:
    return None if instant is None else dt.datetime.fromtimestamp(instant / 1000, zone).isoformat()


@pytest.mark.parametrize(
    ("text", "start", "end", "weekdays", "dates"),
    [
        ("08:00-18:00", 8 * 3600, 18 * 3600, set(range(7)), set()),
        ("22:00-06:00 MON-FRI", 22 * 3600, 6 * 3600, {1, 2, 3, 4, 5}, set()),
        ("00:00-24:00 2026-10-01,2026-10-02", 0, 86400, set(), {"2026-10-01", "2026-10-02"}),
        ("18:30:15-23:00 SAT,SUN 2026-10-01", 66615, 23 * 3600, {6, 0}, {"2026-10-01"}),
    ],
)
def test_parse(text: str, start: int, end: int, weekdays: set[int], dates: set[str]) -> None:
    window = TimeWindow.parse(text)
    assert (window.start, window.end, window.weekdays) == (start, end, weekdays)
    assert window.dates == {dt.date.fromisoformat(d) for d in dates}


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("", "time", "no time range"),
        ("08:00", "time", "no range"),
        ("8h-18h", "time", "no time such as"),
        ("08:00-24:30", "time", "no time of day"),
        ("24:00-08:00", "time", "no time of day"),
        ("08:00-08:00", "time", "is empty"),
        ("08:00-18:00 MON-FRI SAT", "day of week", "given once"),
        ("08:00-18:00 FUNDAY", "day of week", "not a number or a name"),
        ("08:00-18:00 2026-02-30", "dates", "no date"),
    ],
)
def test_parse_errors(text: str, field: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        TimeWindow.parse(text)
    assert caught.value.field == field
    assert says in str(caught.value)


@pytest.mark.parametrize(
    ("when", "holds"),
    [
        ("2026-12-04T21:59:59+08:00", False),  # Friday
        ("2026-12-04T22:00:00+08:00", True),
        ("2026-12-05T05:59:59+08:00", True),  # Saturday morning: opened on Friday
        ("2026-12-05T06:00:00+08:00", False),
        ("2026-12-05T23:00:00+08:00", False),  # Saturday night: not a weekday
        ("2026-12-07T03:00:00+08:00", False),  # Monday morning: Sunday opened nothing
        ("2026-12-07T23:00:00+08:00", True),
        ("2026-12-04T03:00:00+08:00", True),  # Friday morning: opened on Thursday
    ],
)
def test_across_midnight_belongs_to_the_day_it_opens(when: str, holds: bool) -> None:
    assert TimeWindow.parse("22:00-06:00 MON-FRI").holds(ms(when), SHANGHAI) is holds


def test_next_change_after() -> None:
    window = TimeWindow.parse("22:00-06:00 MON-FRI")
    friday = ms("2026-12-04T12:00:00+08:00")
    assert iso(window.next_change_after(friday, SHANGHAI), SHANGHAI) == (
        "2026-12-04T22:00:00+08:00"
    )
    opened = ms("2026-12-04T22:00:00+08:00")
    assert iso(window.next_change_after(opened, SHANGHAI), SHANGHAI) == (
        "2026-12-05T06:00:00+08:00"
    )
    saturday = ms("2026-12-05T06:00:00+08:00")
    assert iso(window.next_change_after(saturday, SHANGHAI), SHANGHAI) == (
        "2026-12-07T22:00:00+08:00"
    )


def test_whole_days_run_together() -> None:
    weekdays = TimeWindow.parse("00:00-24:00 MON-FRI")
    monday = ms("2026-12-07T09:00:00+08:00")
    assert weekdays.holds(monday, SHANGHAI)
    assert iso(weekdays.next_change_after(monday, SHANGHAI), SHANGHAI) == (
        "2026-12-12T00:00:00+08:00"
    )
    always = TimeWindow.parse("00:00-24:00")
    assert always.holds(monday, SHANGHAI)
    assert always.next_change_after(monday, SHANGHAI) is None


def test_dates() -> None:
    holidays = TimeWindow.parse("18:00-23:00 2026-10-01,2026-10-02")
    assert holidays.holds(ms("2026-10-02T19:00:00+08:00"), SHANGHAI)
    assert not holidays.holds(ms("2026-10-03T19:00:00+08:00"), SHANGHAI)
    assert iso(holidays.next_change_after(ms("2026-09-01T00:00:00+08:00"), SHANGHAI), SHANGHAI) == (
        "2026-10-01T18:00:00+08:00"
    )
    assert holidays.next_change_after(ms("2026-10-02T23:00:00+08:00"), SHANGHAI) is None


# Berlin springs forward at 02:00 -> 03:00 on 2026-03-29 and falls back 03:00 -> 02:00 on
# 2026-10-25
def test_a_window_in_the_skipped_hour_does_not_open() -> None:
    window = TimeWindow.parse("02:00-02:30")
    night = ms("2026-03-29T00:00:00+01:00")
    assert iso(window.next_change_after(night, BERLIN), BERLIN) == "2026-03-30T02:00:00+02:00"
    ends_in_gap = TimeWindow.parse("01:00-02:30")
    assert iso(ends_in_gap.next_change_after(night, BERLIN), BERLIN) == (
        "2026-03-29T01:00:00+01:00"
    )
    opened = ms("2026-03-29T01:00:00+01:00")
    assert iso(ends_in_gap.next_change_after(opened, BERLIN), BERLIN) == (
        "2026-03-29T03:00:00+02:00"
    )


def test_the_repeated_hour() -> None:
    # opened on the first pass: open through the second, until the clock first shows 03:00
    window = TimeWindow.parse("02:00-03:00")
    assert window.holds(ms("2026-10-25T02:30:00+01:00"), BERLIN)
    assert iso(window.next_change_after(ms("2026-10-25T02:00:00+02:00"), BERLIN), BERLIN) == (
        "2026-10-25T03:00:00+01:00"
    )
    # closed on the first pass: stays shut on the second
    early = TimeWindow.parse("01:30-02:30")
    assert early.holds(ms("2026-10-25T02:15:00+02:00"), BERLIN)
    assert not early.holds(ms("2026-10-25T02:15:00+01:00"), BERLIN)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 47).map(lambda half_hours: half_hours * 1800),
    st.integers(1, 48).map(lambda half_hours: half_hours * 1800),
    st.sets(st.integers(0, 6), min_size=1),
    st.sampled_from(
        [
            ("2026-03-28T00:00:00+01:00", BERLIN),
            ("2026-10-24T00:00:00+02:00", BERLIN),
            ("2026-06-01T00:00:00+08:00", SHANGHAI),
        ]
    ),
    st.integers(0, 3 * 24 * 60),
)
def test_next_change_is_the_first_change(
    start: int, length: int, weekdays: set[int], around: tuple[str, dt.tzinfo], minute: int
) -> None:
    end = (start + length) % 86400 or 86400
    if end == start:
        return
    text = f"{start // 3600:02}:{start % 3600 // 60:02}-{end // 3600:02}:{end % 3600 // 60:02}"
    window = TimeWindow.parse(f"{text} {','.join(map(str, sorted(weekdays)))}")
    zone = around[1]
    t = ms(around[0]) + minute * 60_000
    change = window.next_change_after(t, zone)
    before = window.holds(t, zone)
    limit = change if change is not None else t + 8 * 86_400_000
    # minute by minute: the same until the change, and different at it
    for instant in range(t + 60_000 - t % 60_000, limit, 60_000):
        assert window.holds(instant, zone) is before, (text, iso(instant, zone))
    if change is not None:
        assert change > t
        assert window.holds(change, zone) is not before
