"""Minute, hour and day rollups, whatever the backend: which buckets a pass owes, the town's
days, which rollup answers a question, and the folding of rollup rows into calendar buckets.

A rollup row holds, per series and bucket, the count, the sum of the numbers, min, max and the
first and last values with their times. It is recomputed from what lies under it (a minute from
its points, an hour from its minutes, a day from its hours), never adjusted by a delta: a value
that replaces another at the same millisecond, a late value from a history post and a resend
all leave it right.

The event loop only notes which minutes got values (a set add per value: it also runs the
broker). Every ten seconds (``ingest.ROLLUP_EVERY``) a pass hands them to the store's writer,
which recomputes them, then their hours and days, set-based, and records per series how far
its rollups are complete (its mark). Where passes run beside the writer (PostgreSQL), a backlog
of minutes is recomputed a part at a time as it is written, with the hours its series have
moved past; their latest hours and the days are left to the next full pass
(``Rollups.take_pass``). A crash loses the minutes noted since the last pass; the
next start recomputes the minutes with values from each series' mark on, and the minutes of
values that came below their series' mark, which were noted on disk with the values.

An aggregate reads the coarsest rollup that tiles it exactly (``level``), else the raw points: a
year of daily averages reads a few thousand rollup rows per series, not millions of points. A
range whose start or end is off the rollups' boundaries (the console's "last 24 hours", from now
to now) is composed (``plan``): the whole rollup buckets inside it from the coarsest rollup whose
buckets fall inside the question's, the pieces left at each end from the next finer one, and the
partial minutes at the very ends from the raw points; the pieces' answers are merged per bucket
(``compose``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import operator
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from hongshan.store.history.model import Bucket, Buckets

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
LOWEST = -(2**62)

ROLLUP_TABLES = ("history_minutes", "history_hours", "history_days")


# A (series, minute) pair is kept as one int, its key: sets and sorts of the hundreds of
# thousands of pairs a pass may owe cost a fraction of what tuples do. A key is the series
# times SPAN, plus the minute's index (ts // MINUTE), plus BIAS; both are multiples of an
# hour's 60 minutes, so a key less its remainder of 60 is its hour's key, and a series'
# consecutive minutes have consecutive keys.
SPAN = 60 << 52
BIAS = 60 << 51


def minute_key(series_id: int, ts: int) -> int:
    """The key of the minute holding ``ts`` (``Ingest.add_points`` has it inline)."""
    return series_id * SPAN + ts // MINUTE + BIAS


def key_runs(keys: Iterable[int], step: int = 1) -> list[tuple[int, int, int]]:
    """(series, from, to) in milliseconds for each run of consecutive keys of one series:
    minutes' keys (``step`` 1) or hours' (60). (Hundreds of thousands of keys: the breaks
    between runs are found by C iterators, not a Python loop over every key.)"""
    ordered = sorted(keys)
    if not ordered:
        return []
    following = map(operator.add, ordered, itertools.repeat(step))  # what continues a run
    breaks = list(
        itertools.compress(range(1, len(ordered)), map(operator.ne, ordered[1:], following))
    )
    starts, ends = [0, *breaks], [*breaks, len(ordered)]
    return [_span(ordered[a], ordered[b - 1] + step) for a, b in zip(starts, ends, strict=True)]


def hours_of(keys: Iterable[int]) -> set[int]:
    """The keys of the hours of these minutes' keys."""
    keys = list(keys)
    return set(map(operator.sub, keys, map(operator.mod, keys, itertools.repeat(60))))


def _span(start: int, end: int) -> tuple[int, int, int]:
    series_id, index = divmod(start, SPAN)
    lo = (index - BIAS) * MINUTE
    return series_id, lo, lo + (end - start) * MINUTE


def _marks(
    runs: list[tuple[int, int, int]], latest: dict[int, int], through: dict[int, int]
) -> dict[int, int]:
    """Each series' mark after a full pass of these runs, given its latest minute that backlog
    passes recomputed: the latest minute of either, or the mark it had if that is later (a
    mark never moves down, so it is also the latest minute any pass has written)."""
    marks = dict(latest)
    _latest(runs, marks)
    return {
        series_id: max(mark, through.get(series_id, LOWEST)) for series_id, mark in marks.items()
    }


def _latest(runs: list[tuple[int, int, int]], into: dict[int, int]) -> None:
    """Each series' latest minute in these runs (in order: a series' last run holds it) put
    in ``into`` where later than what it has."""
    for series_id, _, end in runs:
        if end - MINUTE > into.get(series_id, LOWEST):
            into[series_id] = end - MINUTE


class Pass(NamedTuple):
    """What a pass recomputes, for a backend's ``pass_parts`` to turn into statements."""

    minutes: list[tuple[int, int, int]]  # runs (series, from, to) recomputed from their points
    hours: set[int]  # the keys of the hours recomputed from their minutes, after them
    days: set[int]  # hours' keys whose days are recomputed from their hours (or minutes)
    marks: dict[int, int]  # each series' new mark (none: backlog)
    # the notes on disk it settles: those up to this number (None: a backlog pass settles none)
    number: int | None
    # each of its series' latest minute an earlier pass may have written: the minutes after it
    # are new rows, inserted without looking for one to replace (None: any may be there)
    written: dict[int, int] | None
    # its series, of all a pass was taken for: those whose id is this remainder of this count
    # (a pass shared out among connections, ``part``); the notes it settles are theirs
    share: tuple[int, int] = (0, 1)

    def part(self, index: int, count: int) -> Pass:
        """Its share of series ``index`` of ``count``: a pass of their own, independent of the
        others' (every row of a pass is one series')."""
        if count == 1:
            return self

        def mine(keys: set[int]) -> set[int]:
            return {key for key in keys if key // SPAN % count == index}

        written = self.written
        return Pass(
            [run for run in self.minutes if run[0] % count == index],
            mine(self.hours),
            mine(self.days),
            {s: mark for s, mark in self.marks.items() if s % count == index},
            self.number,
            None if written is None else {s: w for s, w in written.items() if s % count == index},
            (index, count),
        )

    def split(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """Its runs of minutes: (those that may replace rows, those that are new)."""
        if self.written is None:
            return self.minutes, []
        written = self.written
        old = [run for run in self.minutes if run[1] <= written[run[0]]]
        new = [run for run in self.minutes if run[1] > written[run[0]]]
        return old, new


class Owed(NamedTuple):
    """What a pass took on: owed back to the next (``Rollups.owe``) should it fail."""

    minutes: set[int]
    hours: set[int]
    days: set[int]
    marks: dict[int, int]  # the latest minutes of backlog passes, for a full pass's marks


def recovery_pass(owed: set[int], through: dict[int, int]) -> Pass:
    """At a start after a crash: the owed minutes recomputed, replacing what is there, with
    their hours and days, settling every note on disk."""
    found = key_runs(owed)
    hours = hours_of(owed)
    return Pass(found, hours, hours, _marks(found, {}, through), EVERY_PASS, None)


PassParts = Callable[[Pass, "TownDays"], Any]
# the number of a pass that settles every note on disk (at a start after a crash)
EVERY_PASS = 2**62


class TownDays:
    """The town's days (midnight to midnight in its time zone), for the day rollups."""

    def __init__(self, zone: str = "UTC") -> None:
        self.name = zone
        self.zone = zoneinfo.ZoneInfo(zone)
        self._days: dict[int, tuple[int, int]] = {}  # hour -> its day's (start, end)

    def of(self, ts: int) -> tuple[int, int]:
        """The day holding ``ts``: its first millisecond and the next day's."""
        hour = ts - ts % HOUR
        found = self._days.get(hour)
        if found is None or not found[0] <= ts < found[1]:  # (a :30 zone's day starts mid-hour)
            try:
                local = dt.datetime.fromtimestamp(ts / 1000, self.zone).date()
                found = (self._midnight(local), self._midnight(local + dt.timedelta(days=1)))
            except (ValueError, OverflowError, OSError):  # beyond the calendar: UTC's day
                found = (ts - ts % DAY, ts - ts % DAY + DAY)
            if found[0] <= hour and hour + HOUR <= found[1]:
                if len(self._days) > 100_000:
                    self._days.clear()
                self._days[hour] = found
        return found

    def is_start(self, ts: int) -> bool:
        return self.of(ts)[0] == ts

    def _midnight(self, day: dt.date) -> int:
        return int(dt.datetime(day.year, day.month, day.day, tzinfo=self.zone).timestamp() * 1000)


class Rollups:
    """The minutes owed a pass, and each series' mark, on the event loop."""

    def __init__(self, through: dict[int, int], days: TownDays, parts: PassParts) -> None:
        self.days = days
        # series -> its mark: its rollups are complete below it, but for minutes noted on disk
        self.through = through
        # series -> the latest minute a pass taken may have written. At a start no rollup row
        # lies after a series' mark: a mark never moves down, the last full pass before a
        # clean close took in every backlog pass's minutes, a crash's recovery raises the
        # marks over the minutes it makes again, and a store from before marks stopped moving
        # down has them raised once (PostgreSQL's ``marks_are_latest``)
        self.written = dict(through)
        self.dirty: set[int] = set()  # the keys of the minutes owed a recomputation
        # what backlog passes left to the next full pass: the hours each series may still be
        # filling (its latest), the hours whose days are owed, and each series' latest minute
        # recomputed (for its mark)
        self.held: set[int] = set()
        self.days_owed: set[int] = set()
        self.latest: dict[int, int] = {}
        self._parts = parts
        self.taken = 0  # passes of any kind taken (each takes the minutes owed)
        # full passes taken: a note on disk of a value below its mark carries the number of the
        # pass that will recompute its minute (this + 1), and a pass deletes only notes up to
        # its own number: a note made while it ran (the store may run passes on a connection
        # of their own) stays for the next
        self.passes = 0

    @property
    def unrolled(self) -> bool:
        """Whether backlog passes left work to a full pass."""
        return bool(self.held or self.days_owed or self.latest)

    def owes(self) -> int:
        """How much a full pass would recompute now: minutes, hours and days owed."""
        return len(self.dirty) + len(self.held) + len(self.days_owed)

    def take_pass(self, backlog: bool = False, shares: int = 1) -> tuple[list[Any], Owed]:
        """What a pass writes, in ``shares`` parts of their own (each a share of the series,
        ``Pass.part``), and what it takes on (owed again if it fails).

        A backlog pass recomputes its minutes, and the hours before each series' latest: where
        passes run beside the writer, a backlog of values is rolled up a part at a time while
        the rest is written, and each hour, whose minutes come in order, is recomputed once,
        not once a part (a late value makes its hour owed again). It leaves its series' latest
        hours, all days, the marks and the notes on disk to the next full pass: a crash before
        that one has committed recomputes its minutes at the next start, and a full pass
        planned before it failed does not run as planned (``Ingest._pass``)."""
        keys = self.dirty
        found = key_runs(keys)
        written: dict[int, int] = {}  # the pass's series' latest minutes written before it
        for series_id, _, _ in found:
            written.setdefault(series_id, self.written.get(series_id, LOWEST))
        hours = hours_of(keys)
        if self.held:
            hours |= self.held
        if backlog:
            held: dict[int, int] = {}  # each series' latest hour: still filling, held back
            for hour in hours:
                series_id = hour // SPAN
                if hour > held.get(series_id, -1):
                    held[series_id] = hour
            hours.difference_update(held.values())
            plan = Pass(found, hours, set(), {}, None, written)
            owed = Owed(keys, hours | self.held, set(), {})
        else:
            marks = _marks(found, self.latest, self.through)
            days = hours | self.days_owed if self.days_owed else hours
            plan = Pass(found, hours, days, marks, self.passes + 1, written)
            owed = Owed(keys, hours, days, self.latest)
        # (before anything changes: it may fail)
        parts = [self._parts(plan.part(n, shares), self.days) for n in range(shares)]
        self.dirty = set()
        self.taken += 1
        _latest(found, self.written)
        if backlog:
            self.held = set(held.values())
            self.days_owed |= hours
            _latest(found, self.latest)
        else:
            self.held, self.days_owed, self.latest = set(), set(), {}
            self.through.update(plan.marks)
            self.passes += 1
        return parts, owed

    def owe(self, owed: Owed) -> None:
        """A pass that failed: the next recomputes what it took on."""
        self.dirty |= owed.minutes
        self.held |= owed.hours
        self.days_owed |= owed.days
        for series_id, minute in owed.marks.items():
            if minute > self.latest.get(series_id, LOWEST):
                self.latest[series_id] = minute


def rolled_runs(
    hours: set[int], days_of: set[int], days: TownDays
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int, int]]]:
    """The runs of the ``hours`` keys, and the days of the ``days_of`` hours' keys (series,
    start, end, whether the day falls on whole hours of UTC and so is made from hours rather
    than minutes)."""
    # the days of each hour there is: of its first minute and its last (in a zone a half or a
    # quarter hour off UTC an hour may hold the end of one and the start of the next)
    of_hour: dict[int, set[tuple[int, int]]] = {}
    owed: set[tuple[int, int, int]] = set()
    for hour in days_of:
        series_id, index = divmod(hour, SPAN)
        spans = of_hour.get(index)
        if spans is None:
            start = (index - BIAS) * MINUTE
            spans = of_hour[index] = {days.of(start), days.of(start + HOUR - 1)}
        for lo, hi in spans:
            owed.add((series_id, lo, hi))
    day_runs = [(s, lo, hi, int(lo % HOUR == 0 and hi % HOUR == 0)) for s, lo, hi in sorted(owed)]
    return key_runs(hours, 60), day_runs


def day_runs_of_hours(
    hours: Iterable[tuple[int, int]], days: TownDays
) -> list[tuple[int, int, int, int]]:
    """Every day that has hours, to make the day rollups again (the zone changed)."""
    owed = {(series_id, *days.of(hour)) for series_id, hour in hours}
    return [(s, lo, hi, int(lo % HOUR == 0 and hi % HOUR == 0)) for s, lo, hi in sorted(owed)]


class Piece(NamedTuple):
    """A part of an aggregate's range and the table that answers it (``plan``)."""

    table: str
    buckets: Buckets  # the question's buckets over this part of its range alone


_ROW_SPAN = {"history_minutes": MINUTE, "history_hours": HOUR, "history_days": DAY}
POINT_SPAN = 1_000  # (what a read of raw points is counted as: a value a second)


def rows_read(pieces: Sequence[Piece], series: int) -> int:
    """About how many rows a plan reads for ``series`` series: a rollup's rows by their
    span, the raw points' as one a second (a range of raw points is under a minute at
    either end of a composed read, and any length where no rollup answers)."""
    spans = (piece.buckets.end - piece.buckets.start for piece in pieces)
    widths = (_ROW_SPAN.get(piece.table, POINT_SPAN) for piece in pieces)
    return series * sum(-(-span // width) for span, width in zip(spans, widths, strict=True))


# (a rollup's table, the first of its boundaries at or after a time, the last at or before it)
_Level = tuple[str, Callable[[int], int], Callable[[int], int]]


def _fixed_level(table: str, width: int) -> _Level:
    return table, lambda ts: -(-ts // width) * width, lambda ts: ts - ts % width


def _day_level(days: TownDays) -> _Level:
    return (
        "history_days",
        lambda ts: ts if days.is_start(ts) else days.of(ts)[1],
        lambda ts: days.of(ts)[0],
    )


def plan(buckets: Buckets, days: TownDays) -> list[Piece]:
    """Which tables answer which parts of the range, in time order: the coarsest rollup whose
    buckets each lie inside one of the question's reads the whole ones of them inside the
    range, each end left over is planned the same way with the next finer rollup, and what is
    left at the very ends (less than a minute each) reads the raw points. One piece when the
    range falls on the coarsest rollup's boundaries (``level``'s choice)."""
    levels: list[_Level] = []
    if buckets.width:
        for width, table in ((HOUR, "history_hours"), (MINUTE, "history_minutes")):
            if buckets.width % width == 0 and buckets.origin % width == 0:
                levels.append(_fixed_level(table, width))
    else:
        inner = buckets.bounds[1:-1]
        if all(days.is_start(edge) for edge in inner):
            levels.append(_day_level(days))
        for width, table in ((HOUR, "history_hours"), (MINUTE, "history_minutes")):
            if all(edge % width == 0 for edge in inner):
                levels.append(_fixed_level(table, width))
    return [
        Piece(table, _part(buckets, start, end))
        for table, start, end in _pieces(buckets.start, buckets.end, levels)
    ]


def _pieces(start: int, end: int, levels: Sequence[_Level]) -> list[tuple[str, int, int]]:
    if start >= end:
        return []
    if not levels:
        return [("history_points", start, end)]
    (table, up, down), finer = levels[0], levels[1:]
    low, high = up(start), down(end)
    if low >= high:
        return _pieces(start, end, finer)
    return [*_pieces(start, low, finer), (table, low, high), *_pieces(high, end, finer)]


def _part(buckets: Buckets, start: int, end: int) -> Buckets:
    """The question's buckets over [start, end) alone: the same fixed buckets, or the calendar
    buckets that overlap it (each named by its own start, as in the whole question)."""
    if (start, end) == (buckets.start, buckets.end):
        return buckets
    if buckets.width:
        return Buckets(start=start, end=end, width=buckets.width, origin=buckets.origin)
    bounds = buckets.bounds
    first = bisect.bisect_right(bounds, start) - 1
    after = bisect.bisect_left(bounds, end)
    return Buckets(start=start, end=end, bounds=(*bounds[first:after], end))


def level(buckets: Buckets, days: TownDays) -> str:
    """The coarsest rollup whose buckets tile the question exactly (its table), or the raw
    points' where none does: the town's days for calendar days, weeks and months in its time
    zone, hours or minutes for buckets that fall on them. (An aggregate reads ``plan``'s
    pieces: this is its one piece, when it has one.)"""
    pieces = plan(buckets, days)
    return pieces[0].table if len(pieces) == 1 else "history_points"


def asked_of_pieces(aggregates: Sequence[str]) -> list[str]:
    """What each piece of a composed aggregate is asked, for ``compose`` to merge: the count
    always, the sum for an average, and the rest as asked."""
    asked = ["count"]
    if "sum" in aggregates or "avg" in aggregates:
        asked.append("sum")
    return asked + [a for a in ("min", "max", "first", "last") if a in aggregates]


def compose(
    answers: Sequence[dict[int, dict[str, Any]]], aggregates: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """The pieces' answers (in time order, each asked ``asked_of_pieces``) merged per bucket:
    counts and sums add, min and max take the extreme, the average is the sum over the count,
    the first is the earliest piece's and the last the latest's (pieces do not overlap)."""
    merged: dict[int, dict[str, Any]] = {}
    for answer in answers:
        for bucket, values in answer.items():
            into = merged.get(bucket)
            if into is None:
                merged[bucket] = dict(values)
                continue
            into["count"] = (into.get("count") or 0) + (values.get("count") or 0)
            for name, pick in (("sum", None), ("min", min), ("max", max)):
                value = values.get(name)
                if value is None:
                    continue
                had = into.get(name)
                if had is None:
                    into[name] = value
                else:
                    into[name] = had + value if pick is None else pick(had, value)
            if "last" in values:
                into["last"] = values["last"]
            if "first" not in into and "first" in values:
                into["first"] = values["first"]
    results: dict[int, dict[str, Any]] = {}
    for bucket, values in merged.items():
        total, count = values.get("sum"), values.get("count")
        values["avg"] = total / count if total is not None and count else None
        results[bucket] = {a: values.get(a) for a in aggregates}
    return results


def fold_calendar(
    rows: Iterable[tuple[int, int, Any, Any, Any]],
    edges: dict[int, tuple[Any, Any]],
    bounds: Sequence[int],
    aggregates: Sequence[str],
) -> dict[int, dict[str, Any]]:
    """Calendar buckets over rollups: ``rows`` are the series' rollup rows summed per rollup
    bucket, in time order (bucket, count, sum, min, max), ``edges`` each rollup bucket's first
    and last value; they are folded into days, weeks or months here (a year of hours is 8,760
    rows; joining 365 ranges to each series would be 365 seeks per series)."""
    results: dict[int, dict[str, Any]] = {}
    at = 0
    folded: list[Any] | None = None  # [start, count, sum, min, max, first bucket, last bucket]
    for bucket, count, total, low, high in rows:
        while at + 1 < len(bounds) - 1 and bucket >= bounds[at + 1]:
            at += 1
        if folded is None or folded[0] != bounds[at]:
            if folded is not None:
                results[folded[0]] = _values(folded, aggregates, edges)
            folded = [bounds[at], count, total, low, high, bucket, bucket]
            continue
        folded[1] += count
        if total is not None:
            folded[2] = total if folded[2] is None else folded[2] + total
        if low is not None and (folded[3] is None or low < folded[3]):
            folded[3] = low
        if high is not None and (folded[4] is None or high > folded[4]):
            folded[4] = high
        folded[6] = bucket
    if folded is not None:
        results[folded[0]] = _values(folded, aggregates, edges)
    return results


def _values(
    folded: list[Any], aggregates: Sequence[str], edges: dict[int, tuple[Any, Any]]
) -> dict[str, Any]:
    _, count, total, low, high, first, last = folded
    row = {
        "count": count,
        "sum": total,
        "avg": total / count if total is not None and count else None,
        "min": low,
        "max": high,
        "first": edges.get(first, (None, None))[0],
        "last": edges.get(last, (None, None))[1],
    }
    return {a: row[a] for a in aggregates}


def to_buckets(results: dict[int, dict[str, Any]], decode: Any, kind: str) -> list[Bucket]:
    """Buckets in time order, their first/last/min/max decoded as the series' kind says, and
    sums of whole numbers whole again (a rollup's sum is a float, as a composed answer's is)."""
    for found in results.values():
        total = found.get("sum")
        if kind in ("int", "bool") and isinstance(total, float) and total.is_integer():
            found["sum"] = int(total)
        for name in ("min", "max", "first", "last"):
            if found.get(name) is not None:
                found[name] = decode(found[name])
    return [Bucket(start=b, values=results[b]) for b in sorted(results)]
