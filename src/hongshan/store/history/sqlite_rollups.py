"""The SQLite side of the rollups (``rollups`` says what they are): their tables, a pass as
set-based statements run by the writer over runs put in temporary tables first, the recovery
after a crash, and the aggregate queries that read them or the points.

In the rollup tables, the first and last values' times are offsets into the bucket (a few bytes
each); min and max of text are SQLite's comparison of text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from hongshan.store.history.model import Buckets
from hongshan.store.history.rollups import (
    LOWEST,
    ROLLUP_TABLES,
    Pass,
    Piece,
    TownDays,
    asked_of_pieces,
    compose,
    day_runs_of_hours,
    fold_calendar,
    minute_key,
    recovery_pass,
    rolled_runs,
)
from hongshan.store.sqlite.writer import RowInsert

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
    series_id INTEGER NOT NULL, bucket INTEGER NOT NULL, pass INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_rolled (
    series_id INTEGER PRIMARY KEY, through INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history_meta (key TEXT PRIMARY KEY, value);
"""
)

# a later note of the same minute names a later pass
INSERT_DIRTY = RowInsert("INSERT OR REPLACE INTO history_dirty (series_id, bucket, pass) VALUES", 3)
# (a history made before notes named their pass)
ADD_PASS = "ALTER TABLE history_dirty ADD COLUMN pass INTEGER NOT NULL DEFAULT 0"
SET_META = "INSERT OR REPLACE INTO history_meta (key, value) VALUES (?, ?)"
_NUMBER = "CASE WHEN typeof({0}) IN ('integer', 'real') THEN {0} END"
# one run of minutes of one series (?1, from ?2, to ?3): first and last are the points at the
# group's min(ts) and max(ts), found by their key
# A pass is a few statements over the runs it owes, put in temporary tables first (one
# statement each for all the series, not one per series: between two statements the writer
# must take the GIL back from the busy event loop, which can take the switch interval).
TEMP_SCHEMA = """
CREATE TEMP TABLE IF NOT EXISTS slice_series (series_id INTEGER PRIMARY KEY);
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
DELETE FROM history_dirty WHERE pass <= ? AND EXISTS (
    SELECT 1 FROM temp.pass_minutes AS r WHERE r.series_id = history_dirty.series_id
    AND history_dirty.bucket >= r.lo AND history_dirty.bucket < r.hi
)
"""
# the staged values moved to the points in the order they came (a later one replaces an
# earlier at the same millisecond)
_SETTLE_SELECT = (
    "INSERT OR REPLACE INTO history_points (series_id, ts, value) "
    "SELECT series_id, ts, value FROM history_staged"
)
SETTLE = (_SETTLE_SELECT + " ORDER BY rowid", "DELETE FROM history_staged")
# a slice of what is staged (``sqlite.settle_some``): the series with the oldest values, in
# turn, until they hold ?1 values below rowid ?2, put in temp.slice_series; then their values
# below that rowid (each run with it) moved together, a page written for each series
SLICE_SERIES = (
    "DELETE FROM temp.slice_series",
    "INSERT INTO temp.slice_series SELECT series_id FROM ("
    " SELECT series_id, sum(count(*)) OVER (ORDER BY min(rowid)) - count(*) AS before"
    " FROM history_staged WHERE rowid < ?2 GROUP BY series_id"
    ") WHERE before < ?1",
)
_OF_SLICE = " WHERE rowid < ? AND series_id IN temp.slice_series"
SETTLE_A_SLICE = (
    _SETTLE_SELECT + _OF_SLICE + " ORDER BY rowid",
    "DELETE FROM history_staged" + _OF_SLICE,
)
_SET_ROLLED = RowInsert("INSERT OR REPLACE INTO history_rolled (series_id, through) VALUES", 2)
SQL_VARIABLES = 30_000  # under SQLite's 32,766 bound parameters per statement

Parts = list[tuple[str | RowInsert, Sequence[Sequence[Any]]]]
ONCE: list[tuple[()]] = [()]  # the rows of a statement run once


def pass_parts(plan: Pass, days: TownDays) -> Parts:
    """The minutes recomputed from their points, then their hours from their minutes and their
    days from their hours (or minutes), the notes on disk they settle, the marks moved up.
    Every pass here is a full and whole one: passes run in the writer, not beside it, so there
    is no backlog pass and no share of one; and every minute is written with INSERT OR REPLACE
    (``written`` is not looked at)."""
    if plan.number is None or plan.share != (0, 1):
        raise ValueError("SQLite's history has no backlog passes, nor passes shared out")
    minute_runs = plan.minutes
    hour_runs, day_runs = rolled_runs(plan.hours, plan.days, days)
    marks, number = plan.marks, plan.number
    return [
        *[(statement, ONCE) for statement in SETTLE],  # (the values staged before it)
        *_CLEAR_RUNS,
        (_PUT_MINUTES, minute_runs),
        (_PUT_HOURS, hour_runs),
        (_PUT_DAYS, day_runs),
        (_MINUTES_FROM_POINTS, ONCE),
        (_HOURS_FROM_MINUTES, ONCE),
        (_DAYS_FROM_HOURS, ONCE),
        (_DAYS_FROM_MINUTES, ONCE),
        (_DELETE_DIRTY, [(number,)]),
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
    noted = conn.execute("SELECT series_id, bucket FROM history_dirty")
    owed = {minute_key(series_id, minute) for series_id, minute in noted}
    sql = "SELECT DISTINCT ts - ts % 60000 FROM history_points WHERE series_id = ? AND ts >= ?"
    for series_id in series_ids:
        for (minute,) in conn.execute(sql, (series_id, through.get(series_id, LOWEST))):
            owed.add(minute_key(series_id, minute))
    if not owed:
        return
    conn.execute("BEGIN")
    run_parts(conn, pass_parts(recovery_pass(owed, through), days))
    conn.execute("COMMIT")


def rebuild_days(conn: sqlite3.Connection, days: TownDays) -> None:
    """The day rollups made again from the hours (and minutes) for every day that has values:
    the town's time zone changed, or the history predates day rollups."""
    conn.executescript(TEMP_SCHEMA)
    runs = day_runs_of_hours(conn.execute("SELECT series_id, bucket FROM history_hours"), days)
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


def composed(
    conn: sqlite3.Connection, ids: list[int], pieces: list[Piece], aggregates: Sequence[str]
) -> dict[int, dict[str, Any]]:
    """An aggregate over the parts of its range that ``rollups.plan`` chose, merged per
    bucket (``rollups.compose``); a range one table answers is read as it is."""
    if len(pieces) == 1:
        return aggregate(conn, ids, pieces[0].buckets, aggregates, pieces[0].table)
    asked = asked_of_pieces(aggregates)
    return compose(
        [aggregate(conn, ids, piece.buckets, asked, piece.table) for piece in pieces], aggregates
    )


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
    scan, folded into the calendar's buckets by ``fold_calendar``."""
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
    return fold_calendar(rows, edges, buckets.bounds, aggregates)
