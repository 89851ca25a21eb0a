"""``python -m bench.history``: the history stores' ingest against their raw anchors, and size.

On SQLite, two writers of the same rows on the same disk, one after the other, in a fresh
directory:

- **history**: ``SQLiteHistory.add_points`` as the pipeline calls it, one post of five values
  of one device at a time, round-robin over the devices, on an asyncio loop; the store gathers
  the rows and its writer process commits them (WAL, ``synchronous=FULL``). The loop yields
  every ``--turn`` posts, as a server does between reads, and never waits for a commit except
  at the end: the rate counts until everything is durable and the rollups are made.
- **raw sqlite3**: one connection, the same pragmas, a plain table ``(series, ts, value)``
  with an index on ``(series, ts)``, ``executemany`` of the same rows, one commit per
  ``--raw-batch`` rows (50,000 by default: large batches, the anchor at its fastest); and
  again with the page cache the store's writer sets itself (SQLite's default is 2 MiB), for
  comparison: the target is against the plain one.

Then the bytes per stored point: the history file's size (after a WAL checkpoint) over the
points in it.

On PostgreSQL (``--postgres URL``, the local server by default; ``--postgres ''`` skips it),
the same rows, each writer in a fresh schema of its own:

- **history**: ``PostgresHistory.add_points`` the same way; its writer task COPYs each batch
  into the weekly partitions of ``history_points`` (primary key (series, ts)) and commits;
- **raw asyncpg COPY**: one connection, a plain table ``(series integer, ts bigint, value
  double precision)`` with an index on ``(series, ts)``, ``copy_records_to_table`` of
  ``--raw-batch`` rows at a time, each its own transaction.

Each of the two starts from a ``CHECKPOINT``.

With ``--repeat N`` each pair (anchor, then history) runs N times, one pair after the other,
and the tables give the median of each and of the pairs' ratios, with every pair's ratio: the
host's speed drifts over a minute (a raw COPY alone ranged 428,000 to 602,000 rows/s in one
session), and a pair run back to back sees the same host.

Prints markdown tables; paste them into ``RESULTS.md`` with the date.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from hongshan.store.history.postgres import PostgresHistory
from hongshan.store.history.sqlite import WRITER_CACHE_KIB, SQLiteHistory

PROPERTIES = ("LightSwitch", "Brightness", "Voltage", "Energy", "WorkMode")
T0 = 1_764_547_200_000


def values(post: int, device: int) -> list[tuple[str, int, object]]:
    ts = T0 + post * 10_000  # every device posts every 10 s
    return [
        ("LightSwitch", ts, post % 2),
        ("Brightness", ts, (post + device) % 100),
        ("Voltage", ts, 220.0 + (post % 50) / 10),
        ("Energy", ts, 1024.25 + post * 0.01),
        ("WorkMode", ts, device % 3),
    ]


async def through_history(
    history: SQLiteHistory | PostgresHistory, devices: int, posts: int, turn: int
) -> float:
    names = [("a1BenchLamp", f"lamp-{i:05d}") for i in range(devices)]
    started = time.perf_counter()
    count = 0
    for post in range(posts):
        for i, device in enumerate(names):
            history.add_points(device, values(post, i))
            count += 1
            if count % turn == 0:
                await asyncio.sleep(0)  # a loop turn: the store hands its rows to the writer
    await history.committed()
    await history.rolled_up()  # the rollups' work is part of ingest: counted until it is done
    elapsed = time.perf_counter() - started
    await history.close()
    return elapsed


def raw_batches(devices: int, posts: int, batch: int) -> Iterator[list[tuple[int, int, object]]]:
    """The raw anchors' rows (series, ts, value), ``batch`` or a few more at a time: the same
    values the history is given, each device's properties numbered as series."""
    rows: list[tuple[int, int, object]] = []
    for post in range(posts):
        for i in range(devices):
            for n, (_, ts, value) in enumerate(values(post, i)):
                rows.append((i * len(PROPERTIES) + n, ts, value))
            if len(rows) >= batch:
                yield rows
                rows = []
    if rows:
        yield rows


def through_sqlite(
    directory: Path, devices: int, posts: int, batch: int, cache_kib: int | None = None
) -> float:
    path = directory / ("raw.db" if cache_kib is None else "raw-cached.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")
    conn.execute("CREATE TABLE raw (series INTEGER NOT NULL, ts INTEGER NOT NULL, value)")
    conn.execute("CREATE INDEX raw_series_ts ON raw (series, ts)")
    started = time.perf_counter()
    for rows in raw_batches(devices, posts, batch):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO raw VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def through_copy(url: str, devices: int, posts: int, batch: int) -> float:
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE TABLE raw (series integer NOT NULL, ts bigint NOT NULL, value double precision)"
    )
    await conn.execute("CREATE INDEX raw_series_ts ON raw (series, ts)")
    started = time.perf_counter()
    for rows in raw_batches(devices, posts, batch):
        await conn.copy_records_to_table("raw", records=rows)
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


async def on_postgres(
    url: str, devices: int, posts: int, turn: int, batch: int
) -> tuple[float, float, float]:
    """(raw seconds, history seconds, history bytes per point), each in a fresh schema."""
    admin = await asyncpg.connect(url)
    schemas = [f"bench_{name}_{os.getpid()}" for name in ("raw", "history")]
    for schema in schemas:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    joiner = "&" if "?" in url else "?"
    raw_url, history_url = (f"{url}{joiner}search_path={schema}" for schema in schemas)
    try:
        # each run starts from a checkpoint: one that falls due in the middle of a run (the WAL
        # past max_wal_size) slows whichever run it falls in
        await admin.execute("CHECKPOINT")
        raw_s = await through_copy(raw_url, devices, posts, batch)
        history = await PostgresHistory.open(history_url)
        await admin.execute("CHECKPOINT")
        history_s = await through_history(history, devices, posts, turn)  # (closes it)
        size = await admin.fetchval(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class AS c "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind = 'r'",
            schemas[1],
        )
    finally:
        for schema in schemas:
            await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()
    return raw_s, history_s, size / (devices * posts * len(PROPERTIES))


def stored_bytes(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (points,) = conn.execute("SELECT count(*) FROM history_points").fetchone()
    conn.close()
    return path.stat().st_size, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=400, help="per device")
    parser.add_argument("--turn", type=int, default=200, help="posts per loop turn")
    parser.add_argument("--raw-batch", type=int, default=50_000, help="rows per raw commit")
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs (medians given)")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to measure on ('' to skip)",
    )
    options = parser.parse_args()
    rows = options.devices * options.posts * len(PROPERTIES)
    pairs: list[tuple[float, float]] = []  # (raw seconds, history seconds)
    sizes: list[tuple[float, float]] = []  # (history, raw) bytes per point
    cached: list[float] = []
    for _ in range(options.repeat):
        with tempfile.TemporaryDirectory(dir=options.dir) as where:
            directory = Path(where)
            raw_s = through_sqlite(directory, options.devices, options.posts, options.raw_batch)
            cached.append(
                through_sqlite(
                    directory, options.devices, options.posts, options.raw_batch, WRITER_CACHE_KIB
                )
            )
            history_s = asyncio.run(
                _sqlite_history(directory, options.devices, options.posts, options.turn)
            )
            size, points = stored_bytes(directory / "history.db")
            pairs.append((raw_s, history_s))
            sizes.append((size / points, (directory / "raw.db").stat().st_size / rows))
    print(
        f"{rows:,} points: {options.devices:,} devices x {options.posts} posts x "
        f"{len(PROPERTIES)} properties; {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores; {options.repeat} pair(s) of runs, medians\n"
    )
    print("| metric | raw sqlite3 | history | history / raw | target | |")
    print("|---|---:|---:|---:|---|---|")
    _ingest_row(rows, pairs, 0.9)
    cached_rate = rows / statistics.median(cached)
    history_rate = rows / statistics.median(h for _, h in pairs)
    print(
        f"| ingest rows/s, raw with the store's {WRITER_CACHE_KIB // 1024} MiB page cache "
        f"| {cached_rate:,.0f} | {history_rate:,.0f} | {history_rate / cached_rate:.2f} | | |"
    )
    per_point = statistics.median(h for h, _ in sizes)
    raw_per_point = statistics.median(r for _, r in sizes)
    ok = "✅" if per_point <= 30 else "❌"
    print(
        f"| bytes per point | {raw_per_point:.1f} | {per_point:.1f} | "
        f"{per_point / raw_per_point:.2f} | ≤ 30 | {ok} |"
    )

    if not options.postgres:
        return
    pairs, pg_sizes = [], []
    try:
        for _ in range(options.repeat):
            pg_raw_s, pg_history_s, pg_per_point = asyncio.run(
                on_postgres(
                    options.postgres,
                    options.devices,
                    options.posts,
                    options.turn,
                    options.raw_batch,
                )
            )
            pairs.append((pg_raw_s, pg_history_s))
            pg_sizes.append(pg_per_point)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"\nPostgreSQL skipped: {exc}")
        return
    print("\n| metric (PostgreSQL) | raw asyncpg COPY | history | history / raw | target | |")
    print("|---|---:|---:|---:|---|---|")
    _ingest_row(rows, pairs, 0.8)
    print(f"| bytes per point, tables and indexes | | {statistics.median(pg_sizes):.1f} | | | |")


def _ingest_row(rows: int, pairs: list[tuple[float, float]], target: float) -> None:
    """The ingest row: the median rates, the median of the pairs' ratios (each pair's too, if
    more than one)."""
    raw_rate = rows / statistics.median(raw for raw, _ in pairs)
    history_rate = rows / statistics.median(history for _, history in pairs)
    ratios = [raw / history for raw, history in pairs]
    ratio = statistics.median(ratios)
    ok = "✅" if ratio >= target else "❌"
    each = f" (pairs: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""
    print(
        f"| ingest rows/s | {raw_rate:,.0f} | {history_rate:,.0f} | {ratio:.2f}{each} "
        f"| ≥ {target} | {ok} |"
    )


async def _sqlite_history(directory: Path, devices: int, posts: int, turn: int) -> float:
    history = SQLiteHistory(directory / "history.db", loop=asyncio.get_running_loop())
    return await through_history(history, devices, posts, turn)


if __name__ == "__main__":
    main()
