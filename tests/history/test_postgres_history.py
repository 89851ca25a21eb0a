"""What only the PostgreSQL history does: weekly partitions made as rows arrive and dropped
whole by retention, TimescaleDB where it is installed, and the database going away — taken
away through a TCP proxy as a network would — without an acknowledged message lost or doubled.

(Everything both stores do is in ``test_history_store``, run on each.)"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from test_ingest import _health, persistent_device

from alibaba_device import make_device, make_product
from broker_peers import TIMEOUT, eventually
from history_places import HistoryPlace, crash
from hongshan.errors import StoreUnavailable
from hongshan.store.history import ingest
from hongshan.store.history import postgres_rollups as sql_rollups
from hongshan.store.history.model import LogKind
from hongshan.store.history.postgres import PARTITION_MS, PostgresHistory
from hongshan.store.history.retention import Retention
from hongshan.store.postgres import writer
from registry_databases import POSTGRES_URL
from tcp_proxy import TcpProxy, proxy_to

LAMP = ("a1Lamp", "lamp-1")
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
DAY = 86_400_000
HOST, PORT = "127.0.0.1", 5432


def through(proxy: TcpProxy, place: HistoryPlace) -> str:
    """The place's URL, by way of the proxy."""
    return place.url.replace(f"{HOST}:{PORT}", f"{HOST}:{proxy.port}")


@pytest.fixture
def pg_place(tmp_path: Path) -> Iterator[HistoryPlace]:
    place = HistoryPlace("postgresql", tmp_path)
    asyncio.run(place.create())
    try:
        yield place
    finally:
        asyncio.run(place.drop())


async def sent_until_committed(history: PostgresHistory, send: Callable[[], None]) -> None:
    """``send`` again until what it adds is committed, as a device resends until its PUBACK
    comes (the writer tries a new connection a second after the last)."""
    deadline = time.monotonic() + 10
    while True:
        send()
        try:
            await asyncio.wait_for(history.committed(), 10)
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def point_weeks(place: HistoryPlace) -> set[int]:
    """The weeks ``history_points`` has a partition for, as PostgreSQL lists them."""
    parts = await place.fetch(
        "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass('history_points')"
    )
    return {int(name.rsplit("_p", 1)[1]) for (name,) in parts}


async def test_points_and_log_go_in_weekly_partitions_that_retention_drops_whole(
    pg_place: HistoryPlace,
) -> None:
    history = await pg_place.open(retention=Retention(raw_days=30))
    assert isinstance(history, PostgresHistory) and not history.timescale
    now = int(time.time() * 1000)
    old = now - 60 * DAY  # two months back: its week is wholly past every cutoff
    history.add_points(LAMP, [("PM25", old, 1), ("PM25", now - 40 * DAY, 2), ("PM25", now, 3)])
    history.add_log(LAMP, LogKind.STATUS, "online", old, {})
    await history.committed()
    weeks = await point_weeks(pg_place)
    assert weeks == {ts // PARTITION_MS for ts in (old, now - 40 * DAY, now)}
    await history.sweeper.sweep_now()
    kept = await history.points(LAMP, "PM25", 0, now + 1)
    assert [p.value for p in kept.points] == [3]
    left = await point_weeks(pg_place)
    assert old // PARTITION_MS not in left  # dropped, not deleted from
    assert now // PARTITION_MS in left
    # a late value for a dropped week makes its partition again rather than failing the batch
    history.add_points(LAMP, [("PM25", old + 1, 9)])
    await history.committed()
    assert history.problem is None
    await history.close()


async def test_a_product_that_keeps_its_history_keeps_partitions_from_being_dropped(
    pg_place: HistoryPlace,
) -> None:
    history = await pg_place.open(retention=Retention(raw_days=30))
    assert isinstance(history, PostgresHistory)
    await history.set_retention("a1Meter", Retention())  # kept for ever
    now = int(time.time() * 1000)
    old = now - 60 * DAY
    history.add_points(LAMP, [("PM25", old, 1)])
    history.add_points(("a1Meter", "meter-1"), [("Energy", old, 5.0)])
    await history.committed()
    await history.sweeper.sweep_now()
    assert [p.value for p in (await history.points(LAMP, "PM25", 0, now)).points] == []
    meter = await history.points(("a1Meter", "meter-1"), "Energy", 0, now)
    assert [p.value for p in meter.points] == [5.0]
    await history.close()


async def test_postgresql_unreachable_fails_commits_says_why_and_recovers(
    pg_place: HistoryPlace,
) -> None:
    with proxy_to(HOST, PORT) as proxy:
        history = await PostgresHistory.open(through(proxy, pg_place))
        history.add_points(LAMP, [("Seq", T0, 1)])
        await history.committed()
        proxy.cut()
        history.add_points(LAMP, [("Seq", T0 + 1, 2)])
        history.add_taken(LAMP, b"message-2", T0 + 1)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(history.committed(), 10)
        assert history.problem is not None and "PostgreSQL" in history.problem
        assert history.was_taken(LAMP, b"message-2") is None  # rolled back: a resend is new
        with pytest.raises(StoreUnavailable, match="PostgreSQL read failed"):
            await history.points(LAMP, "Seq", T0, T0 + 10)
        proxy.restore()

        def resend() -> None:
            history.add_points(LAMP, [("Seq", T0 + 1, 2)])
            history.add_taken(LAMP, b"message-2", T0 + 1)

        await sent_until_committed(history, resend)
        assert history.problem is None
        page = await history.points(LAMP, "Seq", T0, T0 + 10)
        assert [p.value for p in page.points] == [1, 2]
        await history.close()


async def test_new_properties_in_batches_failed_during_an_outage_are_named_after_it(
    pg_place: HistoryPlace,
) -> None:
    """A property first seen while PostgreSQL is away: its catalogue row goes again with every
    turn until one commits, however many failed before (some without even a try)."""
    with proxy_to(HOST, PORT) as proxy:
        history = await PostgresHistory.open(through(proxy, pg_place))
        history.add_points(LAMP, [("Warm", T0, 1)])
        await history.committed()
        proxy.cut()
        for n in range(3):  # a tried batch, then ones failed within the retry wait
            history.add_points(LAMP, [("Temp", T0 + n, 20 + n)])
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(history.committed(), 10)
        proxy.restore()
        await sent_until_committed(history, lambda: history.add_points(LAMP, [("Warm", T0 + 5, 2)]))
        history.add_points(LAMP, [("Temp", T0 + 6, 26)])
        await history.committed()
        await history.close()
    again = await pg_place.open()
    assert [s.identifier for s in await again.series(LAMP)] == ["Temp", "Warm"]
    again.add_points(LAMP, [("Humidity", T0, 55)])  # a new property: a series of its own
    await again.committed()
    assert [p.value for p in (await again.points(LAMP, "Temp", T0, T0 + 10)).points] == [26]
    assert [p.value for p in (await again.points(LAMP, "Humidity", T0, T0 + 10)).points] == [55]
    await again.close()


async def test_a_commit_cut_short_is_asked_about_and_its_resend_kept_once(
    pg_place: HistoryPlace,
) -> None:
    """The connection goes after COMMIT left but before its answer came: whether it committed
    is not known. The turn's waiters fail (no PUBACK: the device sends again), and the resend
    waits on the first copy, whose fate a new connection asks the server (txid_status)."""
    with proxy_to(HOST, PORT) as proxy:
        history = await PostgresHistory.open(through(proxy, pg_place))
        history.add_points(LAMP, [("Seq", T0, 0)])
        await history.committed()
        proxy.cut_after(b"COMMIT")
        history.add_points(LAMP, [("Seq", T0 + 5, 5)], arrival=True)
        history.add_taken(LAMP, b"message-5", T0 + 5)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(history.committed(), 10)
        assert proxy.cuts_after_marker == 1
        first_copy = history.was_taken(LAMP, b"message-5")
        assert first_copy is not None
        await asyncio.sleep(0.2)
        assert not asyncio.ensure_future(first_copy).done()  # not known yet: the resend waits
        await sent_until_committed(  # anything, for the writer to connect again
            history, lambda: history.add_log(LAMP, LogKind.STATUS, "online", T0 + 6, {})
        )
        await asyncio.wait_for(first_copy, 10)  # it had committed: the resend is acknowledged
        page = await history.points(LAMP, "Seq", T0, T0 + 100)
        assert [p.value for p in page.points] == [0, 5]
        await history.close()


@pytest.fixture
def timescale() -> None:
    async def available() -> bool:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            found = await conn.fetchval(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
            )
            preload = await conn.fetchval("SHOW shared_preload_libraries")
        finally:
            await conn.close()
        return bool(found) and "timescaledb" in preload

    if not asyncio.run(available()):
        pytest.skip(
            "TimescaleDB is not installed in this PostgreSQL (not in pg_available_extensions, "
            "or not in shared_preload_libraries); the store uses its weekly partitions instead"
        )


def test_timescaledb_hypertables_hold_the_points_and_compress_them(
    timescale: None, pg_place: HistoryPlace
) -> None:
    async def scenario() -> None:
        history = await pg_place.open()
        assert isinstance(history, PostgresHistory) and history.timescale
        history.add_points(LAMP, [("PM25", T0 + i * 1000, i) for i in range(100)])
        await history.committed()
        page = await history.points(LAMP, "PM25", T0, T0 + 100_000, limit=200)
        assert [p.value for p in page.points] == list(range(100))
        hypertables = await pg_place.fetch(
            "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
        )
        assert hypertables == [("history_log",), ("history_points",)]
        compressed = await pg_place.fetch(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'history_points'"
        )
        assert compressed == [(True,)]
        await history.close()

    asyncio.run(scenario())


def test_a_server_on_postgresql_withholds_pubacks_while_it_is_unreachable(
    pg_place: HistoryPlace, make_server: Callable[..., Any]
) -> None:
    with proxy_to(HOST, PORT) as proxy:
        server = make_server(history_url=through(proxy, pg_place))
        pk = make_product(server).product_key
        secret = make_device(server, pk, "meter-1").device_secret
        device = persistent_device(server.port, pk, "meter-1", secret)
        topic = f"/sys/{pk}/meter-1/thing/event/property/post"
        device.publish(topic, b'{"id":"1","params":{"Seq":1}}', qos=1).wait_for_publish(TIMEOUT)
        history = server.platform.history
        proxy.cut()
        acked: set[int] = set()
        device.on_publish = lambda _c, _u, mid, _rc, _p: acked.add(mid)
        mids = [
            device.publish(topic, json.dumps({"id": str(n), "params": {"Seq": n}}), qos=1).mid
            for n in range(2, 40)
        ]
        eventually(lambda: server.call(lambda: history.problem) is not None, what="a failure")
        health = _health(server)
        assert health["status"] == "degraded" and "PostgreSQL" in health["history"]["problem"]
        time.sleep(1)
        assert not acked.issuperset(mids)
        proxy.restore()  # back: the store reconnects by itself, the device resends
        eventually(lambda: acked.issuperset(mids), 3 * TIMEOUT, "every PUBACK")
        eventually(lambda: _health(server)["status"] == "ok", what="health back to ok")
        device.loop_stop()
        device.disconnect()
        server.stop()
    rows = asyncio.run(pg_place.fetch("SELECT num FROM history_points ORDER BY num"))
    assert [int(n) for (n,) in rows] == list(range(1, 40))  # each once


async def _a_backlog(history: PostgresHistory, seed: int) -> int:
    """Three hours of values of 20 series, some out of order and some text, added faster
    than they are written (a loop turn every 50 posts); the number of values."""
    rng = random.Random(seed)
    devices = [("a1Lamp", f"lamp-{i}") for i in range(4)]
    added = 0
    for post in range(540):
        for device in devices:
            ts = T0 + post * 20_000
            if rng.random() < 0.05:
                ts -= rng.randrange(1, 90 * 60_000)  # late: below a mark, or not
            values = [(f"p{n}", ts, rng.random() * 100) for n in range(5)]
            if rng.random() < 0.02:
                values[0] = ("p0", ts, "text")
            history.add_points(device, values)
            added += len(values)
        if post % 50 == 0:
            await asyncio.sleep(0)
    return added


@pytest.mark.parametrize("seed", range(2))
async def test_a_backlog_is_rolled_up_in_parts_while_it_is_written(
    pg_place: HistoryPlace, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Minutes owed past ``PASS_BACKLOG`` are recomputed by a backlog pass at once, while the
    writer goes on committing the rest a part at a time, with the hours their series have
    moved past; the latest hours and the days wait for the full pass, after which every rollup
    is what the points alone make."""
    monkeypatch.setattr(ingest, "PASS_BACKLOG", 300)
    monkeypatch.setattr(writer, "_BATCH_ROWS", 1_000)
    history = await pg_place.open("Asia/Kolkata")  # (its days start on a half hour)
    added = await _a_backlog(history, seed)
    assert history._last_pass is not None
    await history._last_pass  # the last backlog pass
    assert history._writer.commits >= added // 2_000  # (a part: 1,000 rows and one item)
    minutes = await pg_place.fetch("SELECT count(*) FROM history_minutes")
    latest = await pg_place.fetch(
        "SELECT count(*) FROM history_hours AS h WHERE h.bucket = (SELECT max(m.bucket) "
        "- max(m.bucket) % 3600000 FROM history_minutes AS m WHERE m.series_id = h.series_id)"
    )
    hours = await pg_place.fetch("SELECT count(*) FROM history_hours")
    assert minutes[0][0] > 0 and hours[0][0] > 0 and latest[0][0] == 0  # (none still filling)
    assert await pg_place.fetch("SELECT count(*) FROM history_days") == [(0,)]
    assert await pg_place.fetch("SELECT * FROM history_rolled") == []  # no mark moved yet
    await history.close()  # (its last pass is a full one)
    await pg_place.assert_rollups_as_from_scratch("Asia/Kolkata")


@pytest.mark.parametrize("seed", range(2))
async def test_a_large_full_pass_is_shared_out_among_the_pass_connections(
    pg_place: HistoryPlace, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Past ``SHARE_FROM``, a full pass runs as shares of the series, one a connection, at
    once; the rollups they make together are what the points alone make."""
    monkeypatch.setattr(ingest, "SHARE_FROM", 1)
    monkeypatch.setattr(ingest, "PASS_BACKLOG", 300)
    history = await pg_place.open("Asia/Kolkata")
    shares: list[int] = []
    for n, pass_writer in enumerate(history._pass_writers):
        run = pass_writer.executemany

        def counted(*parts: Any, outcome: Any, n: int = n, run: Any = run) -> None:
            shares.append(n)
            run(*parts, outcome=outcome)

        monkeypatch.setattr(pass_writer, "executemany", counted)
    await _a_backlog(history, seed)
    await history.rolled_up()
    assert set(shares) == {0, 1}
    await history.close()
    await pg_place.assert_rollups_as_from_scratch("Asia/Kolkata")


@pytest.mark.parametrize("failing", [0, 1])
@pytest.mark.parametrize("end", ["close", "crash"])
async def test_a_share_that_fails_fails_its_pass_and_what_follows_makes_it_whole(
    pg_place: HistoryPlace, monkeypatch: pytest.MonkeyPatch, failing: int, end: str
) -> None:
    """One share of a full pass runs its statements, then fails; the other commits (its
    series' marks move, and half the marks are on disk). The pass fails and owes all of it
    back; after more late values and a clean close, or a crash and the start after it, every
    rollup is what the points alone make, and no note is left."""
    monkeypatch.setattr(ingest, "SHARE_FROM", 1)
    monkeypatch.setattr(ingest, "PASS_BACKLOG", 300)
    monkeypatch.setattr(writer, "_BATCH_ROWS", 1_000)
    history = await pg_place.open("Asia/Kolkata")
    share = history._pass_writers[failing]
    run = share.executemany
    failed: list[int] = []

    def fail_once(*parts: Any, outcome: Callable[[bool], None]) -> None:
        if not failed and any("history_dirty" in str(sql) for sql, _ in parts):  # (a full one)
            failed.append(1)
            parts = (*parts, ("SELECT 1/0", [()]))
        run(*parts, outcome=outcome)

    monkeypatch.setattr(share, "executemany", fail_once)
    await _a_backlog(history, failing)
    passing = history._roll_up()
    assert passing is not None
    with pytest.raises(StoreUnavailable):
        await passing
    assert failed
    marks = await pg_place.fetch("SELECT count(*) FROM history_rolled")
    assert 0 < marks[0][0] < 20  # (the share that committed)
    rng = random.Random(failing)
    for _ in range(50):  # late values, into both shares' series
        device = ("a1Lamp", f"lamp-{rng.randrange(4)}")
        ts = T0 + rng.randrange(0, 540 * 20_000)
        history.add_points(device, [(f"p{rng.randrange(5)}", ts, rng.random())])
    await history.committed()
    if end == "crash":
        await crash(history)
        history = await pg_place.open("Asia/Kolkata")
    await history.close()
    await pg_place.assert_rollups_as_from_scratch("Asia/Kolkata")
    assert await pg_place.fetch("SELECT count(*) FROM history_dirty") == [(0,)]


async def test_a_crash_after_backlog_passes_leaves_whole_rollups_after_the_next_start(
    pg_place: HistoryPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "PASS_BACKLOG", 300)
    history = await pg_place.open("Asia/Kolkata")
    await _a_backlog(history, 7)
    await history.committed()
    assert history._last_pass is not None
    await history._last_pass
    await crash(history)  # killed before any full pass: no day made, no mark moved
    again = await pg_place.open("Asia/Kolkata")
    await again.close()
    await pg_place.assert_rollups_as_from_scratch("Asia/Kolkata")


async def _pass_waiting_on(place: HistoryPlace, table: str) -> int:
    """The server process of a rollup pass held up by a lock on ``table``."""
    for _ in range(200):
        rows = await place.fetch(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            f"AND query ILIKE '%{table}%'"
        )
        if rows:
            return int(rows[0][0])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pass waits on {table}")


@pytest.mark.parametrize("end", ["crash", "close"])
async def test_a_backlog_pass_that_fails_is_not_claimed_by_the_full_pass_planned_before(
    pg_place: HistoryPlace, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """Backlog pass B loses its connection after full pass F, whose hours and marks take in
    B's minutes, was planned: F does not run as planned (it would claim minutes B never
    wrote), and the next start, after a crash or a close, has every rollup right."""
    monkeypatch.setattr(ingest, "PASS_BACKLOG", 50)
    history = await pg_place.open()
    ten = T0 + 10 * 3_600_000
    history.add_points(LAMP, [("t", ten - 60_000, 1.0)])
    await history.rolled_up()
    minutes_lock = await asyncpg.connect(pg_place.url)
    await minutes_lock.execute("BEGIN; LOCK TABLE history_minutes IN ACCESS EXCLUSIVE MODE")
    for m in range(60):  # the 50th minute owed starts backlog pass B, which waits on the lock
        history.add_points(LAMP, [("t", ten + m * 60_000, float(m))])
    await history.committed()
    b_server = await _pass_waiting_on(pg_place, "history_minutes")
    points_lock = await asyncpg.connect(pg_place.url)
    await points_lock.execute("BEGIN; LOCK TABLE history_points IN SHARE MODE")
    history.add_points(LAMP, [("t", ten + 3_600_000, 99.0)])  # held up by the points lock
    if end == "crash":
        full = history._roll_up()  # F, planned while B runs
        assert full is not None
    else:
        closing = asyncio.ensure_future(history.close())  # (its last pass is F)
    await asyncio.sleep(0.2)
    await minutes_lock.execute("SELECT pg_terminate_backend($1)", b_server)  # B fails
    await minutes_lock.execute("ROLLBACK")
    await minutes_lock.close()
    await asyncio.sleep(1.5)  # (the pass writer connects again a second on)
    await points_lock.execute("COMMIT")
    await points_lock.close()
    if end == "crash":
        with pytest.raises(StoreUnavailable):
            await full
        await crash(history)
    else:
        await closing
    again = await pg_place.open()
    await again.close()
    await pg_place.assert_rollups_as_from_scratch("UTC")


async def test_marks_an_earlier_version_moved_down_are_raised_once_at_open(
    pg_place: HistoryPlace,
) -> None:
    """A pass used to set a series' mark to its own latest minute, so one holding only a late
    value moved it down; minutes past such a mark have rows, and must not be inserted as new."""
    history = await pg_place.open()
    ten = T0 + 10 * 3_600_000
    for m in range(6):
        history.add_points(LAMP, [("t", ten + m * 60_000, float(m))])
    await history.close()
    conn = await asyncpg.connect(pg_place.url)  # as the earlier version left it
    await conn.execute("UPDATE history_rolled SET through = $1", ten - 3_600_000)
    await conn.execute("DELETE FROM history_meta WHERE key = 'marks'")
    await conn.close()
    history = await pg_place.open()
    assert await pg_place.fetch("SELECT through FROM history_rolled") == [(ten + 5 * 60_000,)]
    history.add_points(LAMP, [("t", ten + 3 * 60_000 + 500, 33.0)])  # into a minute with a row
    await history.rolled_up()
    await history.close()
    await pg_place.assert_rollups_as_from_scratch("UTC")


async def test_backlog_passes_wait_for_the_timer_while_passes_fail(
    pg_place: HistoryPlace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that failed owes its minutes back, a backlog of them: the next post does not
    start another pass of them all, and the next, while the database is away."""
    monkeypatch.setattr(ingest, "PASS_BACKLOG", 2_000)
    history = await pg_place.open()
    assert history._pass_writers
    taken = 0
    take = history._rollups.take_pass

    def counted(backlog: bool = False) -> tuple[Any, set[int]]:
        nonlocal taken
        taken += 1
        return take(backlog)

    def fail(*parts: Any, outcome: Callable[[bool], None]) -> None:
        asyncio.get_running_loop().call_soon(outcome, False)

    monkeypatch.setattr(history._rollups, "take_pass", counted)
    monkeypatch.setattr(history._pass_writers[0], "executemany", fail)
    for turn in range(100):
        for d in range(100):
            history.add_points(
                ("p", f"d{d}"), [(f"p{k}", T0 + turn * 60_000, 1.0) for k in range(5)]
            )
        await asyncio.sleep(0.005)
    assert taken <= 3  # (those taken before the first failed; after it, only the timer's)
    monkeypatch.undo()
    await history.close()


@pytest.mark.parametrize("notes", [2, 2_000])
async def test_a_pass_settles_its_notes_without_waiting_on_the_writer(
    pg_place: HistoryPlace, notes: int
) -> None:
    """A pass deletes the notes up to its number while the writer holds some of them, in
    whatever order (several flushes' notes in one transaction): it passes those over rather
    than wait (two orders of locks can deadlock), and they stay, moved on to the next pass."""
    history = await pg_place.open()
    await history.close()
    setup = await asyncpg.connect(pg_place.url)
    number = 5
    for series_id in range(notes, 0, -1):  # (on disk against key order)
        await setup.execute("INSERT INTO history_dirty VALUES ($1, 0, $2)", series_id, number)
    await setup.execute("ANALYZE history_dirty")
    note, settle = sql_rollups.INSERT_DIRTY, sql_rollups._DELETE_DIRTY
    writing, passing = await asyncpg.connect(pg_place.url), await asyncpg.connect(pg_place.url)
    try:
        await writing.execute("BEGIN")
        await writing.execute(note, notes, 0, number + 1)  # (the last key first)
        await passing.execute("BEGIN")
        await asyncio.wait_for(passing.execute(settle, number, 1, 0), TIMEOUT)  # (no wait)
        await passing.execute("COMMIT")
        await writing.execute(note, 1, 0, number + 1)
        await writing.execute("COMMIT")
        left = await setup.fetch("SELECT series_id, pass FROM history_dirty ORDER BY 1")
    finally:
        for conn in (writing, passing, setup):
            await conn.close()
    assert [tuple(row) for row in left] == [(1, number + 1), (notes, number + 1)]


def test_a_batch_cut_at_its_rows_keeps_the_markers_right_after_it() -> None:
    """A marker queued right after the items that fill a transaction is answered with them,
    not held for (and told the fate of) the next transaction's rows."""

    async def main() -> list[int]:
        cut = writer.PostgresWriter("postgresql://nowhere", loop=asyncio.get_running_loop())
        copy = writer.Copy("t", ("a",), ("a",))
        rows = [(n,) for n in range(writer._BATCH_ROWS)]
        cut.executemany((copy, rows))
        marker = cut.committed()
        cut.executemany((copy, rows))
        taken = [len(cut._take()), len(cut._take())]
        assert isinstance(marker, asyncio.Future)
        marker.cancel()
        cut._task.cancel()
        return taken

    assert asyncio.run(main()) == [2, 1]  # (the rows and the marker; the next rows)
