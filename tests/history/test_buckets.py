"""Time buckets: fixed widths aligned to the zone, calendar days, weeks, months, years."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from hongshan.store.history.buckets import bucket_label, buckets, parse_every
from hongshan.store.history.model import HistoryProblem

HOUR = 3_600_000


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(
    ("every", "expected"),
    [("30s", (30, "s")), ("5m", (5, "m")), ("1h", (1, "h")), ("1mo", (1, "mo")), ("2y", (2, "y"))],
)
def test_every_is_a_count_and_a_unit(every: str, expected: tuple[int, str]) -> None:
    assert parse_every(every) == expected


@pytest.mark.parametrize("every", ["", "h", "0h", "1x", "1.5h", "-1h", "1 hour"])
def test_a_bad_every_is_refused_with_the_forms_that_work(every: str) -> None:
    with pytest.raises(HistoryProblem, match="such as 30s"):
        parse_every(every)


def test_hours_follow_the_zones_offset() -> None:
    """An hour in Asia/Kolkata (UTC+5:30) starts at :30 UTC."""
    start = ms("2026-01-01T00:00:00+00:00")
    every = buckets(start, start + 5 * HOUR, "1h", "Asia/Kolkata")
    assert every.width == HOUR
    assert every.start_of(start) == ms("2025-12-31T23:30:00+00:00")
    utc = buckets(start, start + HOUR, "1h")
    assert utc.start_of(start + 59 * 60_000) == start


def test_days_run_from_local_midnight_through_daylight_saving() -> None:
    """Berlin's 2026-03-29 has 23 hours; its buckets are still midnight to midnight."""
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    start = ms("2026-03-28T12:00:00+01:00")
    every = buckets(start, ms("2026-03-31T00:00:00+02:00"), "1d", "Europe/Berlin")
    days = [dt.datetime.fromtimestamp(b / 1000, berlin).isoformat() for b in every.bounds[:-1]]
    assert days == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
    ]
    assert every.bounds[2] - every.bounds[1] == 23 * HOUR


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    start = ms("2026-02-11T10:00:00+08:00")  # a Wednesday
    weeks = buckets(start, ms("2026-02-20T00:00:00+08:00"), "1w", "Asia/Shanghai")
    assert bucket_label(weeks.bounds[0], "Asia/Shanghai") == "2026-02-09T00:00:00.000+08:00"
    months = buckets(start, ms("2027-01-15T00:00:00+08:00"), "1mo", "Asia/Shanghai")
    labels = [bucket_label(b, "Asia/Shanghai")[:10] for b in months.bounds[:-1]]
    assert labels[0] == "2026-02-01" and labels[-1] == "2027-01-01" and len(labels) == 12
    years = buckets(start, ms("2028-06-01T00:00:00+08:00"), "1y", "Asia/Shanghai")
    assert [bucket_label(b, "Asia/Shanghai")[:4] for b in years.bounds[:-1]] == [
        "2026",
        "2027",
        "2028",
    ]


def test_ranges_and_zones_that_make_no_sense_are_refused() -> None:
    with pytest.raises(HistoryProblem, match="'to' must be after 'from'"):
        buckets(10, 10, "1h")
    with pytest.raises(HistoryProblem, match="not a time zone"):
        buckets(0, HOUR, "1h", "Mars/Olympus")
    with pytest.raises(HistoryProblem, match="more than"):
        buckets(0, 365 * 24 * HOUR, "1s")
