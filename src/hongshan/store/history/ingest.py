"""The event-loop side of a history store, whatever the backend: rows gathered each loop turn
and handed to the store's one writer as one item, committed together or not at all (so a resend
after a crash finds either all of a message or none), the catalogue of devices and series, the
memory of taken messages, the rollup passes and retention.

Devices and series get small integers, assigned here and kept in memory, so a point is three
numbers: (series, ts, value), the value as the store keeps it (``to_stored``). The catalogue
rows a turn makes go in the same item as the rows that name them. A backend gives its writer
(``Writer``), its statements (``Statements``), what it read at open (``Loaded``), how a rollup
pass is written, and answers the reading half of ``HistoryStore`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec

from hongshan.errors import StoreUnavailable
from hongshan.messages import DeviceRef, Uplink
from hongshan.store.history import replay as replaying
from hongshan.store.history import rollups
from hongshan.store.history.commit_times import CommitTimes
from hongshan.store.history.model import (
    NUMERIC_AGGREGATES,
    Buckets,
    Device,
    HistoryProblem,
    LogEntry,
    LogKind,
    LogPage,
    SeriesInfo,
    cursor_of,
)
from hongshan.store.history.retention import Retention, Step, Sweeper
from hongshan.store.history.taken import TakenKeys

log = logging.getLogger("hongshan.history")

TAKEN_WINDOW_MS = 10 * 60_000  # resends looked for: this long before the newest taken message
TAKEN_KEPT_MS = 60 * 60_000  # taken keys older than this are deleted
PRUNE_EVERY = 60.0  # seconds between deletions of old taken keys
# seconds between rollup passes while values come in: a pass recomputes every hour and day it
# touches from its minutes and hours, so fewer passes repeat less of that; a query that reads
# rollups brings them up to date first (``rolled_up``), so none is ever read stale
ROLLUP_EVERY = 10.0
# minutes owed that start a backlog pass at once where passes run beside the writer
# (PostgreSQL): under a backlog (a town catching up, history posts) the minutes are rolled up a
# part at a time while the rest is still being written, on the database's other core, rather
# than all after; each hour once its series has minutes after it, the days by the next full pass
PASS_BACKLOG = 100_000
# values a flush may hold and still be staged (``Statements.staged``): each series' values
# lie together in the points' B-tree, so a small transaction there writes a whole page for each
# value; staged, a value costs a row at the end of one table. The writer moves them across a
# slice of the series at a time between batches (``sqlite.settle_some``), and all of them with
# a rollup pass or a large flush and before a raw aggregate or a retention pass; a page of
# points reads them where they are
STAGE_BELOW = 500
# minutes, hours and days a full pass owes from which it is shared out among the writers of
# passes (PostgreSQL): the database computes each share in a process of its own, on as many
# cores; below it, one statement a kind costs less than two
SHARE_FROM = 10_000
# seconds rows nobody waits for may gather before they go to the writer (a crash may lose them:
# nothing acknowledged them)
FLUSH_EVERY = 0.05
CLOSE_WAIT = 30.0  # seconds closing waits for the last rollup pass
# seconds after a failed write before a probe (a one-row write of its own) tries again, and
# again while it fails: the problem health reports clears only when a write commits, and in a
# quiet hour none may come for long after the disk has room again
PROBE_AFTER = 1.0
INT64 = 1 << 63
# longer property names are not kept (Alibaba's thing models allow 50 characters; a product
# without one takes any key, and PostgreSQL cannot index one of thousands)
MAX_IDENTIFIER = 128

_json = msgspec.json.Encoder()
_unjson = msgspec.json.Decoder()


class Writer(Protocol):
    """One writer per store: what is queued runs in order, a batch per transaction."""

    error: str | None  # why the last batch failed; None once one commits
    commits: int  # transactions committed (for tests and benchmarks)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(
        self, *parts: tuple[Any, Sequence[Sequence[Any]]], outcome: Callable[[bool], None] | None
    ) -> None: ...

    def committed(self) -> Awaitable[None]: ...

    async def close(self) -> None: ...


class Statements(NamedTuple):
    """A backend's statements: the inserts take rows, the others are run with parameters."""

    device: Any  # (id, product_key, device_name); an existing one is left as it is
    series: Any  # (id, device_id, identifier, kind); likewise
    point: Any  # (series_id, ts, stored value); replaces one at the same millisecond
    dirty: Any  # (series_id, minute, pass) of a value below its series' mark
    log: Any  # (device_id, ts, seq, kind, identifier, body as JSON bytes)
    taken: Any  # (ts, device_id, key)
    prune_taken: str  # (oldest ts kept)
    set_retention: str  # (product_key, raw_days, rollup_days)
    delete_retention: str  # (product_key)
    set_meta: str  # (key, value)
    # where a flush of fewer than STAGE_BELOW values puts them (appended in arrival order),
    # and what moves them all to ``point``'s table; None: always ``point``
    staged: Any = None
    settle: Sequence[str] = ()


class Loaded(NamedTuple):
    """What a backend read at open."""

    devices: dict[Device, int]
    series: dict[Device, dict[str, tuple[int, str]]]  # identifier -> (series id, kind)
    taken: list[tuple[Device, bytes]]  # keys of the minutes before the last taken, oldest first
    through: dict[int, int]  # each series' rollup mark
    retention: dict[str, Retention]


class Series:
    """A series as the event loop knows it: its id and the kind of its first value, and the
    minute it last noted owed a pass, while which pass was next (``Ingest.add_points``: most
    values fall in the minute of the one before, and are not noted again)."""

    __slots__ = ("id", "key", "kind", "minute", "noted_for")

    def __init__(self, series_id: int, kind: str) -> None:
        self.id = series_id
        self.kind = kind
        self.key = rollups.minute_key(series_id, 0)  # its minutes' keys: this + their index
        self.minute = 0
        self.noted_for = -1  # (``Rollups.taken`` then)


def owner(names: dict[int, Device], device_id: int) -> Device:
    """The device of a catalogue id read at open; one whose row was lost (a store written
    before its rows were kept until committed) gets a name of its own, so that its series
    keep their ids and no new series is given one of them."""
    return names.get(device_id) or ("", f"lost-device-{device_id}")


def log_after(cursor: str | None, start: int) -> tuple[int, ...]:
    """The (ts, seq) a page of the log starts after."""
    return cursor_of(cursor, 2) or (start - 1, INT64 - 1)


def log_page(rows: Sequence[Any], limit: int) -> LogPage:
    """A page of the log from up to ``limit + 1`` rows (ts, seq, kind, identifier, body as
    JSON): one more than the page means there is another."""
    entries = [
        LogEntry(ts, LogKind(kind), identifier, _unjson.decode(body))
        for ts, _, kind, identifier, body in rows[:limit]
    ]
    last = rows[limit - 1] if len(rows) > limit else None
    return LogPage(entries=entries, next=f"{last[0]}:{last[1]}" if last else None)


def kind_of(value: Any) -> str:
    kind = type(value)
    if kind is bool:
        return "bool"
    if kind is int:
        return "int"
    if kind is float:
        return "float"
    if kind is str:
        return "text"
    return "json"


def _copy_outcome(into: asyncio.Future[None], done: asyncio.Future[None]) -> None:
    """``done``'s outcome told to ``into`` (unless it is over already)."""
    error = None if done.cancelled() else done.exception()
    if into.done():
        return
    if error is None:
        into.set_result(None)
    else:
        into.set_exception(error)


def to_stored(value: Any) -> Any:
    """A value as the stores keep it: numbers and text as they are (an integer beyond 64
    bits as a float), booleans as 0/1, structs and arrays as JSON bytes."""
    kind = type(value)
    if kind is float or kind is str:
        return value
    if kind is bool:
        return int(value)
    if kind is int:
        return value if -INT64 <= value < INT64 else float(value)
    return _json.encode(value)


class Ingest:
    """The event-loop half of a history store, shared by both backends (they subclass it):
    the batch being gathered and its commit waiters, the catalogue of devices and series,
    idempotency keys, rollup passes and retention's cutoffs. Never does IO itself: its
    backend's writer does."""

    def __init__(
        self,
        writer: Writer,
        statements: Statements,
        loaded: Loaded,
        *,
        loop: asyncio.AbstractEventLoop,
        days: rollups.TownDays,
        pass_parts: rollups.PassParts,
        retention: Retention | None,
        pass_writers: Sequence[Writer] = (),
    ) -> None:
        self._loop = loop
        self._writer = writer
        # where rollup passes run: the writer, or writers of their own that run them while the
        # writer goes on (each pass once the writer has committed what came before it); a
        # large full pass is shared out among them, a share of the series each (``SHARE_FROM``)
        self._pass_writers = pass_writers
        self._sql = statements
        self._days = days  # the day rollups are the town's days
        self.default_retention = retention or Retention()
        self._devices = loaded.devices
        self._series = {
            device: {name: Series(*found) for name, found in known.items()}
            for device, known in loaded.series.items()
        }
        self._next_device = itertools.count(max(self._devices.values(), default=0) + 1)
        self._next_series = itertools.count(
            max((s.id for known in self._series.values() for s in known.values()), default=0) + 1
        )
        self._seq = itertools.count(int(time.time() * 1000))  # unique across restarts
        self._taken_keys = TakenKeys(loop)
        self._taken_keys.restore(loaded.taken)
        self._points: list[tuple[int, int, Any]] = []
        self._log: list[tuple[int, int, int, str, str, bytes]] = []
        self._taken: list[tuple[int, int, bytes]] = []
        self._taken_by: list[tuple[Device, bytes]] = []  # the same keys, by device
        # catalogue rows not yet known committed: every item carries them (they are ignored
        # where already there) until one that does commits, so no row that names them can
        # commit without them, whatever failed before
        self._unconfirmed_devices: dict[int, tuple[int, str, str]] = {}
        self._unconfirmed_series: dict[int, tuple[int, int, str, str]] = {}
        self._refused: set[tuple[Device, str]] = set()  # identifiers said to be too long
        # a flush waiting for company: set while rows are gathered and not yet handed over
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_now: asyncio.Handle | None = None  # a flush this loop turn
        self._commit_waiters: list[asyncio.Future[None]] = []  # committed() of this turn
        self._pruned_at = time.monotonic()
        self._arrived: dict[int, int] = {}  # series -> the last arrival time given to a value
        # minutes of values out of order, noted on disk: (series, minute, pass to settle it)
        self._late: list[tuple[int, int, int]] = []
        self._rollups = rollups.Rollups(loaded.through, days, pass_parts)
        self._rollup: asyncio.TimerHandle | None = None
        self._last_pass: asyncio.Future[None] | None = None
        # flushes whose values were staged (``STAGE_BELOW``), and how many of the first of them
        # a committed move has taken to the points
        self._staged = self._moved = 0
        self._settle = [(statement, [()]) for statement in statements.settle]  # (run once each)
        self._backlog_held = False  # since a pass failed, until one commits: no backlog pass
        # callers of a pass while one runs (SQLite), answered by the next
        self._passes_wanted: list[asyncio.Future[None]] | None = None
        self._closed = False  # the writers closed: no pass is started any more
        self._probe: asyncio.TimerHandle | None = None  # a probe after a failed write
        self.commit_times = CommitTimes()  # each flush's, for the metrics
        self._retention = loaded.retention
        self.sweeper = Sweeper(writer, loop, self._retention_steps)

    # -- writing ----------------------------------------------------------------------------

    def add_points(
        self, device: Device, points: Iterable[tuple[str, int, Any]], *, arrival: bool = False
    ) -> None:
        known = self._series.get(device)
        if known is None:
            known = self._series[device] = {}
        rows, arrived = self._points, self._arrived
        dirty, through = self._rollups.dirty, self._rollups.through
        minute, taken = rollups.MINUTE, self._rollups.taken
        for identifier, ts, value in points:
            found = known.get(identifier)
            if found is None:
                found = self._new_series(device, identifier, value)
                if found is None:
                    continue
            series_id = found.id
            if arrival:
                # two values of a property arriving in one millisecond (a device sending its
                # backlog) must not replace each other: the later takes the next millisecond
                previous = arrived.get(series_id, 0)
                if ts <= previous:
                    ts = previous + 1
                arrived[series_id] = ts
            kind = type(value)
            if (
                kind is not float
                and kind is not str
                and (kind is not int or not -INT64 <= value < INT64)
            ):
                value = to_stored(value)
            rows.append((series_id, ts, value))
            index = ts // minute
            if index != found.minute or found.noted_for != taken:  # (a pass took them since)
                dirty.add(found.key + index)  # (rollups.minute_key)
                found.minute, found.noted_for = index, taken
            if ts < through.get(series_id, rollups.LOWEST):  # below the mark: noted on disk
                self._late.append((series_id, ts - ts % minute, self._rollups.passes + 1))
        if self._flush_timer is None:
            self._schedule_flush()
        if self._rollup is None:
            self._rollup = self._loop.call_later(ROLLUP_EVERY, self._roll_up)
        if len(dirty) >= PASS_BACKLOG and self._pass_writers and not self._backlog_held:
            self._pass(backlog=True)

    def add_log(self, device: Device, kind: LogKind, identifier: str, ts: int, body: Any) -> None:
        entry = (self._device_id(device), ts, next(self._seq), kind.value, identifier)
        self._log.append((*entry, _json.encode(body)))
        if self._flush_timer is None:
            self._schedule_flush()

    def add_taken(self, device: Device, key: bytes, ts: int) -> None:
        self._taken.append((ts, self._device_id(device), key))
        self._taken_by.append((device, key))
        self._taken_keys.add(device, key)
        if self._flush_timer is None:
            self._schedule_flush()

    def was_taken(self, device: Device, key: bytes) -> Awaitable[None] | None:
        return self._taken_keys.was_taken(device, key)

    def committed(self, *, hasten: bool = True) -> Awaitable[None]:
        """Done once everything added so far is durable. What was added goes to the writer at
        the end of this loop turn with whatever else is waiting, and one marker answers every
        waiter of the turn: a thousand QoS 1 posts a turn are one item and one marker, not a
        thousand. With ``hasten`` false it goes when it would have gone without a waiter
        (within ``FLUSH_EVERY``): to learn when rows nobody waits for are written."""
        if self._flush_timer is None:
            return self._writer.committed()
        if hasten and self._flush_now is None:
            self._flush_now = self._loop.call_soon(self._flush)
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._commit_waiters.append(waiter)
        return waiter

    def _answer_waiters(self) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []
        marker = self._writer.committed()

        def answer(done: Awaitable[None]) -> None:
            assert isinstance(done, asyncio.Future)
            for waiter in waiters:
                _copy_outcome(waiter, done)

        assert isinstance(marker, asyncio.Future)
        marker.add_done_callback(answer)

    @property
    def transactions(self) -> int:
        """How many transactions the writer has committed (for tests and benchmarks)."""
        return self._writer.commits

    @property
    def problem(self) -> str | None:
        """Why the last write failed, until one succeeds (for the health endpoint)."""
        if self._writer.error is None:
            return next((w.error for w in self._pass_writers if w.error is not None), None)
        return self._writer.error

    def _watch(self, committed: bool) -> None:
        """A write's outcome: after a failure, a probe ``PROBE_AFTER`` later (once at a time)."""
        if committed or self._probe is not None or self._closed:
            return
        self._probe = self._loop.call_later(PROBE_AFTER, self._send_probe)

    def _send_probe(self) -> None:
        """A one-row write to each writer whose last batch failed (unless one has committed
        since): committed, it clears the writer's error and health says the history writes
        again; failed, another follows ``PROBE_AFTER`` later."""
        self._probe = None
        if self._closed:
            return
        probe = (self._sql.set_meta, [("probed_at", str(int(time.time() * 1000)))])
        for writer in (self._writer, *self._pass_writers):
            if writer.error is not None:
                writer.executemany(probe, outcome=self._watch)

    def _device_id(self, device: Device) -> int:
        row_id = self._devices.get(device)
        if row_id is None:
            row_id = self._devices[device] = next(self._next_device)
            self._unconfirmed_devices[row_id] = (row_id, *device)
        return row_id

    def _new_series(self, device: Device, identifier: str, value: Any) -> Series | None:
        """A new series; None for an identifier too long to keep (said once)."""
        if len(identifier) > MAX_IDENTIFIER:
            if (device, identifier[:MAX_IDENTIFIER]) not in self._refused:
                if len(self._refused) < 10_000:
                    self._refused.add((device, identifier[:MAX_IDENTIFIER]))
                log.warning(
                    "history: %s/%s's property %.40r… is longer than %d characters: not kept",
                    *device,
                    identifier,
                    MAX_IDENTIFIER,
                )
            return None
        known = self._series[device]
        name = identifier
        if "\0" in identifier:
            # kept as U+FFFD (PostgreSQL's text cannot hold NUL), and known by both names
            name = identifier.replace("\0", "\ufffd")
            found = known.get(name)
            if found is not None:
                known[identifier] = found
                return found
        device_id = self._device_id(device)
        made = Series(next(self._next_series), kind_of(value))
        known[identifier] = known[name] = made
        self._unconfirmed_series[made.id] = (made.id, device_id, name, made.kind)
        return made

    def _schedule_flush(self) -> None:
        """Rows nobody waits for (a QoS 0 post's values, a status change) go to the writer
        within ``FLUSH_EVERY``, with the others that came meanwhile, unless a waiter
        (``committed``) sends them sooner: a writer woken, and a transaction committed, for
        every loop turn that logged a device in took the GIL from the event loop thousands of
        times a second."""
        self._flush_timer = self._loop.call_later(FLUSH_EVERY, self._flush)

    def _flush(self) -> None:
        """Hand what gathered to the writer as one item."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._flush_now is not None:
            self._flush_now.cancel()
            self._flush_now = None
        parts: list[tuple[Any, Sequence[Sequence[Any]]]] = []
        sql = self._sql
        devices = list(self._unconfirmed_devices.values())
        series = list(self._unconfirmed_series.values())
        point, moves = sql.point, None
        if sql.staged is not None and self._points:
            if len(self._points) < STAGE_BELOW:
                point = sql.staged
                self._staged += 1
            else:  # whatever is staged goes first, in this transaction: a later value replaces
                parts += self._settle
                moves = self._staged
        for statement, rows in (
            (sql.device, devices),
            (sql.series, series),
            (point, self._points),
            (sql.dirty, self._late),
            (sql.log, self._log),
            (sql.taken, self._taken),
        ):
            if rows:
                parts.append((statement, rows))
        if not parts:
            if self._commit_waiters:
                self._answer_waiters()
            return
        taken, taking = self._taken_by, self._taken_keys.take_turn()
        self._points, self._log, self._taken, self._taken_by = [], [], [], []
        self._late = []
        times = self.commit_times
        sent_at = times.sent()
        if taking is None and not devices and not series and moves is None:

            def watch(committed: bool) -> None:
                times.done(sent_at, committed)
                self._watch(committed)

            self._writer.executemany(*parts, outcome=watch)
        else:

            def settle(committed: bool) -> None:
                times.done(sent_at, committed)
                if committed and moves is not None:
                    self._moved_up_to(moves)
                if taking is not None:
                    self._taken_keys.settle(taken, taking, committed, self._writer.error)
                self._watch(committed)
                if committed:
                    for device_row in devices:
                        self._unconfirmed_devices.pop(device_row[0], None)
                    for series_row in series:
                        self._unconfirmed_series.pop(series_row[0], None)

            self._writer.executemany(*parts, outcome=settle)
        if self._commit_waiters:
            self._answer_waiters()
        now = time.monotonic()
        if now - self._pruned_at > PRUNE_EVERY:
            self._pruned_at = now
            self._writer.execute(sql.prune_taken, (int(time.time() * 1000) - TAKEN_KEPT_MS,))

    def _roll_up(self) -> asyncio.Future[None] | None:
        """A full rollup pass (the timer's)."""
        self._rollup = None
        return self._pass()

    def _next_pass(self, _: asyncio.Future[None]) -> None:
        """The pass asked for while the one before ran (SQLite)."""
        wanted, self._passes_wanted = self._passes_wanted or [], None
        if self._closed:  # (the one before outlasted the close's wait)
            for future in wanted:
                future.set_exception(StoreUnavailable("the history was closed"))
            return
        now = self._pass()
        for future in wanted:
            if now is None:
                future.set_result(None)
            else:
                now.add_done_callback(functools.partial(_copy_outcome, future))

    def _pass(self, backlog: bool = False) -> asyncio.Future[None] | None:
        """A rollup pass (after this turn's values in the writer's queue, so it sees them);
        a backlog one recomputes minutes and the hours behind them (``Rollups.take_pass``)."""
        running = self._last_pass
        if not self._pass_writers and running is not None and not running.done():
            # one pass at a time, planned once the one before is over: should that one fail,
            # its minutes are owed back to the next, not claimed by it (its marks)
            if self._passes_wanted is None:
                self._passes_wanted = []
                running.add_done_callback(self._next_pass)
            wanted: asyncio.Future[None] = self._loop.create_future()
            wanted.add_done_callback(lambda f: f.cancelled() or f.exception())
            self._passes_wanted.append(wanted)
            return wanted
        if not self._rollups.dirty and (backlog or not self._rollups.unrolled):
            return self._last_pass
        self._flush()
        moves = self._staged  # (a SQLite pass moves what is staged first)
        shares = 1
        if not backlog and len(self._pass_writers) > 1 and self._rollups.owes() >= SHARE_FROM:
            shares = len(self._pass_writers)
        try:
            parts, owed = self._rollups.take_pass(backlog, shares)
        except Exception:  # a fault of ours: what is owed stays owed, and is tried again
            log.exception("history: a rollup pass could not be made")
            return self._last_pass
        done: asyncio.Future[None] = self._loop.create_future()

        def outcome(committed: bool) -> None:
            if committed:
                self._backlog_held = False
                if not self._pass_writers:
                    self._moved_up_to(moves)
                done.set_result(None)
                return
            self._rollups.owe(owed)  # the next pass recomputes them
            self._watch(False)
            self._backlog_held = True  # (the timer tries again, not every post meanwhile)
            if self._rollup is None:
                self._rollup = self._loop.call_later(ROLLUP_EVERY, self._roll_up)
            done.set_exception(StoreUnavailable(self.problem or "rollup pass failed"))

        if not self._pass_writers:
            self._writer.executemany(*parts[0], outcome=outcome)
        else:
            writers = self._pass_writers
            told: list[bool] = []

            def told_one(committed: bool) -> None:
                """A share's outcome: the pass's is known once every share's is."""
                told.append(committed)
                if len(told) == len(parts):
                    outcome(all(told))

            # what came before it, committed (or failed: those values come again, and so
            # does their minute) before the pass reads it
            before = self._writer.committed()
            assert isinstance(before, asyncio.Future)
            previous = self._last_pass
            planned_after = previous is None or previous.done()

            def run(_: asyncio.Future[None]) -> None:
                if previous is not None and not previous.done():  # one pass at a time
                    previous.add_done_callback(run)
                    return
                if (
                    previous is not None
                    and not planned_after
                    and (previous.cancelled() or previous.exception() is not None)
                ):
                    # the pass before failed after this one was planned: this one's hours,
                    # marks and settled notes may count minutes that one never wrote; its
                    # own minutes are owed back with them, for the next pass
                    outcome(False)
                    return
                if before.cancelled() or before.exception() is not None:
                    # what came before may yet commit unseen (a COMMIT whose answer was
                    # lost): the next pass looks at these minutes again
                    self._rollups.owe(owed)
                for pass_writer, share in zip(writers, parts, strict=False):
                    pass_writer.executemany(*share, outcome=told_one)

            before.add_done_callback(run)
        # a failure nobody awaits is not reported again: the writer logged it
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._last_pass = done
        return done

    async def rolled_up(self) -> None:
        """Every value so far is in the rollups (a pass now if any is owed; again while an
        earlier pass that failed owes its minutes back)."""
        for _ in range(3):
            if self._rollup is not None:
                self._rollup.cancel()
                self._rollup = None
            passing = self._roll_up()
            if passing is not None:
                await asyncio.shield(passing)
            if not self._rollups.dirty and not self._rollups.unrolled:
                return

    def start(self) -> None:
        """Begin the background work that needs the running loop (retention passes)."""
        self.sweeper.start()

    # -- retention ----------------------------------------------------------------------------

    def retention(self, product_key: str) -> Retention:
        return self._retention.get(product_key, self.default_retention)

    async def set_retention(self, product_key: str, retention: Retention | None) -> None:
        """A product's own retention; None goes back to the default. Done once it is
        committed; if its write fails, ``StoreUnavailable`` and nothing changed. (Queued and
        taken at once, on a full disk it was answered, shown, and gone after a restart.)"""
        part: tuple[str, list[tuple[Any, ...]]]
        if retention is None:
            part = (self._sql.delete_retention, [(product_key,)])
        else:
            days = (retention.raw_days, retention.rollup_days)
            part = (self._sql.set_retention, [(product_key, *days)])
        written: asyncio.Future[bool] = self._loop.create_future()

        def outcome(committed: bool) -> None:
            if not written.done():
                written.set_result(committed)

        self._writer.executemany(part, outcome=outcome)
        if not await written:
            self._watch(False)
            raise StoreUnavailable(self.problem or "the history could not save the retention")
        # (in the order the writes committed: the writer keeps the order they were queued)
        if retention is None:
            self._retention.pop(product_key, None)
        else:
            self._retention[product_key] = retention

    def _cutoffs(
        self,
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
        """Retention's cutoffs now: (series, raw cutoff), (device, raw cutoff) for the log,
        (series, rollup cutoff), for whatever has one."""
        now = int(time.time() * 1000)
        points: list[tuple[int, int]] = []
        logs: list[tuple[int, int]] = []
        rolled: list[tuple[int, int]] = []
        for device, device_id in self._devices.items():
            raw, rollup = self.retention(device[0]).cutoffs(now)
            if raw is not None:
                logs.append((device_id, raw))
            for series_id in {found.id for found in self._series.get(device, {}).values()}:
                if raw is not None:
                    points.append((series_id, raw))
                if rollup is not None:
                    rolled.append((series_id, rollup))
        return points, logs, rolled

    async def _retention_steps(self) -> list[Step]:
        """What a retention pass deletes (each step a transaction of its own)."""
        raise NotImplementedError

    async def _close_writing(self) -> None:
        """The last rollup pass and rows written, and the store marked closed cleanly if the
        rollups are whole (else the next start redoes what they lack)."""
        self.sweeper.stop()
        if self._rollup is not None:
            self._rollup.cancel()
        last = self._roll_up()
        self._flush()
        self._move_staged()
        whole = True
        if last is not None:
            finished, _ = await asyncio.wait([last], timeout=CLOSE_WAIT)
            whole = bool(finished) and not last.cancelled() and last.exception() is None
        if self._rollup is not None:  # (re-armed by a pass that failed)
            self._rollup.cancel()
            self._rollup = None
        for pass_writer in self._pass_writers:
            await pass_writer.close()
        if whole and not self._rollups.dirty and not self._rollups.unrolled:
            self._writer.execute(self._sql.set_meta, ("clean", "1"))
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self._taken_keys.close()
        await self._writer.close()

    # -- reading ------------------------------------------------------------------------------

    async def series(self, device: Device) -> list[SeriesInfo]:
        known = self._series.get(device, {})
        return [
            SeriesInfo(identifier, found.kind)
            for identifier, found in sorted(known.items())
            if "\0" not in identifier  # (also known by its stored name)
        ]

    async def replay(
        self,
        start: int,
        end: int,
        *,
        product: str | None = None,
        device: Device | None = None,
        chunk: int = replaying.CHUNK,
    ) -> AsyncIterator[list[Uplink]]:
        """What was recorded in [start, end) of one device, a product's devices or all, as
        uplinks in time order, a chunk at a time (``replay``; what cannot be replayed is said
        there)."""
        await self._settled()  # (staged values are read with the points)
        chosen = {
            device_id: DeviceRef(*known)
            for known, device_id in self._devices.items()
            if (device is None or known == device) and (product is None or known[0] == product)
        }
        series = {
            series_id: (chosen_device, identifier, kind)
            for series_id, (known, identifier, kind) in self._series_names().items()
            if (chosen_device := chosen.get(self._devices.get(known, -1))) is not None
        }
        async for uplinks in replaying.replay(
            self._replay_window,
            series,
            chosen,
            self._decode,
            start,
            end,
            chunk=chunk,
            plain=self._plain_kinds,
        ):
            yield uplinks

    async def _replay_window(
        self,
        series: Sequence[int],
        devices: Sequence[int],
        start: int,
        end: int,
        cap: int | None,
    ) -> replaying.Window | None:
        """The backend's points of ``series`` and log lines of ``devices`` in [start, end),
        None when more than ``cap``."""
        raise NotImplementedError

    @staticmethod
    def _decode(kind: str, value: Any) -> Any:
        """A value as posted, from the backend's stored form and its series' kind."""
        raise NotImplementedError

    _plain_kinds: frozenset[str] = frozenset()  # kinds whose values are read as posted

    def _series_names(self) -> dict[int, tuple[Device, str, str]]:
        """Series id -> (device, identifier, kind); an identifier known by two names (``\\0``)
        under the one it was posted with, when that is known."""
        names: dict[int, tuple[Device, str, str]] = {}
        for device, known in self._series.items():
            for identifier, found in known.items():
                names.setdefault(found.id, (device, identifier, found.kind))
        return names

    def _lookup(self, device: Device, identifier: str) -> tuple[int, str] | None:
        known = self._series.get(device, {})
        found = known.get(identifier)
        if found is None and "\0" in identifier:  # (kept under its stored name)
            found = known.get(identifier.replace("\0", "\ufffd"))
        return None if found is None else (found.id, found.kind)

    async def _settled(self) -> None:
        """The values staged so far moved to the points (before a raw aggregate or retention
        reads them). Should the writer fail meanwhile, the read goes on without them."""
        if self._move_staged():
            with contextlib.suppress(StoreUnavailable):  # (the writer logged it)
                await self._writer.committed()

    def _move_staged(self) -> bool:
        """Queue a move of what is staged, if anything may be; whether one was queued."""
        if self._moved >= self._staged:
            return False
        moves = self._staged

        def moved(committed: bool) -> None:
            if committed:
                self._moved_up_to(moves)

        self._writer.executemany(*self._settle, outcome=moved)
        return True

    def _moved_up_to(self, staged: int) -> None:
        """A move committed that took the first ``staged`` flushes' staged values (moves may
        be told out of order: a pass's, a large flush's, a read's)."""
        self._moved = max(self._moved, staged)

    async def _aggregated(
        self,
        devices: Sequence[Device],
        identifier: str,
        buckets: Buckets,
        aggregates: Sequence[str],
    ) -> tuple[list[int], str, list[rollups.Piece]] | None:
        """What an aggregate reads: the devices' series of ``identifier`` (None if none has
        one), the kind to read their values as, and the tables that answer the parts of its
        range (``rollups.plan``): the rollups brought up to date first, the staged values
        moved to the points where a part reads them."""
        found = [s for s in (self._lookup(d, identifier) for d in devices) if s is not None]
        if not found:
            return None
        kinds = {kind for _, kind in found}
        if NUMERIC_AGGREGATES.intersection(aggregates) and kinds & {"text", "json"}:
            raise HistoryProblem(
                f"{identifier} holds {'/'.join(sorted(kinds))} values: only count, first and "
                "last apply to it"
            )
        pieces = rollups.plan(buckets, self._days)
        tables = {piece.table for piece in pieces}
        if tables != {"history_points"}:
            await self.rolled_up()
        if "history_points" in tables:
            await self._settled()
        kind = kinds.pop() if len(kinds) == 1 else "float"
        return [series_id for series_id, _ in found], kind, pieces

    def _point_range(
        self,
        device: Device,
        identifier: str,
        start: int,
        end: int,
        cursor: str | None,
        descending: bool,
    ) -> tuple[int, str, int, int] | None:
        """What a page of raw values reads: (series, kind, start, end) after the cursor, or
        None when there is nothing to read."""
        after = cursor_of(cursor, 1)
        if after is not None:
            if descending:
                end = min(end, after[0])
            else:
                start = max(start, after[0] + 1)
        found = self._lookup(device, identifier)
        if found is None or start >= end:
            return None
        return found[0], found[1], start, end
