"""Cron schedules: when a scene's timer fires, in the town's time zone.

``Cron.parse(text)`` reads crontab(5)'s five fields, ``minute hour day-of-month month
day-of-week``, or six with seconds first as Alibaba's scene timers and Quartz write them::

    */15 * * * *            every quarter hour
    0 30 18 * * MON-FRI     18:30:00 on weekdays (six fields)
    0 22 * * SAT,SUN        22:00 at weekends
    @daily                  00:00

A field is ``*``, a number, a range ``1-5``, a list ``1,3,5``, a step ``*/15``, ``10-40/10`` or
``5/15`` (from 5 to the field's end), or a mix ``1-5,10``. Months are 1-12 or ``JAN``-``DEC``,
weekdays 0-7 or ``SUN``-``SAT`` (0 and 7 are Sunday; ``SAT-SUN`` is Saturday to Sunday), in any
case. ``?`` (Quartz) is ``*`` in the two day fields. ``@yearly`` (``@annually``),
``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and ``@hourly`` stand for ``0 0 1 1 *``,
``0 0 1 * *``, ``0 0 * * 0``, ``0 0 * * *`` and ``0 * * * *``. Quartz's ``L``, ``W``, ``#`` and
its seventh (year) field are refused, as is a schedule that can never fire (``0 0 30 2 *``).

Day of month and day of week (Vixie cron's rule, crontab(5)): when both fields are restricted
— neither starts with ``*`` or ``?`` — a day matches when *either* does: ``0 0 1,15 * MON``
fires on the 1st, the 15th and every Monday. When one starts with ``*`` (``*/2`` too), a day
must match both.

Daylight saving time (cron(8)'s rule). A schedule that names its hours and its minutes (neither
field starts with ``*``), as ``30 2 * * *``, keeps an appointment with the wall clock: it fires
at the first instant the town's clock shows that time or a later one. So a wall time the clock
skips (02:30 on the spring day in Europe/Berlin) fires once, at the first instant after the gap
(03:00 CEST), and a wall time the clock shows twice (02:30 on the autumn day) fires once, at
the first. A schedule with ``*`` in its minute or hour field (``*/15 * * * *``, ``@hourly``)
is a rhythm: it fires at every instant whose wall time matches, so the skipped wall times do
not fire and the repeated ones fire on both passes — every quarter hour stays every quarter
hour through the night of the change.

Times are milliseconds since the epoch; fires fall on whole seconds. ``next_after(t, zone)``
is the first fire strictly after ``t``, ``fires_between(start, end, zone)`` every fire in
``[start, end)`` in order, computed a day at a time (the backtest replays schedules on the
recorded clock). A schedule has no fire after the calendar's end (year 9999): None.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import itertools
from collections.abc import Iterator

from hongshan.errors import HongshanError

DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1).toordinal()
_END_MS = int(dt.datetime(9999, 12, 30, tzinfo=dt.UTC).timestamp()) * 1000
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # (a leap February)


class ScheduleError(HongshanError):
    """A schedule, sun trigger or time window whose text is wrong: ``field`` names the part
    (``minute``, ``day of week``, ``offset``, ``time``…) and the message what is wrong with it.
    Answered as HTTP 400, with ``field`` in the body."""

    http_status = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    @property
    def extensions(self) -> dict[str, str]:
        return {"field": self.field}


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] is low + i


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day of month", 1, 31)
_MONTH = _Field(
    "month",
    1,
    12,
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
)
WEEKDAY = _Field("day of week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"))

_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def parse_field(text: str, field: _Field) -> frozenset[int]:
    """The values one field names (weekdays: 0-6, Sunday 0), or ScheduleError naming it."""
    values: set[int] = set()
    for item in text.split(","):
        values.update(_item(item, field))
    if field is WEEKDAY and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _item(item: str, field: _Field) -> range:
    if not item:
        raise ScheduleError(field.name, "an empty item (two commas, or one at an end)")
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ScheduleError(field.name, f"the step of {item!r} is not a whole number above 0")
        step = int(step_text)
    if body in ("*", "?"):
        if body == "?" and field not in (_DAY, WEEKDAY):
            raise ScheduleError(field.name, "? is only for the day of month or of week")
        return range(field.low, field.high + 1, step)
    first_text, dash, last_text = body.partition("-")
    first = _value(first_text, field, item)
    if dash:
        last = _value(last_text, field, item)
        if field is WEEKDAY and last == 0 and last_text.upper() == "SUN":
            last = 7  # SAT-SUN: Saturday to Sunday
    else:
        last = field.high if slash else first
    if last < first:
        raise ScheduleError(field.name, f"the range {item!r} runs backwards")
    return range(first, last + 1, step)


def _value(text: str, field: _Field, item: str) -> int:
    word = text.upper()
    if field.names and word in field.names:
        return field.low + field.names.index(word)
    if not text.isdigit():
        if word in ("L", "LW") or "#" in word or (word[-1:] in "LW" and word[:-1].isdigit()):
            raise ScheduleError(field.name, f"{item!r}: Quartz's L, W and # are not supported")
        raise ScheduleError(field.name, f"{item!r} is not a number or a name")
    value = int(text)
    if not field.low <= value <= field.high:
        raise ScheduleError(field.name, f"{value} is out of {field.low}-{field.high}")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Cron:
    """A parsed cron schedule: the values of each field, how its two day fields combine, and
    whether it keeps appointments with the wall clock or beats a rhythm (module docstring).
    Build it with ``Cron.parse``."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    either_day: bool  # both day fields restricted: a day matches when either does
    on_the_clock: bool  # hours and minutes named: wall-clock appointments
    _times: tuple[int, ...] = dataclasses.field(repr=False, compare=False)  # seconds of a day

    @classmethod
    def parse(cls, text: str) -> Cron:
        """The schedule ``text`` says, or ScheduleError naming the field that is wrong."""
        spelled = " ".join(text.split())
        fields = _SHORTHANDS.get(spelled.lower(), spelled).split(" ")
        if spelled.startswith("@") and spelled.lower() not in _SHORTHANDS:
            raise ScheduleError("schedule", f"{spelled!r} is none of {', '.join(_SHORTHANDS)}")
        if len(fields) == 5:
            fields = ["0", *fields]
        elif len(fields) != 6:
            raise ScheduleError(
                "schedule",
                f"{len(fields)} fields: write 5 (minute hour day month weekday) or 6"
                " (seconds first)",
            )
        seconds, minutes, hours, days, months, weekdays = (
            parse_field(text, field)
            for text, field in zip(
                fields, (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, WEEKDAY), strict=True
            )
        )
        any_day, any_weekday = fields[3][0] in "*?", fields[5][0] in "*?"
        cron = cls(
            spelled,
            seconds=seconds,
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=weekdays,
            either_day=not any_day and not any_weekday,
            on_the_clock=fields[1][0] != "*" and fields[2][0] != "*",
            _times=tuple(
                h * 3600 + m * 60 + s
                for h, m, s in itertools.product(sorted(hours), sorted(minutes), sorted(seconds))
            ),
        )
        if not cron.either_day and not any(
            day <= _LONGEST_MONTH[month - 1] for day in cron.days for month in cron.months
        ):
            raise ScheduleError("day of month", "no month named has such a day: it never fires")
        return cron

    def matches_day(self, day: dt.date) -> bool:
        """Whether the schedule fires on ``day`` (its month and day fields)."""
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = day.isoweekday() % 7 in self.weekdays
        return by_date or by_weekday if self.either_day else by_date and by_weekday

    def next_after(self, instant: int, zone: dt.tzinfo) -> int | None:
        """The first fire strictly after ``instant`` (ms), in ``zone``; None past year 9999."""
        return next(self.fires_between(instant + 1, _END_MS, zone), None)

    def fires_between(self, start: int, end: int, zone: dt.tzinfo) -> Iterator[int]:
        """Every fire in ``[start, end)`` (ms), in order, found in spans that grow from a
        minute to 64 days: the first answer of a dense schedule is not made to wait for a
        day's worth, nor a yearly one searched a minute at a time."""
        span = 60_000
        end = min(end, _END_MS)
        while start < end:
            stop = min(end, start + span)
            yield from self._fires_in(start, stop, zone)
            start = stop
            span = min(span * 2, 64 * DAY_MS)

    def _fires_in(self, start: int, stop: int, zone: dt.tzinfo) -> list[int]:
        # a wall day's fires lie within a day of its instants either way (offsets, DST)
        first = _local_day(start, zone) - 2
        last = _local_day(stop - 1, zone) + 2
        found: set[int] = set()
        for ordinal in range(max(first, 1), min(last, dt.date.max.toordinal() - 1) + 1):
            day = dt.date.fromordinal(ordinal)
            if self.matches_day(day):
                found.update(self._fires_on(day, zone, start, stop))
        return sorted(fire for fire in found if start <= fire < stop)

    def _fires_on(self, day: dt.date, zone: dt.tzinfo, start: int, stop: int) -> list[int]:
        midnight = dt.datetime.combine(day, dt.time())  # a wall time: naive on purpose
        offset = _offset(midnight, zone)
        other = _offset(midnight + dt.timedelta(days=1), zone)
        # a wall time's instants lie between it less the larger offset and less the smaller:
        # only the day's times that may land in [start, stop) are looked at
        day_start = (day.toordinal() - _EPOCH) * 86_400
        times = self._times
        first = bisect.bisect_left(times, -(-start // 1000) + min(offset, other) - day_start)
        last = bisect.bisect_left(times, -(-stop // 1000) + max(offset, other) - day_start)
        if offset == other:  # no change of offset that day (a change moves the next midnight's)
            return [(day_start - offset + time) * 1000 for time in times[first:last]]
        fires: list[int] = []
        for time in times[first:last]:
            fires.extend(self._instants(midnight + dt.timedelta(seconds=time), zone))
        return fires

    def _instants(self, wall: dt.datetime, zone: dt.tzinfo) -> list[int]:
        earlier = _ms(wall.replace(tzinfo=zone, fold=0))
        later = _ms(wall.replace(tzinfo=zone, fold=1))
        if earlier == later:
            return [earlier]
        if wall_time(earlier, zone) == wall:  # shown twice (PEP 495: fold 0 is the first)
            return [earlier] if self.on_the_clock else [earlier, later]
        # skipped: fold=0 read it with the offset before the gap, so it lands after it
        return [gap_end(later, earlier, zone)] if self.on_the_clock else []


def first_instant(wall: dt.datetime, zone: dt.tzinfo) -> int:
    """The first instant (ms) at which the clock in ``zone`` shows ``wall`` (naive) or a later
    time: the first of a wall time shown twice, the end of the gap for one skipped."""
    earlier = _ms(wall.replace(tzinfo=zone, fold=0))
    later = _ms(wall.replace(tzinfo=zone, fold=1))
    if earlier == later or wall_time(earlier, zone) == wall:
        return min(earlier, later)
    return gap_end(later, earlier, zone)


def gap_end(before: int, after: int, zone: dt.tzinfo) -> int:
    """The instant (ms, whole seconds) the offset changes between ``before`` and ``after``."""
    low, high = before // 1000, after // 1000  # offset(low) is the old one, offset(high) not
    old = _offset_at(low, zone)
    while high - low > 1:
        middle = (low + high) // 2
        if _offset_at(middle, zone) == old:
            low = middle
        else:
            high = middle
    return high * 1000


def wall_time(instant: int, zone: dt.tzinfo) -> dt.datetime:
    """The clock's time in ``zone`` at ``instant`` (ms), naive."""
    return dt.datetime.fromtimestamp(instant / 1000, zone).replace(tzinfo=None, fold=0)


def _local_day(instant: int, zone: dt.tzinfo) -> int:
    return dt.datetime.fromtimestamp(instant // 1000, zone).toordinal()


def _offset(wall: dt.datetime, zone: dt.tzinfo) -> int:
    delta = zone.utcoffset(wall)
    return int(delta.total_seconds()) if delta is not None else 0


def _offset_at(second: int, zone: dt.tzinfo) -> int:
    delta = dt.datetime.fromtimestamp(second, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _ms(moment: dt.datetime) -> int:
    return round(moment.timestamp() * 1000)
