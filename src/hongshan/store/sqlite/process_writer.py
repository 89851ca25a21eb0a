"""The SQLite writer in a process of its own, for a store whose writing would otherwise take the
GIL from the event loop: the history's, which writes every value the town sends.

The same contract as ``SQLiteWriter`` (queue without waiting, group commit, ``committed()``
markers, each item told its own outcome), but the transactions run in a child process started
at the first write. The loop sends it frames over a socket pair (a length, then msgpack) and
reads what it answers with ``add_reader``: per batch its outcome, then each item's, then each
marker's, in order. Encoding a loop turn's rows costs the loop far less than binding them in a
thread that must win the GIL back from it for every statement.

If the child dies, everything waiting on it fails (``StoreUnavailable``) and the next write
starts another. If the parent dies, the child finishes what it was given and exits.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import multiprocessing
import os
import select
import socket
import sqlite3
import struct
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from hongshan.failure_log import FailureLog
from hongshan.store.markers import (
    Marker,
    Markers,
    OwedFailure,
    tell,
    written_after_last_marker,
)
from hongshan.store.sqlite.writer import RowInsert, Rows, connect, write_parts

log = logging.getLogger("hongshan.store")

_LENGTH = struct.Struct("!I")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_BATCH_LIMIT = 20_000  # frames a transaction takes at most
CLOSE_TIMEOUT = 60.0  # seconds the child has to finish what it was given when asked to stop
# batches after which the idle work gets a turn even though more waits (a writer never idle
# would otherwise leave it to pile up)
IDLE_AT_LEAST_EVERY = 50


class ProcessWriter:
    def __init__(
        self,
        path: str | Path,
        *,
        loop: asyncio.AbstractEventLoop,
        setup: Sequence[str] = (),
        idle: Callable[[sqlite3.Connection], bool] | None = None,
    ) -> None:
        """``setup``: scripts the child runs on its connection first (pragmas, temp tables).
        ``idle``: work the child does while nothing is waiting, and after every
        ``IDLE_AT_LEAST_EVERY`` batches regardless (a module's function: it is given to the
        child by name), each call a transaction of its own, again while it says it did some.
        May be made off the loop; the child starts with the first write."""
        self.path = str(path)
        self._loop = loop
        self._setup = list(setup)
        self._idle = idle
        self.error: str | None = None  # why the last batch failed; None once one commits
        self.commits = 0
        self._process: Any = None
        self._sock: socket.socket | None = None
        self._out = bytearray()  # frames not yet taken by the socket
        self._in = bytearray()
        self._ids = itertools.count(1)
        self._outcomes: dict[int, Callable[[bool], None]] = {}
        self._markers = Markers(loop)
        self._sent: collections.deque[Marker] = collections.deque()  # markers not answered
        self._closed: asyncio.Future[None] | None = None
        self._owed: str | None = None  # a dead child's failure, owed to the next marker

    # -- queueing (event loop) ----------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self._closed is not None:
            return
        self._send(("e", sql, params))
        self._markers.dirty = True

    def executemany(
        self, *parts: tuple[str | RowInsert, Rows], outcome: Callable[[bool], None] | None = None
    ) -> None:
        if self._closed is not None:  # closing or closed: not written
            if outcome is not None:
                tell(outcome, False)
            return
        item = 0
        if outcome is not None:
            item = next(self._ids)
            self._outcomes[item] = outcome
        encoded = [
            (sql.head, sql.width, rows) if isinstance(sql, RowInsert) else (sql, -1, rows)
            for sql, rows in parts
        ]
        self._send(("m", item, encoded))
        self._markers.dirty = True

    def committed(self) -> Awaitable[None]:
        def queue(marker: Marker) -> None:
            self._sent.append(marker)
            self._send(("k",))

        return self._markers.committed(queue)

    async def close(self) -> None:
        if self._sock is None:
            return
        self._closed = self._loop.create_future()
        self._send(("s",))
        process = self._process
        try:  # the child's last answers read, its end of the socket closed
            await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT)
        except TimeoutError:
            log.error("the writer process of %s did not stop: ended", self.path)
            process.kill()
            await asyncio.wait([self._closed], timeout=CLOSE_TIMEOUT)  # what waits is told
        await asyncio.to_thread(process.join, CLOSE_TIMEOUT)

    # -- the socket ---------------------------------------------------------------------------

    def _send(self, frame: tuple[Any, ...]) -> None:
        if self._sock is None:
            if self._closed is not None:  # closed: no new child
                return
            self._start()
        body = _encode(frame)
        self._out += _LENGTH.pack(len(body))
        self._out += body
        if len(self._out) == len(body) + _LENGTH.size:  # nothing was waiting: try now
            self._write()

    def _start(self) -> None:
        parent, child = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=_child,
            args=(self.path, child, self._setup, self._idle),
            name=f"hongshan-writer:{Path(self.path).name}",
            daemon=True,
        )
        self._process.start()
        child.close()
        parent.setblocking(False)
        self._sock = parent
        self._loop.add_reader(parent.fileno(), self._read)

    def _write(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            sent = sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return  # the child is gone: its end is read to EOF, which fails what waits
        del self._out[:sent]
        if self._out:
            self._loop.add_writer(sock.fileno(), self._drain)

    def _drain(self) -> None:
        sock = self._sock
        assert sock is not None
        self._loop.remove_writer(sock.fileno())
        self._write()

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            data = sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._ended()
            return
        self._in += data
        for frame in _frames(self._in):
            self._answer(_decode(frame))

    def _answer(self, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == "b":  # a batch's outcome: its error, or None
            if frame[1] is None:
                self.commits += 1
            self.error = frame[1]
        elif kind == "o":  # an item's
            tell(self._outcomes.pop(frame[1]), frame[2])
        elif kind == "k":  # the next marker's
            error, self._owed = frame[1] or self._owed, None
            self._markers.resolve([self._sent.popleft()], error)

    def _ended(self) -> None:
        """The child closed its end: it stopped as asked, or it died."""
        sock = self._sock
        assert sock is not None
        self._loop.remove_reader(sock.fileno())
        self._loop.remove_writer(sock.fileno())
        sock.close()
        self._sock = None
        self._out.clear()
        self._in.clear()
        if self._closed is not None:
            if not self._closed.done():
                self._closed.set_result(None)
        else:
            self.error = f"the writer process of {self.path} ended"
            # what it was given without a marker after it may be lost too: the next says so
            self._owed = self.error
            log.error("%s; what waited on it failed, the next write starts another", self.error)
        outcomes, self._outcomes = self._outcomes, {}
        for outcome in outcomes.values():
            tell(outcome, False)
        sent, self._sent = self._sent, collections.deque()
        self._markers.resolve(sent, self.error or "the writer process stopped")


def _frames(buffer: bytearray, limit: int | None = None) -> list[bytes]:
    """The complete frames at the start of ``buffer`` (``limit`` at most), taken out of it."""
    frames: list[bytes] = []
    at = 0
    while len(buffer) - at >= _LENGTH.size and (limit is None or len(frames) < limit):
        (size,) = _LENGTH.unpack_from(buffer, at)
        if len(buffer) - at - _LENGTH.size < size:
            break
        start = at + _LENGTH.size
        frames.append(bytes(buffer[start : start + size]))
        at = start + size
    del buffer[:at]
    return frames


# -- the child ----------------------------------------------------------------------------------


def _child(
    path: str,
    sock: socket.socket,
    setup: list[str],
    idle: Callable[[sqlite3.Connection], bool] | None,
) -> None:
    parent = os.getppid()
    failures = FailureLog(log, f"SQLite writes to {path}")  # (a full disk fails every batch)
    conn = connect(path)
    for script in setup:
        conn.executescript(script)
    buffer = bytearray()
    owed = OwedFailure()
    stopping = False
    sock.setblocking(True)
    busy = 0  # batches since the idle work last had a turn
    while not stopping:
        frames = _frames(buffer, _BATCH_LIMIT)  # the rest waits for the next transaction
        if idle is not None and busy >= IDLE_AT_LEAST_EVERY:  # never idle: its turn anyway
            if os.getppid() != parent:  # orphaned: a new server may be reading what is there
                break
            busy = 0
            _idle(conn, idle, failures)
        if not frames:  # wait for more, then take whatever else is there already
            if idle is not None and not _readable(sock):
                busy = 0
                if _idle(conn, idle, failures):
                    continue
            data = sock.recv(1 << 20)
            if not data:
                break  # the parent is gone: nothing more will come
            buffer += data
            while True:
                try:
                    more = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                if not more:
                    break
                buffer += more
            continue
        batch = [_decode(frame) for frame in frames]
        busy += 1
        stopping = any(frame[0] == "s" for frame in batch)
        answers: list[tuple[Any, ...]] = []
        markers = sum(1 for frame in batch if frame[0] == "k")
        if markers + stopping == len(batch):  # markers alone write nothing, and clear no error
            _answer_all(sock, [("k", told) for told in owed.answers(markers, None)])
            continue
        try:
            conn.execute("BEGIN")
            write_parts(conn, _parts(batch))
            if os.getppid() != parent:  # orphaned: a new server may be reading what is there
                conn.execute("ROLLBACK")
                break
            conn.execute("COMMIT")
            committed, error = True, None
            failures.succeeded()
        except sqlite3.Error as exc:
            error = f"SQLite write to {path} failed: {exc}"
            failures.failed(f"a batch of {len(batch)} items was rolled back: {exc}")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            committed = False
        answers.append(("b", error))
        answers += [("o", frame[1], committed) for frame in batch if frame[0] == "m" and frame[1]]
        after = written_after_last_marker(frame[0] == "k" for frame in batch if frame[0] != "s")
        answers += [("k", told) for told in owed.answers(markers, error, written_after=after)]
        _answer_all(sock, answers)
    conn.close()
    sock.close()


def _answer_all(sock: socket.socket, answers: list[tuple[Any, ...]]) -> None:
    """A batch's answers, framed, in one write."""
    sock.sendall(b"".join(_LENGTH.pack(len(b)) + b for b in map(_encode, answers)))


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def _idle(
    conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], bool], failures: FailureLog
) -> bool:
    """One transaction of idle work; whether it did some (a failure did none: it is not
    tried again until the next batch has been written)."""
    try:
        conn.execute("BEGIN")
        worked = work(conn)
        conn.execute("COMMIT")
        return worked
    except sqlite3.Error as exc:
        failures.failed(f"idle work failed: {exc}")
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return False


def _parts(batch: list[list[Any]]) -> Iterator[tuple[str | RowInsert, Rows]]:
    for frame in batch:
        if frame[0] == "m":
            for sql, width, rows in frame[2]:
                yield (RowInsert(sql, width) if width >= 0 else sql), rows
        elif frame[0] == "e":
            yield frame[1], [frame[2]]
