"""The one-writer-thread SQLite store: group commit and what ``committed()`` promises."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from hongshan.errors import StoreUnavailable
from hongshan.store.sqlite.writer import SQLiteWriter


async def test_committed_means_readable_from_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = SQLiteWriter(path, loop=asyncio.get_running_loop())
    writer.execute("CREATE TABLE t (x INTEGER)")
    for i in range(1000):
        writer.execute("INSERT INTO t VALUES (?)", (i,))
    await asyncio.wait_for(writer.committed(), 10)
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT COUNT(*) FROM t").fetchone() == (1000,)
    await writer.close()


async def test_committed_with_nothing_pending_is_immediate(tmp_path: Path) -> None:
    writer = SQLiteWriter(tmp_path / "w.db", loop=asyncio.get_running_loop())
    waiter = writer.committed()
    assert isinstance(waiter, asyncio.Future) and waiter.done()
    await writer.close()


async def test_waiters_share_a_marker_until_new_writes(tmp_path: Path) -> None:
    writer = SQLiteWriter(tmp_path / "w.db", loop=asyncio.get_running_loop())
    writer.execute("CREATE TABLE t (x INTEGER)")
    first, second = writer.committed(), writer.committed()
    writer.execute("INSERT INTO t VALUES (1)")
    third = writer.committed()
    await asyncio.wait_for(asyncio.gather(first, second, third), 10)
    await writer.close()


async def test_a_failed_batch_fails_its_waiters(tmp_path: Path) -> None:
    writer = SQLiteWriter(tmp_path / "w.db", loop=asyncio.get_running_loop())
    writer.execute("INSERT INTO missing_table VALUES (1)")
    with pytest.raises(StoreUnavailable, match="missing_table"):
        await asyncio.wait_for(writer.committed(), 10)
    # the writer goes on: the next batch commits
    writer.execute("CREATE TABLE t (x INTEGER)")
    await asyncio.wait_for(writer.committed(), 10)
    await writer.close()


async def test_latest_statement_per_key_supersedes_earlier_ones(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = SQLiteWriter(path, loop=asyncio.get_running_loop())
    writer.execute("CREATE TABLE r (topic TEXT PRIMARY KEY, value INTEGER)")
    await writer.committed()
    for i in range(10_000):
        writer.execute_latest(("r", "a"), "INSERT OR REPLACE INTO r VALUES ('a', ?)", (i,))
    # however fast they come, the queue holds about one entry for the key
    assert writer._queue.qsize() <= 2
    writer.execute_latest(("r", "b"), "INSERT OR REPLACE INTO r VALUES ('b', ?)", (1,))
    writer.execute_latest(("r", "b"), "DELETE FROM r WHERE topic = 'b'")
    await asyncio.wait_for(writer.committed(), 10)
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT topic, value FROM r").fetchall() == [("a", 9999)]
    await writer.close()


async def test_executemany_rows_commit_with_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    writer = SQLiteWriter(path, loop=asyncio.get_running_loop())
    writer.execute("CREATE TABLE t (x INTEGER, y TEXT)")
    writer.executemany(("INSERT INTO t VALUES (?, ?)", [(i, str(i)) for i in range(500)]))
    writer.executemany(("INSERT INTO t VALUES (?, ?)", [(500, "last")]))
    await asyncio.wait_for(writer.committed(), 10)
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT COUNT(*), MAX(x) FROM t").fetchone() == (501, 500)
    await writer.close()


async def test_a_waiter_whose_rows_failed_in_an_earlier_batch_is_told(tmp_path: Path) -> None:
    """The rows a waiter covers can fail in one batch while its marker lands in the next, which
    commits: the waiter must still hear of the failure, or an acknowledgement would promise
    rows that were rolled back."""
    writer = SQLiteWriter(tmp_path / "w.db", loop=asyncio.get_running_loop())
    writer.execute("CREATE TABLE t (x INTEGER)")
    await writer.committed()
    # rows of a table that exists go with the failing part: all or nothing
    writer.executemany(
        ("INSERT INTO t VALUES (?)", [(1,)]), ("INSERT INTO missing_table VALUES (?)", [(1,)])
    )
    await asyncio.to_thread(_wait_for_error, writer)  # that batch is over, no marker in it
    waiter = writer.committed()
    with pytest.raises(StoreUnavailable, match="missing_table"):
        await asyncio.wait_for(waiter, 10)
    writer.execute("INSERT INTO t VALUES (2)")
    await asyncio.wait_for(writer.committed(), 10)
    assert writer.error is None
    await writer.close()
    with sqlite3.connect(tmp_path / "w.db") as other:
        assert other.execute("SELECT x FROM t").fetchall() == [(2,)]


def _wait_for_error(writer: SQLiteWriter) -> None:
    deadline = time.monotonic() + 10
    while writer.error is None and time.monotonic() < deadline:
        time.sleep(0.001)
