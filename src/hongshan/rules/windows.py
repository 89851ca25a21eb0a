"""Time windows: a scene's condition that holds at some hours of some days, in the town's zone.

``TimeWindow.parse`` reads a time range, then optionally the weekdays and the dates it opens
on, separated by spaces::

    08:00-18:00                     every day
    22:00-06:00 MON-FRI             from 22:00 on a weekday to 06:00 the next morning
    18:30-23:00 SAT,SUN 2026-10-01  at weekends and on the first of October
    00:00-24:00 2026-10-01,2026-10-02

Times are ``HH:MM`` or ``HH:MM:SS``, the start included and the end not; ``24:00`` ends a day.
An end before the start crosses midnight, and the window belongs to the day it opens on: ``22:00-
06:00 FRI`` holds from Friday 22:00 to Saturday 06:00, not on Friday morning. Weekdays are
written as in a cron schedule (``MON-FRI``, ``1-5``, ``SAT,SUN``); dates as ``YYYY-MM-DD``,
joined by commas. A window opens on a day whose weekday or date is listed, every day when
neither is. Anything else is a ``ScheduleError`` (HTTP 400) naming ``time``, ``day of week``
or ``dates``.

The window opens at the first instant the town's clock shows its start (or a later time) and
closes at the first instant it shows its end, as a cron appointment fires: on the night the
clock springs forward a window inside the skipped hour does not open, and one that ends in it
closes at the gap's end; on the night it falls back a window that opened on the first pass of
the repeated hour stays open through the second, and one that closed on the first stays shut.

``holds(t, zone)`` says whether it holds at ``t`` (ms), ``next_change_after(t, zone)`` when
it next opens or closes (None: never, as for ``00:00-24:00`` every day).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator

from hongshan.rules.cron import WEEKDAY, ScheduleError, first_instant, parse_field

_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY = 86_400
_EVERY_DAY = frozenset(range(7))
_DAYS_SEARCHED = 400


@dataclasses.dataclass(frozen=True, slots=True)
class TimeWindow:
    """Hours of some days: ``start`` and ``end`` are seconds of the day (``end`` up to 86,400,
    at or before ``start``: the next day's), ``weekdays`` (0 is Sunday) and ``dates`` the days
    it opens on. Build it with ``TimeWindow.parse``."""

    text: str
    start: int
    end: int
    weekdays: frozenset[int] = _EVERY_DAY
    dates: frozenset[dt.date] = frozenset()

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        """The window ``text`` says (``22:00-06:00 MON-FRI``), or ScheduleError naming the
        part that is wrong."""
        words = text.split()
        if not words:
            raise ScheduleError("time", "no time range, such as 22:00-06:00")
        start_text, dash, end_text = words[0].partition("-")
        if not dash:
            raise ScheduleError("time", f"{words[0]!r} is no range, such as 22:00-06:00")
        start, end = _seconds(start_text, ends=False), _seconds(end_text, ends=True)
        if start == end % _DAY and end != _DAY:
            raise ScheduleError("time", f"{words[0]!r} is empty: write 00:00-24:00 for all day")
        weekdays: frozenset[int] | None = None
        dates: set[dt.date] = set()
        for word in words[1:]:
            if _DATE.match(word):
                dates.update(_date(item) for item in word.split(","))
            elif weekdays is None:
                weekdays = parse_field(word, WEEKDAY)
            else:
                raise ScheduleError("day of week", f"{word!r}: the weekdays are given once")
        if weekdays is None:
            weekdays = frozenset() if dates else _EVERY_DAY
        return cls(" ".join(words), start, end, weekdays, frozenset(dates))

    def opens_on(self, day: dt.date) -> bool:
        """Whether the window opens on ``day`` (its weekday or its date is listed)."""
        return day.isoweekday() % 7 in self.weekdays or day in self.dates

    def holds(self, instant: int, zone: dt.tzinfo) -> bool:
        """Whether the window holds at ``instant`` (ms), in ``zone``."""
        today = _local_date(instant, zone)
        return any(
            opens <= instant < closes
            for opens, closes in self._intervals(today - dt.timedelta(days=2), zone, days=4)
        )

    def next_change_after(self, instant: int, zone: dt.tzinfo) -> int | None:
        """The first instant (ms) after ``instant`` at which the window opens or closes; None
        when it never will (within 400 days past its last date)."""
        if self.start == 0 and self.end == _DAY and self.weekdays == _EVERY_DAY:
            return None
        first = _local_date(instant, zone) - dt.timedelta(days=2)
        days = _DAYS_SEARCHED + max(((d - first).days for d in self.dates), default=0)
        run: tuple[int, int] | None = None  # abutting intervals, one opening to one closing
        for opens, closes in self._intervals(first, zone, days):
            if run is not None and opens <= run[1]:
                run = (run[0], max(run[1], closes))
                continue
            if run is not None and run[1] > instant:
                break
            run = (opens, closes)
        if run is None or run[1] <= instant:
            return None
        return run[1] if run[0] <= instant else run[0]

    def _intervals(self, first: dt.date, zone: dt.tzinfo, days: int) -> Iterator[tuple[int, int]]:
        for number in range(days):
            day = first + dt.timedelta(days=number)
            if not self.opens_on(day):
                continue
            midnight = dt.datetime.combine(day, dt.time())  # a wall time: naive on purpose
            end = self.end if self.end > self.start else self.end + _DAY
            opens = first_instant(midnight + dt.timedelta(seconds=self.start), zone)
            closes = first_instant(midnight + dt.timedelta(seconds=end), zone)
            if opens < closes:  # (empty when both fall in a skipped hour)
                yield opens, closes


def _seconds(text: str, ends: bool) -> int:
    match = _TIME.fullmatch(text)
    if match is None:
        raise ScheduleError("time", f"{text!r} is no time such as 06:00 or 06:00:30")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if (hours, minutes, seconds) == (24, 0, 0) and ends:
        return _DAY
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ScheduleError("time", f"{text!r} is no time of day")
    return hours * 3600 + minutes * 60 + seconds


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ScheduleError("dates", f"{text!r} is no date such as 2026-10-01") from None


def _local_date(instant: int, zone: dt.tzinfo) -> dt.date:
    return dt.datetime.fromtimestamp(instant / 1000, zone).date()
