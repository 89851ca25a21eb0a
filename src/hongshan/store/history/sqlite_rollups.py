"""Minute and hour rollups of the SQLite history, and the aggregate queries that read them.

``history_minutes`` and ``history_hours`` hold, per series and bucket, the count, the sum of the
numbers, min, max and the first and last values with their times (as offsets into the bucket, a
few bytes each: the first of several devices' values is the earliest of their firsts).

A rollup is recomputed from what lies under it (a minute from its points, an hour from its
minutes), never adjusted by a delta: a value that replaces another at the same millisecond, a
late value from a history post and a resend all leave it right.

The event loop only notes which minutes got values (a set add per value: it also runs the
broker, and the GIL is shared). Every two seconds a pass hands them to the writer, which
recomputes them a run of consecutive minutes of one series per statement, then their hours,
and records per series how far its rollups are complete (``history_rolled``). That work is
SQLite's, on the writer's thread, in C.

A crash loses the minutes noted since the last pass. At the next start they are recomputed:
for each series, the minutes with values from its mark on, and the minutes of values that came
below their series' mark, which were noted on disk (``history_dirty``) with the values.

An aggregate reads the hours when its buckets and range fall on whole hours, the minutes when on
whole minutes, and the raw points otherwise: a year of daily averages reads a few thousand
rollup rows per series, not millions of points.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import Any

from hongshan.store.history.model import Bucket, Buckets
from hongshan.store.sqlite.writer import RowInsert

MINUTE = 60_000
HOUR = 3_600_000
LOWEST = -(2**62)

ROLLUP_TABLES = ("history_minutes", "history_hours", "history_days")
_ROLLUP_TABLE = """
CREATE TABLE IF NOT EXISTS {} (
    series_id INTEGER NOT NULL, bucket INTEGER NOT NULL,
    count INTEGER NOT NULL, sum REAL, min, max,
    first_at INTEGER NOT NULL, first, last_at INTEGER NOT NULL, last,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
"""
SCHEMA = (
    "".join(_ROLLUP_TABLE.format(table) for table in ROLLUP_TABLES)
    + """
CREATE TABLE IF NOT EXISTS history_dirty (
    series_id INTEGER NOT NULL, bucket INTEGER NOT NULL, PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_rolled (
    series_id INTEGER PRIMARY KEY, through INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history_meta (key TEXT PRIMARY KEY, value);
"""
)

INSERT_DIRTY = RowInsert("INSERT OR IGNORE INTO history_dirty (series_id, bucket) VALUES", 2)
SET_META = "INSERT OR REPLACE INTO history_meta (key, value) VALUES (?, ?)"
_NUMBER = "CASE WHEN typeof({0}) IN ('integer', 'real') THEN {0} END"
# one run of minutes of one series (?1, from ?2, to ?3): first and last are the points at the
# group's min(ts) and max(ts), found by their key
# A pass is a few statements over the runs it owes, put in temporary tables first (one
# statement each for all the series, not one per series: between two statements the writer
# must take the GIL back from the busy event loop, which can take the switch interval).
TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS pass_minutes (series_id INTEGER, lo INTEGER, hi INTEGER);
CREATE TEMP TABLE IF NOT EXISTS pass_hours (series_id INTEGER, lo INTEGER, hi INTEGER);
CREATE TEMP TABLE IF NOT EXISTS pass_days (
    series_id INTEGER, lo INTEGER, hi INTEGER, from_hours INTEGER
);
"""
_CLEAR_RUNS = [
    (f"DELETE FROM temp.{table}", [()]) for table in ("pass_minutes", "pass_hours", "pass_days")
]
_PUT_MINUTES = RowInsert("INSERT INTO temp.pass_minutes (series_id, lo, hi) VALUES", 3)
_PUT_HOURS = RowInsert("INSERT INTO temp.pass_hours (series_id, lo, hi) VALUES", 3)
_PUT_DAYS = RowInsert("INSERT INTO temp.pass_days (series_id, lo, hi, from_hours) VALUES", 4)
# first and last are the rows at each group's min and max time, found by their keys
_MINUTES_FROM_POINTS = f"""
INSERT OR REPLACE INTO history_minutes
SELECT g.s, g.b, g.n, g.sm, g.mn, g.mx, g.t0 - g.b, f.value, g.t1 - g.b, l.value FROM (
    SELECT p.series_id AS s, p.ts - p.ts % 60000 AS b, count(p.value) AS n,
        sum({_NUMBER.format("p.value")}) AS sm, min(p.value) AS mn, max(p.value) AS mx,
        min(p.ts) AS t0, max(p.ts) AS t1
    FROM temp.pass_minutes AS r
    JOIN history_points AS p ON p.series_id = r.series_id AND p.ts >= r.lo AND p.ts < r.hi
    GROUP BY p.series_id, b
) AS g
JOIN history_points AS f ON f.series_id = g.s AND f.ts = g.t0
JOIN history_points AS l ON l.series_id = g.s AND l.ts = g.t1
"""
_HOURS_FROM_MINUTES = """
INSERT OR REPLACE INTO history_hours
SELECT g.s, g.b, g.n, g.sm, g.mn, g.mx,
    g.t0 - g.b + f.first_at, f.first, g.t1 - g.b + l.last_at, l.last FROM (
    SELECT m.series_id AS s, m.bucket - m.bucket % 3600000 AS b, sum(m.count) AS n,
        sum(m.sum) AS sm, min(m.min) AS mn, max(m.max) AS mx,
        min(m.bucket) AS t0, max(m.bucket) AS t1
    FROM temp.pass_hours AS r
    JOIN history_minutes AS m
        ON m.series_id = r.series_id AND m.bucket >= r.lo AND m.bucket < r.hi
    GROUP BY m.series_id, b
) AS g
JOIN history_minutes AS f ON f.series_id = g.s AND f.bucket = g.t0
JOIN history_minutes AS l ON l.series_id = g.s AND l.bucket = g.t1
"""
# the town's days, from their hours where a day's start and end fall on whole hours of UTC,
# else from their minutes
_DAYS_FROM = """
INSERT OR REPLACE INTO history_days
SELECT g.s, g.d, g.n, g.sm, g.mn, g.mx,
    g.t0 - g.d + f.first_at, f.first, g.t1 - g.d + l.last_at, l.last FROM (
    SELECT r.series_id AS s, r.lo AS d, sum(u.count) AS n, sum(u.sum) AS sm,
        min(u.min) AS mn, max(u.max) AS mx, min(u.bucket) AS t0, max(u.bucket) AS t1
    FROM temp.pass_days AS r
    JOIN {0} AS u ON u.series_id = r.series_id AND u.bucket >= r.lo AND u.bucket < r.hi
    WHERE r.from_hours = {1}
    GROUP BY r.series_id, r.lo
) AS g
JOIN {0} AS f ON f.series_id = g.s AND f.bucket = g.t0
JOIN {0} AS l ON l.series_id = g.s AND l.bucket = g.t1
"""
_DAYS_FROM_HOURS = _DAYS_FROM.format("history_hours", 1)
_DAYS_FROM_MINUTES = _DAYS_FROM.format("history_minutes", 0)
_DELETE_DIRTY = """
DELETE FROM history_dirty WHERE EXISTS (
    SELECT 1 FROM temp.pass_minutes AS r WHERE r.series_id = history_dirty.series_id
    AND history_dirty.bucket >= r.lo AND history_dirty.bucket < r.hi
)
"""
_SET_ROLLED = RowInsert("INSERT OR REPLACE INTO history_rolled (series_id, through) VALUES", 2)
SQL_VARIABLES = 30_000  # under SQLite's 32,766 bound parameters per statement

Parts = list[tuple[str | RowInsert, Sequence[Sequence[Any]]]]
ONCE: list[tuple[()]] = [()]  # the rows of a statement run once


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
            local = dt.datetime.fromtimestamp(ts / 1000, self.zone).date()
            found = (self._midnight(local), self._midnight(local + dt.timedelta(days=1)))
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

    def __init__(self, conn: sqlite3.Connection, days: TownDays) -> None:
        self.days = days
        # series -> its mark: its rollups are complete below it, but for minutes noted on disk
        self.through: dict[int, int] = dict(conn.execute("SELECT * FROM history_rolled"))
        self.dirty: set[tuple[int, int]] = set()  # (series, minute) owed a recomputation

    def take_pass(self) -> tuple[Parts, set[tuple[int, int]]]:
        """What a pass writes, and the minutes it settles (owed again if it fails)."""
        minutes, self.dirty = self.dirty, set()
        marks: dict[int, int] = {}
        for series_id, minute in minutes:
            if minute > marks.get(series_id, LOWEST):
                marks[series_id] = minute
        for series_id, mark in marks.items():
            if mark > self.through.get(series_id, LOWEST):
                self.through[series_id] = mark
        return pass_parts(minutes, marks, self.days), minutes

    def owe(self, minutes: Iterable[tuple[int, int]]) -> None:
        """A pass that failed: the next recomputes its minutes."""
        self.dirty.update(minutes)


def _runs(buckets: Iterable[tuple[int, int]], width: int) -> list[tuple[int, int, int]]:
    """(series, from, to) for each run of consecutive buckets of one series."""
    runs: list[tuple[int, int, int]] = []
    for series_id, bucket in sorted(buckets):
        if runs and runs[-1][0] == series_id and runs[-1][2] == bucket:
            runs[-1] = (series_id, runs[-1][1], bucket + width)
        else:
            runs.append((series_id, bucket, bucket + width))
    return runs


def pass_parts(minutes: set[tuple[int, int]], marks: dict[int, int], days: TownDays) -> Parts:
    """The minutes recomputed from their points, then their hours from their minutes and their
    days from their hours (or minutes), the notes on disk they settle, the marks moved up."""
    hours = {(series_id, minute - minute % HOUR) for series_id, minute in minutes}
    day_runs = [
        (series_id, start, end, int(start % HOUR == 0 and end % HOUR == 0))
        for series_id, start, end in sorted({(s, *days.of(m)) for s, m in minutes})
    ]
    return [
        *_CLEAR_RUNS,
        (_PUT_MINUTES, _runs(minutes, MINUTE)),
        (_PUT_HOURS, _runs(hours, HOUR)),
        (_PUT_DAYS, day_runs),
        (_MINUTES_FROM_POINTS, ONCE),
        (_HOURS_FROM_MINUTES, ONCE),
        (_DAYS_FROM_HOURS, ONCE),
        (_DAYS_FROM_MINUTES, ONCE),
        (_DELETE_DIRTY, ONCE),
        (_SET_ROLLED, sorted(marks.items())),
    ]


def run_parts(conn: sqlite3.Connection, parts: Parts) -> None:
    """Parts run here rather than by the writer (at start), in order."""
    for sql, rows in parts:
        if isinstance(sql, RowInsert):
            one = "(" + ",".join("?" * sql.width) + ")"
            conn.executemany(f"{sql.head} {one}", rows)
        else:
            conn.executemany(sql, rows)


def recover(conn: sqlite3.Connection, series_ids: Iterable[int], days: TownDays) -> None:
    """At start after a crash: recompute what the lost passes would have."""
    conn.executescript(TEMP_SCHEMA)
    through = dict(conn.execute("SELECT * FROM history_rolled"))
    owed = set(conn.execute("SELECT series_id, bucket FROM history_dirty"))
    sql = "SELECT DISTINCT ts - ts % 60000 FROM history_points WHERE series_id = ? AND ts >= ?"
    for series_id in series_ids:
        for (minute,) in conn.execute(sql, (series_id, through.get(series_id, LOWEST))):
            owed.add((series_id, minute))
    if not owed:
        return
    marks: dict[int, int] = {}
    for series_id, minute in owed:
        marks[series_id] = max(minute, marks.get(series_id, minute), through.get(series_id, minute))
    conn.execute("BEGIN")
    run_parts(conn, pass_parts(owed, marks, days))
    conn.execute("COMMIT")


def rebuild_days(conn: sqlite3.Connection, days: TownDays) -> None:
    """The day rollups made again from the hours (and minutes) for every day that has values:
    the town's time zone changed, or the history predates day rollups."""
    conn.executescript(TEMP_SCHEMA)
    owed = {(series_id, *days.of(hour)) for series_id, hour in conn.execute(
        "SELECT series_id, bucket FROM history_hours"
    )}  # fmt: skip
    runs = [(s, lo, hi, int(lo % HOUR == 0 and hi % HOUR == 0)) for s, lo, hi in sorted(owed)]
    conn.execute("BEGIN")
    conn.execute("DELETE FROM history_days")
    run_parts(
        conn,
        [
            *_CLEAR_RUNS,
            (_PUT_DAYS, runs),
            (_DAYS_FROM_HOURS, ONCE),
            (_DAYS_FROM_MINUTES, ONCE),
            (SET_META, [("day_zone", days.name)]),
        ],
    )
    conn.execute("COMMIT")


def level(buckets: Buckets, days: TownDays) -> str:
    """The coarsest rollup whose buckets tile the question exactly (its table), or the raw
    points': the town's days for calendar days, weeks and months in its time zone, hours or
    minutes for buckets that fall on them."""
    edges = [buckets.start, buckets.end]
    if buckets.width:
        edges += [buckets.width, buckets.origin]
    else:
        edges += buckets.bounds
        if all(days.is_start(edge) for edge in edges):
            return "history_days"
    for width, table in ((HOUR, "history_hours"), (MINUTE, "history_minutes")):
        if all(edge % width == 0 for edge in edges):
            return table
    return "history_points"


class _Source:
    """Where an aggregate reads from: the raw points or a rollup table."""

    def __init__(self, table: str) -> None:
        self.table = table
        if table != "history_points":
            self.time = "bucket"
            self.plain = "sum(count), sum(sum) / sum(count), min(min), max(max), sum(sum)"
            self.first = "min(bucket + first_at), first"
            self.last = "max(bucket + last_at), last"
        else:
            self.time = "ts"
            self.plain = "count(value), avg(value), min(value), max(value), sum(value)"
            self.first, self.last = "min(ts), value", "max(ts), value"


def aggregate(
    conn: sqlite3.Connection,
    ids: list[int],
    buckets: Buckets,
    aggregates: Sequence[str],
    table: str,
) -> dict[int, dict[str, Any]]:
    """Per bucket start: the asked aggregates of the series ``ids`` together, read from
    ``table`` (``level``'s choice: a rollup that tiles the buckets, else the points). First and
    last each take one more scan (SQLite gives a bare column the value of the row that
    ``min``/``max`` picked)."""
    source = _Source(table)
    if source.time == "bucket" and not buckets.width:
        return _fold_calendar(conn, ids, buckets, aggregates, source.table)
    at = source.time
    series = f"series_id IN ({','.join('?' * len(ids))})"
    if buckets.width:
        chunks: list[tuple[str, list[Any]]] = [
            (
                f"SELECT {at} - (({at} - ?) % ?) AS b, {{columns}} FROM {source.table} "
                f"WHERE {series} AND {at} >= ? AND {at} < ? GROUP BY b",
                [buckets.origin, buckets.width, *ids, buckets.start, buckets.end],
            )
        ]
    else:
        chunks = []
        bounds = buckets.bounds
        per_chunk = max(1, (SQL_VARIABLES - len(ids)) // 3)
        for first in range(0, len(bounds) - 1, per_chunk):
            part = range(first, min(first + per_chunk, len(bounds) - 1))
            values: list[Any] = []
            for i in part:
                lo, hi = max(bounds[i], buckets.start), min(bounds[i + 1], buckets.end)
                values += [bounds[i], lo, hi]
            chunks.append(
                (
                    f"WITH bucket(b, lo, hi) AS (VALUES {','.join(['(?, ?, ?)'] * len(part))}) "
                    f"SELECT bucket.b AS b, {{columns}} FROM bucket JOIN {source.table} "
                    f"ON {series} AND {at} >= bucket.lo AND {at} < bucket.hi GROUP BY bucket.b",
                    [*values, *ids],
                )
            )
    results: dict[int, dict[str, Any]] = {}
    plain = [a for a in aggregates if a not in ("first", "last")]
    for template, params in chunks:
        if plain:
            for b, count, avg, low, high, total in conn.execute(
                template.format(columns=source.plain), params
            ):
                row = {"count": count, "avg": avg, "min": low, "max": high, "sum": total}
                results[b] = {a: row[a] for a in plain}
        for edge, columns in (("first", source.first), ("last", source.last)):
            if edge in aggregates:
                for b, _, value in conn.execute(template.format(columns=columns), params):
                    results.setdefault(b, {})[edge] = value
    return results


def _fold_calendar(
    conn: sqlite3.Connection,
    ids: list[int],
    buckets: Buckets,
    aggregates: Sequence[str],
    table: str,
) -> dict[int, dict[str, Any]]:
    """Calendar buckets over rollups: the series' rollup rows summed per rollup bucket in one
    scan, then folded into days, weeks or months here (a year of hours is 8,760 rows; joining
    365 ranges to each series would be 365 seeks per series)."""
    series = f"series_id IN ({','.join('?' * len(ids))})"
    where = f"FROM {table} WHERE {series} AND bucket >= ? AND bucket < ? GROUP BY bucket"
    params = [*ids, buckets.start, buckets.end]
    rows = conn.execute(
        f"SELECT bucket, sum(count), sum(sum), min(min), max(max) {where} ORDER BY bucket", params
    ).fetchall()
    edges: dict[int, tuple[Any, Any]] = {}
    if "first" in aggregates or "last" in aggregates:
        sql = "SELECT bucket, {0}, {1} " + where
        firsts = {b: v for b, _, v in conn.execute(sql.format("min(first_at)", "first"), params)}
        lasts = {b: v for b, _, v in conn.execute(sql.format("max(last_at)", "last"), params)}
        edges = {b: (firsts.get(b), lasts.get(b)) for b in firsts}
    bounds = buckets.bounds
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


def to_buckets(results: dict[int, dict[str, Any]], decode: Any) -> list[Bucket]:
    """Buckets in time order, their first/last/min/max decoded as the series' kind says."""
    for found in results.values():
        for name in ("min", "max", "first", "last"):
            if found.get(name) is not None:
                found[name] = decode(found[name])
    return [Bucket(start=b, values=results[b]) for b in sorted(results)]
