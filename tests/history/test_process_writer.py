"""The SQLite writer process's loop (``process_writer._child``), run in a thread of the test
against a socket pair: what it does with batches that never stop coming."""

from __future__ import annotations

import socket
import sqlite3
import threading
from pathlib import Path

import msgspec
import pytest

from hongshan.store.sqlite import process_writer


def note_turn(conn: sqlite3.Connection) -> bool:
    """Idle work that notes each turn it gets."""
    conn.execute("INSERT INTO turns VALUES (1)")
    return False


def test_idle_work_gets_a_turn_while_batches_keep_coming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that always has more waiting still gives its idle work (moving staged values)
    a turn every ``IDLE_AT_LEAST_EVERY`` batches, so that work cannot pile up."""
    monkeypatch.setattr(process_writer, "_BATCH_LIMIT", 1)  # a frame a batch
    monkeypatch.setattr(process_writer, "IDLE_AT_LEAST_EVERY", 5)
    path = tmp_path / "w.db"
    with sqlite3.connect(path) as db:
        db.executescript("CREATE TABLE t (x); CREATE TABLE turns (x);")
    ours, theirs = socket.socketpair()
    encode = msgspec.msgpack.Encoder().encode
    frames = [encode(("m", 0, [("INSERT INTO t VALUES (?)", -1, [(n,)])])) for n in range(40)]
    frames.append(encode(("s",)))
    # all of it there before the loop starts: it never finds the socket empty
    ours.sendall(b"".join(process_writer._LENGTH.pack(len(f)) + f for f in frames))
    child = threading.Thread(
        target=process_writer._child, args=(str(path), theirs, [], note_turn), daemon=True
    )
    child.start()
    child.join(30)
    assert not child.is_alive()
    ours.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (40,)
        assert db.execute("SELECT count(*) FROM turns").fetchone()[0] >= 40 // 5 - 1
