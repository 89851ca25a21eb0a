"""Cron schedules: crontab(5)'s examples and rules, the DST nights of Berlin and New York, and
a brute force over minutes that no fire is invented or skipped."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hongshan.rules.cron import Cron, ScheduleError

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def ms(text: str) -> int:
    """An instant written with its offset, as ISO 8601."""
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def iso(instant: int, zone: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(instant / 1000, zone).isoformat()


def fires(text: str, start: str, hours: float, zone: dt.tzinfo) -> list[str]:
    begin = ms(start)
    found = Cron.parse(text).fires_between(begin, begin + int(hours * 3_600_000), zone)
    return [iso(fire, zone) for fire in found]


# crontab(5)'s examples and field forms
@pytest.mark.parametrize(
    ("text", "field", "values"),
    [
        ("5 0 * * *", "minutes", {5}),
        ("0-4,8-12 * * * *", "minutes", {0, 1, 2, 3, 4, 8, 9, 10, 11, 12}),
        ("1,2,5,9 * * * *", "minutes", {1, 2, 5, 9}),
        ("23 0-23/2 * * *", "hours", set(range(0, 24, 2))),
        ("*/15 * * * *", "minutes", {0, 15, 30, 45}),
        ("5/20 * * * *", "minutes", {5, 25, 45}),
        ("10-40/10 * * * *", "minutes", {10, 20, 30, 40}),
        ("0 22 * * 1-5", "weekdays", {1, 2, 3, 4, 5}),
        ("0 22 * * MON-FRI", "weekdays", {1, 2, 3, 4, 5}),
        ("5 4 * * sun", "weekdays", {0}),
        ("5 4 * * 7", "weekdays", {0}),
        ("0 0 * * SAT-SUN", "weekdays", {6, 0}),
        ("0 0 * * 5-7", "weekdays", {5, 6, 0}),
        ("0 0 1 JAN,jul *", "months", {1, 7}),
        ("0 0 1 */3 *", "months", {1, 4, 7, 10}),
        ("0 30 18 * * *", "seconds", {0}),
        ("*/10 30 18 * * *", "seconds", {0, 10, 20, 30, 40, 50}),
        ("0 0 ? * MON", "weekdays", {1}),
    ],
)
def test_fields(text: str, field: str, values: set[int]) -> None:
    assert getattr(Cron.parse(text), field) == values


@pytest.mark.parametrize(
    ("shorthand", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_shorthands(shorthand: str, same_as: str) -> None:
    assert Cron.parse(shorthand) == dataclasses.replace(Cron.parse(same_as), text=shorthand)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("60 * * * *", "minute", "60 is out of 0-59"),
        ("* 24 * * *", "hour", "24 is out of 0-23"),
        ("* * 0 * *", "day of month", "0 is out of 1-31"),
        ("* * * 13 *", "month", "13 is out of 1-12"),
        ("* * * * 8", "day of week", "8 is out of 0-7"),
        ("* * * FOO *", "month", "'FOO' is not a number or a name"),
        ("*/0 * * * *", "minute", "step"),
        ("5-1 * * * *", "minute", "runs backwards"),
        ("1,,2 * * * *", "minute", "empty item"),
        ("? * * * *", "minute", "? is only for the day"),
        ("0 0 L * *", "day of month", "Quartz's L, W and #"),
        ("0 0 15W * *", "day of month", "Quartz's L, W and #"),
        ("0 0 * * 5#3", "day of week", "Quartz's L, W and #"),
        ("0 0 30 2 *", "day of month", "never fires"),
        ("* * * *", "schedule", "4 fields"),
        ("0 0 0 1 1 * 2030", "schedule", "7 fields"),
        ("@reboot", "schedule", "none of"),
    ],
)
def test_errors_name_the_field(text: str, field: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Cron.parse(text)
    assert caught.value.field == field
    assert says in str(caught.value)
    assert caught.value.http_status == 400
    assert str(caught.value).startswith(f"{field}: ")


def test_feb_30_with_a_weekday_fires_on_the_weekday() -> None:
    # both day fields restricted: either matches, so the impossible date is no obstacle
    assert fires("0 0 30 2 MON", "2026-02-01T00:00:00+08:00", 24 * 14, SHANGHAI) == [
        "2026-02-02T00:00:00+08:00",
        "2026-02-09T00:00:00+08:00",
    ]


def test_day_of_month_or_day_of_week() -> None:
    # crontab(5): "30 4 1,15 * 5" runs at 4:30 on the 1st and 15th of each month, plus every
    # Friday. May 2026: Fridays 1, 8, 15, 22, 29.
    days = [f[:10] for f in fires("30 4 1,15 * 5", "2026-05-01T00:00:00+08:00", 31 * 24, SHANGHAI)]
    assert days == ["2026-05-01", "2026-05-08", "2026-05-15", "2026-05-22", "2026-05-29"]
    june = [f[8:10] for f in fires("30 4 1,15 * 5", "2026-06-01T00:00:00+08:00", 30 * 24, SHANGHAI)]
    assert june == ["01", "05", "12", "15", "19", "26"]


def test_a_star_day_field_makes_both_required() -> None:
    # "*/2" starts with "*": Vixie cron counts it unrestricted, so the days must match both
    june = [f[8:10] for f in fires("0 0 */2 * MON", "2026-06-01T00:00:00+08:00", 30 * 24, SHANGHAI)]
    assert june == ["01", "15", "29"]  # the odd-numbered Mondays


def test_next_after_in_shanghai() -> None:
    lamp = Cron.parse("0 30 18 * * MON-FRI")
    friday_evening = ms("2026-12-04T18:30:00+08:00")
    assert iso(lamp.next_after(friday_evening - 1, SHANGHAI) or 0, SHANGHAI) == (
        "2026-12-04T18:30:00+08:00"
    )
    assert iso(lamp.next_after(friday_evening, SHANGHAI) or 0, SHANGHAI) == (
        "2026-12-07T18:30:00+08:00"
    )
    leap = Cron.parse("0 12 29 2 *")
    assert iso(leap.next_after(ms("2026-03-01T00:00:00+08:00"), SHANGHAI) or 0, SHANGHAI) == (
        "2028-02-29T12:00:00+08:00"
    )
    assert Cron.parse("@yearly").next_after(ms("9999-06-01T00:00:00+00:00"), SHANGHAI) is None


def test_seconds_field() -> None:
    assert fires("*/20 0 9 * * *", "2026-12-07T09:00:00+08:00", 1, SHANGHAI) == [
        "2026-12-07T09:00:00+08:00",
        "2026-12-07T09:00:20+08:00",
        "2026-12-07T09:00:40+08:00",
    ]


# Daylight saving time: Berlin springs forward at 02:00 -> 03:00 on 2026-03-29 and falls back
# at 03:00 -> 02:00 on 2026-10-25; New York at 02:00 on 2026-03-08 and 2026-11-01.
@pytest.mark.parametrize(
    ("text", "start", "zone", "expected"),
    [
        # an appointment in the skipped hour: once, at the first instant after the gap
        ("30 2 * * *", "2026-03-29T00:00:00+01:00", BERLIN, ["2026-03-29T03:00:00+02:00"]),
        ("0,30 2 * * *", "2026-03-29T00:00:00+01:00", BERLIN, ["2026-03-29T03:00:00+02:00"]),
        (
            "0 2,3 * * *",
            "2026-03-29T00:00:00+01:00",
            BERLIN,
            ["2026-03-29T03:00:00+02:00"],
        ),
        ("30 2 * * *", "2026-03-08T00:00:00-05:00", NEW_YORK, ["2026-03-08T03:00:00-04:00"]),
        # an appointment in the repeated hour: once, at the first
        ("30 2 * * *", "2026-10-25T00:00:00+02:00", BERLIN, ["2026-10-25T02:30:00+02:00"]),
        ("30 1 * * *", "2026-11-01T00:00:00-04:00", NEW_YORK, ["2026-11-01T01:30:00-04:00"]),
        # a rhythm: skipped wall times do not fire, repeated ones fire on both passes
        (
            "0 * * * *",
            "2026-03-29T00:30:00+01:00",
            BERLIN,
            [
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
                "2026-03-29T05:00:00+02:00",  # (4 hours, of which the clock skipped one)
            ],
        ),
        (
            "30 * * * *",
            "2026-10-25T01:00:00+02:00",
            BERLIN,
            [
                "2026-10-25T01:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00",
                "2026-10-25T03:30:00+01:00",
            ],
        ),
        (
            "*/30 1 * * *",
            "2026-11-01T00:00:00-04:00",
            NEW_YORK,
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
            ],
        ),
    ],
)
def test_daylight_saving(text: str, start: str, zone: dt.tzinfo, expected: list[str]) -> None:
    assert fires(text, start, 4, zone) == expected


def test_a_chain_of_next_after_is_fires_between() -> None:
    cron = Cron.parse("*/20 1-3 * * *")
    start, end = ms("2026-10-24T00:00:00+02:00"), ms("2026-10-27T00:00:00+01:00")
    chain: list[int] = []
    t = start - 1
    while (t := cron.next_after(t, BERLIN) or end) < end:
        chain.append(t)
    assert chain == list(cron.fires_between(start, end, BERLIN))
    assert len(chain) == 9 + 12 + 9  # the autumn day repeats the hour from 2 to 3


# The brute force: minute by minute, what the module docstring says
def brute_force(
    minutes: set[int],
    hours: set[int],
    days: set[int] | None,
    weekdays: set[int] | None,
    on_the_clock: bool,
    start: int,
    end: int,
    zone: dt.tzinfo,
) -> list[int]:
    def matches(wall: dt.datetime) -> bool:
        by_date = days is None or wall.day in days
        by_weekday = weekdays is None or wall.isoweekday() % 7 in weekdays
        on_day = (
            by_date or by_weekday
            if days is not None and weekdays is not None
            else (by_date and by_weekday)
        )
        return on_day and wall.hour in hours and wall.minute in minutes

    found = []
    highest: dt.datetime | None = None  # the latest wall time the clock has shown
    for instant in range(start - 3 * 3_600_000, end, 60_000):
        wall = dt.datetime.fromtimestamp(instant / 1000, zone).replace(tzinfo=None, fold=0)
        if on_the_clock:
            # fires when the clock first shows a matching wall time or a later one
            since = highest + dt.timedelta(minutes=1) if highest else wall
            fired = highest is None or wall > highest
            fired = fired and any(
                matches(since + dt.timedelta(minutes=k))
                for k in range(int((wall - since).total_seconds()) // 60 + 1)
            )
            highest = wall if highest is None else max(highest, wall)
        else:
            fired = matches(wall)
        if fired and instant >= start:
            found.append(instant)
    return found


def _set(draw: st.DrawFn, low: int, high: int) -> set[int]:
    return set(draw(st.lists(st.integers(low, high), min_size=1, max_size=4)))


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    minutes = _set(draw, 0, 59) if draw(st.booleans()) else set(range(60))
    hour_star = draw(st.booleans())
    hours = set(range(24)) if hour_star else _set(draw, 0, 23)
    if draw(st.booleans()):  # the hours the clock skips or repeats, in Berlin and New York
        hours |= {1, 2}
    days = _set(draw, 1, 31) if draw(st.integers(0, 3)) == 0 else None
    weekdays = _set(draw, 0, 6) if draw(st.integers(0, 3)) == 0 else None
    minute_text = "*" if len(minutes) == 60 else ",".join(map(str, sorted(minutes)))
    text = " ".join(
        [
            minute_text,
            "*" if hour_star else ",".join(map(str, sorted(hours))),
            "*" if days is None else ",".join(map(str, sorted(days))),
            "*",
            "*" if weekdays is None else ",".join(map(str, sorted(weekdays))),
        ]
    )
    on_the_clock = minute_text != "*" and not hour_star
    facts = {"minutes": minutes, "hours": hours, "days": days, "weekdays": weekdays}
    return text, {**facts, "on_the_clock": on_the_clock}


NIGHTS = [
    ("2026-03-28T12:00:00+01:00", BERLIN),
    ("2026-10-24T12:00:00+02:00", BERLIN),
    ("2026-03-07T12:00:00-05:00", NEW_YORK),
    ("2026-10-31T12:00:00-04:00", NEW_YORK),
    ("2026-06-30T12:00:00+08:00", SHANGHAI),
]


@settings(max_examples=100, deadline=None)
@given(
    schedules(),
    st.sampled_from(NIGHTS),
    st.integers(0, 12 * 60),
)
def test_against_brute_force(
    schedule: tuple[str, dict[str, object]], night: tuple[str, dt.tzinfo], shift: int
) -> None:
    text, facts = schedule
    cron = Cron.parse(text)
    start = ms(night[0]) + shift * 60_000
    end = start + 48 * 3_600_000
    zone = night[1]
    expected = brute_force(**facts, start=start, end=end, zone=zone)  # type: ignore[arg-type]
    assert list(cron.fires_between(start, end, zone)) == expected
    # next_after: strictly after, a fire, and none skipped between two answers
    answers = []
    t = start - 1
    while (t := cron.next_after(t, zone) or end) < end:
        answers.append(t)
    assert answers == expected
    assert all(a < b for a, b in itertools.pairwise(answers))
