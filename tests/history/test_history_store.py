"""The history stores, each on its real database (a SQLite file, a PostgreSQL schema): what goes
in comes out, by range, page, bucket and kind; what survives a reopen; what the rollups and
retention keep."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

import pytest

from broker_peers import TIMEOUT
from history_places import HistoryPlace, crash
from hongshan.errors import StoreUnavailable
from hongshan.store.history import ingest, rollups
from hongshan.store.history.buckets import buckets
from hongshan.store.history.model import HistoryProblem, LogKind
from hongshan.store.history.retention import Retention
from hongshan.store.history.sqlite import (
    SETTLE_CHUNK,
    SETTLE_SLICE,
    SQLiteHistory,
    settle_some,
)
from hongshan.store.history.sqlite_rollups import TEMP_SCHEMA

LAMP = ("a1Lamp", "lamp-1")
OTHER = ("a1Lamp", "lamp-2")
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE


async def test_values_of_every_type_come_back_as_they_went_in(place: HistoryPlace) -> None:
    history = await place.open()
    values = {
        "Brightness": 42,
        "Voltage": 220.5,
        "LightSwitch": True,
        "Name": "Xinhua Road 3",
        "Color": {"r": 1, "g": 2, "b": 3},
        "Readings": [1.5, 2.5],
        "Huge": 2**70,  # beyond SQLite's integers: kept as a real, not a failed batch
    }
    history.add_points(LAMP, [(k, T0, v) for k, v in values.items()])
    await history.committed()
    for identifier, value in values.items():
        page = await history.points(LAMP, identifier, T0, T0 + 1)
        assert [p.value for p in page.points] == [float(value) if identifier == "Huge" else value]
    kinds = {s.identifier: s.kind for s in await history.series(LAMP)}
    assert kinds == {
        "Brightness": "int",
        "Voltage": "float",
        "LightSwitch": "bool",
        "Name": "text",
        "Color": "json",
        "Readings": "json",
        "Huge": "int",
    }
    await history.close()


async def test_a_property_whose_first_value_was_whole_keeps_its_fractions(
    place: HistoryPlace,
) -> None:
    """A float property may first post 20: its later 20.5 is still 20.5, its sum 62.2."""
    history = await place.open()
    history.add_points(LAMP, [("Temp", T0, 20), ("Temp", T0 + 1, 20.5), ("Temp", T0 + 2, 21.7)])
    await history.committed()
    page = await history.points(LAMP, "Temp", T0, T0 + 10)
    assert [p.value for p in page.points] == [20, 20.5, 21.7]
    (hour,) = await history.aggregate(
        [LAMP], "Temp", buckets(T0, T0 + HOUR, "1h"), ["sum", "max", "last"]
    )
    assert hour.values["sum"] == pytest.approx(62.2)
    assert hour.values["max"] == 21.7 and hour.values["last"] == 21.7
    await history.close()


async def test_a_property_named_with_a_nul_is_kept_and_found_again(place: HistoryPlace) -> None:
    """(A product without a thing model takes any key; PostgreSQL text cannot hold NUL.)"""
    history = await place.open()
    history.add_points(LAMP, [("we\0ird", T0, 1)])
    history.add_points(OTHER, [("Brightness", T0, 2)])
    await history.committed()
    assert history.problem is None
    await history.close()
    again = await place.open()
    again.add_points(LAMP, [("we\0ird", T0 + 1, 3)])
    await again.committed()
    page = await again.points(LAMP, "we\0ird", T0, T0 + 10)
    assert [p.value for p in page.points] == [1, 3]
    assert [s.identifier for s in await again.series(LAMP)] == ["we\ufffdird"]
    await again.close()


async def test_rows_nobody_waits_for_are_written_soon_after_and_together(
    place: HistoryPlace,
) -> None:
    """A status change or a QoS 0 value is not acknowledged to anyone: it goes to the writer
    within ``FLUSH_EVERY``, with what else came meanwhile, in one transaction."""
    history = await place.open()
    try:
        batches = history.transactions
        for n in range(20):  # twenty devices logging in, on loop turns of their own
            history.add_log(("a1Lamp", f"lamp-{n}"), LogKind.STATUS, "online", T0 + n, {})
            await asyncio.sleep(0)
        # nobody waits for them, yet they are written: a wait that does not hasten them tells
        # when (with a timeout: a busy machine takes longer than FLUSH_EVERY), and they are
        # seen from outside
        await asyncio.wait_for(history.committed(hasten=False), TIMEOUT)
        assert await place.fetch("SELECT count(*) FROM history_log") == [(20,)]
        # together: one flush, unless the machine stalled a whole FLUSH_EVERY between turns
        assert history.transactions - batches <= 5  # not one each
    finally:
        await history.close()


async def test_a_resend_that_stops_waiting_leaves_the_first_copys_outcome_alone(
    place: HistoryPlace,
) -> None:
    """A resend's connection that goes cancels its wait on the first copy; the first copy's
    own outcome, which the writer settles, must not be cancelled with it."""
    history = await place.open()
    history.add_points(LAMP, [("Seq", T0, 1)])
    history.add_taken(LAMP, b"message-1", T0)
    first = history.was_taken(LAMP, b"message-1")
    assert first is not None
    waiting = asyncio.ensure_future(first)
    await asyncio.sleep(0)
    waiting.cancel()  # the resend's connection went
    await asyncio.wait_for(history.committed(), 10)
    again = history.was_taken(LAMP, b"message-1")
    assert again is not None
    await asyncio.wait_for(again, 10)  # taken, and known to be
    history.add_points(LAMP, [("Seq", T0 + 1, 2)])  # the writer goes on
    await asyncio.wait_for(history.committed(), 10)
    assert [p.value for p in (await history.points(LAMP, "Seq", T0, T0 + 10)).points] == [1, 2]
    await history.close()


async def test_a_property_name_too_long_to_keep_is_left_out_not_the_post(
    place: HistoryPlace,
) -> None:
    history = await place.open()
    history.add_points(LAMP, [("x" * 9000, T0, 1), ("Brightness", T0, 2)])
    await history.committed()
    history.add_points(OTHER, [("Brightness", T0, 3)])  # and nothing after it is held up
    await history.committed()
    assert history.problem is None
    assert [s.identifier for s in await history.series(LAMP)] == ["Brightness"]
    assert [p.value for p in (await history.points(OTHER, "Brightness", T0, T0 + 1)).points] == [3]
    await history.close()


async def test_a_range_is_read_in_pages_both_ways(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_points(LAMP, [("Brightness", T0 + i * 1000, i) for i in range(25)])
    await history.committed()
    seen, cursor = [], None
    while True:
        page = await history.points(LAMP, "Brightness", T0, T0 + 20_000, limit=7, cursor=cursor)
        seen += [p.value for p in page.points]
        if page.next is None:
            break
        cursor = page.next
    assert seen == list(range(20))  # [from, to): the 20th second is out
    newest = await history.points(LAMP, "Brightness", T0, T0 + HOUR, limit=3, descending=True)
    assert [p.value for p in newest.points] == [24, 23, 22]
    rest = await history.points(
        LAMP, "Brightness", T0, T0 + HOUR, limit=100, descending=True, cursor=newest.next
    )
    assert [p.value for p in rest.points] == list(range(21, -1, -1))
    assert rest.next is None
    with pytest.raises(HistoryProblem, match="cursor"):
        await history.points(LAMP, "Brightness", T0, T0 + HOUR, cursor="yesterday")
    await history.close()


async def test_a_value_for_the_same_millisecond_replaces_the_earlier(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_points(LAMP, [("Brightness", T0, 1)])
    await history.committed()
    history.add_points(LAMP, [("Brightness", T0, 2)])
    await history.committed()
    page = await history.points(LAMP, "Brightness", T0, T0 + 1)
    assert [p.value for p in page.points] == [2]
    await history.close()


async def test_values_that_arrive_in_the_same_millisecond_are_all_kept(place: HistoryPlace) -> None:
    """Times of arrival (no device time): a device sending its backlog at once loses none."""
    history = await place.open()
    for n in range(5):
        history.add_points(LAMP, [("Brightness", T0, n)], arrival=True)
    history.add_points(LAMP, [("Brightness", T0 + 2, 9)], arrival=True)  # behind: moved on too
    await history.committed()
    page = await history.points(LAMP, "Brightness", T0, T0 + 100)
    assert [(p.ts - T0, p.value) for p in page.points] == [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
        (5, 9),
    ]
    await history.close()


async def test_fixed_buckets_carry_every_aggregate(place: HistoryPlace) -> None:
    history = await place.open()
    # one value a minute for three hours: hour h holds 60 values h*100 + 0..59
    history.add_points(
        LAMP, [("PM25", T0 + m * MINUTE, (m // 60) * 100 + m % 60) for m in range(180)]
    )
    await history.committed()
    every = buckets(T0, T0 + 3 * HOUR, "1h")
    result = await history.aggregate(
        [LAMP], "PM25", every, ["avg", "min", "max", "sum", "count", "first", "last"]
    )
    assert [b.start for b in result] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    second = result[1].values
    assert second == {
        "avg": 129.5,
        "min": 100,
        "max": 159,
        "sum": sum(range(100, 160)),
        "count": 60,
        "first": 100,
        "last": 159,
    }
    await history.close()


async def test_calendar_days_are_the_towns_days(place: HistoryPlace) -> None:
    """A day in Asia/Shanghai starts at 16:00 UTC the day before."""
    history = await place.open()
    shanghai_midnight = T0 - 8 * HOUR  # 2025-12-01T00:00+08:00
    history.add_points(
        LAMP,
        [
            ("PM25", shanghai_midnight - 1, 999),  # the last millisecond of 30 November there
            ("PM25", shanghai_midnight, 10),
            ("PM25", shanghai_midnight + 23 * HOUR, 20),
            ("PM25", shanghai_midnight + 24 * HOUR, 40),
        ],
    )
    await history.committed()
    days = buckets(shanghai_midnight, shanghai_midnight + 48 * HOUR, "1d", "Asia/Shanghai")
    result = await history.aggregate([LAMP], "PM25", days, ["avg", "count"])
    assert [(b.start, b.values) for b in result] == [
        (shanghai_midnight, {"avg": 15.0, "count": 2}),
        (shanghai_midnight + 24 * HOUR, {"avg": 40.0, "count": 1}),
    ]
    await history.close()


async def test_the_towns_days_are_kept_as_rollups_and_read_for_daily_questions(
    place: HistoryPlace,
) -> None:
    history = await place.open("Asia/Shanghai")
    midnight = T0 - 8 * HOUR  # 2025-12-01T00:00+08:00
    history.add_points(LAMP, [("PM25", midnight + m * 7 * MINUTE, m % 50) for m in range(600)])
    await history.committed()
    days = buckets(midnight, midnight + 4 * 24 * HOUR, "1d", "Asia/Shanghai")
    assert rollups.level(days, rollups.TownDays("Asia/Shanghai")) == "history_days"
    assert rollups.level(days, rollups.TownDays("UTC")) == "history_hours"
    from_days = await history.aggregate([LAMP], "PM25", days, ["avg", "count", "first", "last"])
    ahead = buckets(midnight + 1, midnight + 4 * 24 * HOUR, "1d", "Asia/Shanghai")  # raw
    from_points = await history.aggregate([LAMP], "PM25", ahead, ["avg", "count", "first", "last"])
    first_day = [(m * 7 * MINUTE, m % 50) for m in range(600) if m * 7 * MINUTE < 24 * HOUR]
    assert from_days[0].values["count"] == len(first_day)
    assert from_days[0].values["first"] == 0 and from_days[0].values["last"] == first_day[-1][1]
    assert [b.start for b in from_days] == [b.start for b in from_points]
    assert [b.values["count"] for b in from_days[1:]] == [
        b.values["count"] for b in from_points[1:]
    ]
    assert await place.fetch("SELECT count(*) FROM history_days") == [(3,)]
    await history.close()


async def test_a_group_aggregate_takes_every_devices_values_together(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0, 10)])
    history.add_points(OTHER, [("PM25", T0 + 1, 30)])
    await history.committed()
    result = await history.aggregate(
        [LAMP, OTHER, ("a1Lamp", "never-posted")], "PM25", buckets(T0, T0 + HOUR, "1h"), ["avg"]
    )
    assert [b.values for b in result] == [{"avg": 20.0}]
    await history.close()


async def test_text_values_are_counted_not_averaged(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_points(LAMP, [("Name", T0, "a"), ("Name", T0 + 1, "b")])
    await history.committed()
    every = buckets(T0, T0 + HOUR, "1h")
    with pytest.raises(HistoryProblem, match="only count, first and last"):
        await history.aggregate([LAMP], "Name", every, ["avg"])
    result = await history.aggregate([LAMP], "Name", every, ["count", "first", "last"])
    assert result[0].values == {"count": 2, "first": "a", "last": "b"}
    await history.close()


async def test_the_log_keeps_events_status_and_commands_by_kind(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_log(LAMP, LogKind.STATUS, "online", T0, {"address": "10.0.0.7"})
    history.add_log(LAMP, LogKind.EVENT, "Fault", T0 + 1, {"code": 3})
    history.add_log(LAMP, LogKind.EVENT, "Fault", T0 + 1, {"code": 4})  # same ms: both kept
    history.add_log(LAMP, LogKind.PROPERTY_SET, "set", T0 + 2, {"LightSwitch": 1})
    history.add_log(LAMP, LogKind.STATUS, "offline", T0 + 3, {"reason": "keep alive timeout"})
    await history.committed()
    events = await history.log(LAMP, T0, T0 + HOUR, kinds=[LogKind.EVENT])
    assert [e.body for e in events.entries] == [{"code": 3}, {"code": 4}]
    first = await history.log(LAMP, T0, T0 + HOUR, limit=2)
    assert [e.identifier for e in first.entries] == ["online", "Fault"]
    rest = await history.log(LAMP, T0, T0 + HOUR, limit=10, cursor=first.next)
    assert [e.identifier for e in rest.entries] == ["Fault", "set", "offline"]
    assert rest.next is None
    await history.close()


async def test_everything_survives_a_reopen_and_new_series_continue(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_points(LAMP, [("Brightness", T0, 1)])
    history.add_taken(LAMP, b"12345678", T0)
    await history.close()
    again = await place.open()
    again.add_points(LAMP, [("Brightness", T0 + 1, 2)])
    again.add_points(OTHER, [("Brightness", T0, 3)])
    await again.committed()
    page = await again.points(LAMP, "Brightness", T0, T0 + 10)
    assert [p.value for p in page.points] == [1, 2]
    assert [p.value for p in (await again.points(OTHER, "Brightness", T0, T0 + 1)).points] == [3]
    taken = again.was_taken(LAMP, b"12345678")
    assert taken is not None and again.was_taken(OTHER, b"12345678") is None
    await taken  # committed before the restart: done
    await again.close()


async def test_a_failed_sqlite_write_is_reported_and_the_store_recovers(tmp_path: Path) -> None:
    """(PostgreSQL's failures: ``test_postgres_history``.)"""
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    assert isinstance(history, SQLiteHistory)
    history.add_points(LAMP, [("Brightness", T0, 1)])
    await history.committed()
    # another process holds the write lock for longer than the busy timeout allows
    history._writer.execute("PRAGMA busy_timeout=50")  # (the writer process's connection)
    await history.committed()
    blocker = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    history.add_points(LAMP, [("Brightness", T0 + 1, 2)])
    history.add_points(OTHER, [("Voltage", T0, 220.0)])  # a new series, in the failed batch
    history.add_taken(OTHER, b"resend-1", T0)
    pending = history.was_taken(OTHER, b"resend-1")  # a resend now waits on the first copy
    assert pending is not None
    with pytest.raises(StoreUnavailable, match="locked"):
        await asyncio.wait_for(history.committed(), 10)
    assert history.problem is not None and "locked" in history.problem
    with pytest.raises(StoreUnavailable, match="locked"):
        await asyncio.wait_for(pending, 10)  # ... and fails with it
    assert history.was_taken(OTHER, b"resend-1") is None  # rolled back: its resend is new
    blocker.execute("ROLLBACK")
    blocker.close()
    history.add_points(OTHER, [("Voltage", T0 + 1, 221.0)])
    history.add_taken(OTHER, b"resend-2", T0)
    await asyncio.wait_for(history.committed(), 10)
    assert history.problem is None
    settled = history.was_taken(OTHER, b"resend-2")
    assert settled is not None
    await settled
    await history.close()
    # the series row lost with the failed batch was written again with the next one
    again = await place.open()
    page = await again.points(OTHER, "Voltage", T0, T0 + 10)
    assert [p.value for p in page.points] == [221.0]
    assert [p.value for p in (await again.points(LAMP, "Brightness", T0, T0 + 10)).points] == [1]
    await again.close()


async def test_a_sqlite_writer_process_that_dies_fails_what_waited_and_is_started_again(
    tmp_path: Path,
) -> None:
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    assert isinstance(history, SQLiteHistory)
    history.add_points(LAMP, [("Seq", T0, 1)])
    await history.committed()
    history._writer._process.kill()  # the writer process dies
    for _ in range(100):
        if history.problem is not None:
            break
        await asyncio.sleep(0.05)
    assert history.problem is not None and "ended" in history.problem
    # what it may have lost is owed to the next waiter: told once, not acknowledged
    history.add_points(LAMP, [("Seq", T0 + 1, 2)])
    with pytest.raises(StoreUnavailable, match="ended"):
        await asyncio.wait_for(history.committed(), 30)
    history.add_points(LAMP, [("Seq", T0 + 1, 2)])  # sent again: a new process writes it
    await asyncio.wait_for(history.committed(), 30)
    assert history.problem is None
    assert [p.value for p in (await history.points(LAMP, "Seq", T0, T0 + 10)).points] == [1, 2]
    await history.close()


@pytest.mark.parametrize("offset", [0, 1], ids=["from the rollups", "from the raw points"])
async def test_rollups_and_raw_points_give_the_same_answers(
    place: HistoryPlace, offset: int
) -> None:
    """An hour-aligned question reads the hour rollups; one a millisecond off reads the points.
    Values that replace others, late values and several series: the answers agree."""
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0 + m * 30_000, m % 17) for m in range(360)])
    history.add_points(OTHER, [("PM25", T0 + m * 45_000, 100 - m % 13) for m in range(240)])
    await history.committed()
    await history.aggregate([LAMP], "PM25", buckets(T0, T0 + 3 * HOUR, "1h"), ["count"])
    history.add_points(LAMP, [("PM25", T0 + 30_000, 99)])  # replaces m=1 (was 1)
    history.add_points(LAMP, [("PM25", T0 + 5, -3)])  # a late value, earliest of its hour
    await history.committed()
    every = buckets(T0 + offset, T0 + 3 * HOUR + offset, "1h")
    names = ["avg", "min", "max", "sum", "count", "first", "last"]
    found = await history.aggregate([LAMP, OTHER], "PM25", every, names)
    expected = _by_hand(
        [(T0 + m * 30_000, m % 17) for m in range(360) if m != 1]
        + [(T0 + 30_000, 99), (T0 + 5, -3)]
        + [(T0 + m * 45_000, 100 - m % 13) for m in range(240)],
        T0 + offset,
    )
    assert [(b.start, b.values) for b in found] == expected
    # a calendar day over the same values (Shanghai's 1 December holds the three hours)
    day = buckets(T0 + offset, T0 + 3 * HOUR + offset, "1d", "Asia/Shanghai")
    (whole,) = await history.aggregate([LAMP, OTHER], "PM25", day, names)
    hours = [values for _, values in expected]
    firsts = sorted(  # the earliest hour's first; its points' order is the hour's own
        [(start, values) for start, values in expected], key=lambda e: e[0]
    )
    assert whole.start == T0 - 8 * HOUR
    assert whole.values["count"] == sum(h["count"] for h in hours)
    assert whole.values["sum"] == pytest.approx(sum(h["sum"] for h in hours))
    assert whole.values["min"] == min(h["min"] for h in hours)
    assert whole.values["max"] == max(h["max"] for h in hours)
    assert whole.values["first"] == firsts[0][1]["first"]
    assert whole.values["last"] == firsts[-1][1]["last"]
    await history.close()


def _by_hand(points: list[tuple[int, int]], start: int) -> list[tuple[int, dict[str, object]]]:
    hours: dict[int, list[tuple[int, int]]] = {}
    for ts, value in points:
        if start <= ts < start + 3 * HOUR:
            hours.setdefault(ts - ts % HOUR, []).append((ts, value))
    result = []
    for hour in sorted(hours):
        values = [v for _, v in sorted(hours[hour])]
        result.append(
            (
                hour,
                {
                    "avg": sum(values) / len(values),
                    "min": min(values),
                    "max": max(values),
                    "sum": sum(values),
                    "count": len(values),
                    "first": values[0],
                    "last": values[-1],
                },
            )
        )
    return result


async def test_rollups_owed_at_a_crash_are_made_at_the_next_start(place: HistoryPlace) -> None:
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0, 10)])
    every = buckets(T0, T0 + HOUR, "1h")
    assert (await history.aggregate([LAMP], "PM25", every, ["count"]))[0].values == {"count": 1}
    now = int(time.time() * 1000)
    history.add_points(LAMP, [("PM25", T0 - 1, 20)])  # out of order: noted on disk with it
    history.add_points(LAMP, [("PM25", now, 30)])  # in order: known in memory only
    await history.committed()
    await crash(history)  # killed: no rollup pass, no clean close
    again = await place.open()
    # before any query could make them
    counts = dict(await place.fetch("SELECT bucket, count FROM history_hours"))
    assert counts == {T0 - HOUR: 1, T0: 1, now - now % HOUR: 1}
    await again.close()


async def test_retention_deletes_old_history_in_small_steps_and_keeps_rollups_longer(
    place: HistoryPlace,
) -> None:
    history = await place.open()
    try:
        now = int(time.time() * 1000)
        day = 24 * HOUR
        today = now - now % HOUR
        # ten days of hourly values for 20 lamps, and a status change a day for one
        lamps = [("a1Lamp", f"lamp-{i}") for i in range(20)]
        for lamp in lamps:
            history.add_points(
                lamp, [("Brightness", today - h * HOUR, h % 100) for h in range(240)]
            )
        for d in range(10):
            history.add_log(LAMP, LogKind.STATUS, "online", today - d * day, {})
            # a device that only came and went, no values: its log is kept as long, no longer
            history.add_log(("a1Lamp", "gateway-1"), LogKind.STATUS, "online", today - d * day, {})
        # a product with no retention of its own
        history.add_points(("a1Other", "meter-1"), [("Energy", today - 9 * day, 1.0)])
        await history.committed()
        everything = buckets(today - 10 * day, today + HOUR, "1d")
        before = await history.aggregate(lamps, "Brightness", everything, ["count"])
        assert sum(b.values["count"] for b in before) == 20 * 240
        await history.set_retention("a1Lamp", Retention(raw_days=3, rollup_days=5))
        sweep = asyncio.ensure_future(history.sweeper.sweep_now())
        # ingest goes on between the steps: a commit while the pass still has steps to go
        history.add_points(LAMP, [("Brightness", now, 1)])
        await asyncio.wait_for(history.committed(), 10)
        assert not sweep.done()
        await asyncio.wait_for(sweep, 60)
        assert history.sweeper.deleted_steps > 20 * 7  # a day of one series per step at most
        raw = await history.points(LAMP, "Brightness", today - 10 * day, now + 1, limit=10_000)
        assert min(p.ts for p in raw.points) >= now - 3 * day
        log = await history.log(LAMP, today - 10 * day, now + 1)
        assert len(log.entries) == 3
        quiet = await history.log(("a1Lamp", "gateway-1"), today - 10 * day, now + 1)
        assert len(quiet.entries) == 3
        # a pass with nothing older than the cutoffs commits nothing: no step, no transaction
        steps = history.sweeper.deleted_steps
        await asyncio.wait_for(history.sweeper.sweep_now(), 60)
        assert history.sweeper.deleted_steps == steps
        # aggregates reach back as far as the rollups: 5 days, from the rollups alone
        after = await history.aggregate(lamps, "Brightness", everything, ["count"])
        assert min(b.start for b in after) >= now - 5 * day - day
        assert sum(b.values["count"] for b in after) > sum(len(raw.points) for _ in lamps)
        kept = await history.points(("a1Other", "meter-1"), "Energy", today - 10 * day, now)
        assert len(kept.points) == 1
    finally:  # (a failed assertion must not leave its connections to a later test's gc)
        await history.close()
    again = await place.open()  # the product's retention is kept
    try:
        assert again.retention("a1Lamp") == Retention(raw_days=3, rollup_days=5)
        assert again.retention("a1Other") == Retention()
    finally:
        await again.close()


@pytest.mark.parametrize("seed", range(6))
async def test_rollups_kept_as_values_arrive_equal_rollups_made_from_scratch(
    place: HistoryPlace, seed: int
) -> None:
    """Values in order and out of it, replacements, text among numbers, passes at random
    moments and a restart: the minutes, hours and days are those computed from the points
    alone (days in a town whose midnight falls on an hour of UTC, and in one where it falls
    on a half hour)."""
    rng = random.Random(seed)
    zone = ("UTC", "Asia/Shanghai", "Asia/Kolkata")[seed % 3]
    history = await place.open(zone)
    devices = [LAMP, OTHER]
    for step in range(40):
        if step == 20:  # a clean restart halfway
            await history.close()
            history = await place.open(zone)
        device = rng.choice(devices)
        base = T0 + rng.randrange(0, 30 * HOUR)
        points = []
        for _ in range(rng.randrange(1, 30)):
            ts = base + rng.randrange(-5 * MINUTE, 5 * MINUTE) if rng.random() < 0.3 else base
            base += rng.randrange(1, 20_000)
            value: object = rng.choice([rng.randrange(100), rng.random() * 50])
            if rng.random() < 0.02:
                value = "text"
            points.append(("PM25", ts, value))
        history.add_points(device, points)
        if rng.random() < 0.3:
            await history.rolled_up()
    await history.close()
    await place.assert_rollups_as_from_scratch(zone)


async def test_a_new_time_zone_makes_the_days_again(place: HistoryPlace) -> None:
    history = await place.open("UTC")
    history.add_points(LAMP, [("PM25", T0 + h * HOUR, h) for h in range(48)])
    await history.close()
    shanghai = await place.open("Asia/Shanghai")
    starts = [b for (b,) in await place.fetch("SELECT bucket FROM history_days ORDER BY bucket")]
    assert starts == [T0 - 8 * HOUR, T0 + 16 * HOUR, T0 + 40 * HOUR]  # Shanghai's midnights
    days = buckets(T0 - 8 * HOUR, T0 + 64 * HOUR, "1d", "Asia/Shanghai")
    found = await shanghai.aggregate([LAMP], "PM25", days, ["count", "sum"])
    assert [b.values["count"] for b in found] == [16, 24, 8]
    assert sum(b.values["sum"] for b in found) == sum(range(48))
    await shanghai.close()


async def test_a_time_beyond_the_calendar_is_kept_and_rolled_up(place: HistoryPlace) -> None:
    """A device's clock in microseconds (the store takes any time it is given) puts a value
    in the year 57,886: it is kept, and its day is UTC's (no zone says otherwise that far)."""
    history = await place.open("Asia/Shanghai")
    far = T0 * 1000
    history.add_points(LAMP, [("PM25", far, 7)])
    await history.rolled_up()
    assert (await history.points(LAMP, "PM25", far, far + 1)).points[0].value == 7
    assert await place.fetch("SELECT bucket FROM history_days") == [(far - far % (24 * HOUR),)]
    await history.close()


async def test_a_few_values_are_staged_and_read_back_in_the_order_they_came(
    tmp_path: Path,
) -> None:
    """SQLite: a flush of a few values (a QoS 1 post) is appended to the staged values; reads
    find them with the points, a large flush and a close move them first, and at the same
    millisecond the later value is kept, whichever table each went through."""
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0, 1)])
    await history.committed()
    history.add_points(LAMP, [("PM25", T0, 2), ("PM25", T0 + 1, 3)])  # replaces T0
    await history.committed()
    assert await place.fetch("SELECT count(*) FROM history_staged") == [(3,)]
    assert await place.fetch("SELECT count(*) FROM history_points") == [(0,)]
    page = await history.points(LAMP, "PM25", T0, T0 + 10)
    assert [(p.ts, p.value) for p in page.points] == [(T0, 2), (T0 + 1, 3)]
    page = await history.points(LAMP, "PM25", T0, T0 + 10, limit=1, descending=True)
    assert [(p.ts, p.value) for p in page.points] == [(T0 + 1, 3)] and page.next is not None
    history.add_points(LAMP, [("PM25", T0 + 1, 4)])  # staged ...
    big = [("PM25", T0 + 2 + n, n) for n in range(ingest.STAGE_BELOW)]
    await history.committed()
    history.add_points(LAMP, [("PM25", T0 + 1, 5), *big])  # ... then a large flush
    await history.committed()
    page = await history.points(LAMP, "PM25", T0, T0 + 3)
    assert [(p.ts, p.value) for p in page.points] == [(T0, 2), (T0 + 1, 5), (T0 + 2, 0)]
    history.add_points(LAMP, [("PM25", T0 + 1, 6)])  # staged, left for the close
    await history.close()
    assert await place.fetch("SELECT count(*) FROM history_staged") == [(0,)]
    assert await place.fetch(f"SELECT value FROM history_points WHERE ts = {T0 + 1}") == [(6,)]


async def _staged_once_moved(place: HistoryPlace) -> int:
    """The values staged once the writer has moved what it moves while idle (ten seconds at
    most)."""

    async def staged() -> int:
        return int((await place.fetch("SELECT count(*) FROM history_staged"))[0][0])

    for _ in range(200):
        if await staged() < SETTLE_CHUNK:
            break
        await asyncio.sleep(0.05)
    return await staged()


async def test_the_writer_moves_staged_values_while_it_has_nothing_else_to_do(
    tmp_path: Path,
) -> None:
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    for n in range(2 * SETTLE_CHUNK + 10):  # a post at a time, each committed
        history.add_points(LAMP, [("PM25", T0 + n, n)])
        if n % 100 == 0:
            await history.committed()
    await history.committed()
    assert await _staged_once_moved(place) < SETTLE_CHUNK  # (fewer wait for a read or a pass)
    points = await place.fetch("SELECT count(*) FROM history_points")
    assert points[0][0] >= 2 * SETTLE_CHUNK - 10
    await history.close()


async def test_the_writer_moves_staged_values_a_slice_of_the_series_at_a_time(
    tmp_path: Path,
) -> None:
    """Many series' staged values are moved a slice at a time (each series' in the order they
    came: a later value replaces an earlier at the same millisecond), until fewer than a chunk
    wait; a page reads each series whole meanwhile."""
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    series = 50
    per_series = (SETTLE_CHUNK + SETTLE_SLICE) // series + 10
    for n in range(per_series):
        for k in range(series):  # a post at a time, each committed: staged
            history.add_points(LAMP, [(f"p{k}", T0 + n, n)])
            history.add_points(LAMP, [(f"p{k}", T0 + n, n + 0.5)])  # (the same millisecond)
            await history.committed()
    assert 0 < await _staged_once_moved(place) < SETTLE_CHUNK  # (a slice at a time)
    for k in range(series):
        page = await history.points(LAMP, f"p{k}", T0, T0 + per_series)
        assert [(p.ts, p.value) for p in page.points] == [
            (T0 + n, n + 0.5) for n in range(per_series)
        ]
    await history.close()


def _one_slice(tmp_path: Path, staged: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """These values staged (in order) in a new history, one idle move made: what it moved."""
    with sqlite3.connect(tmp_path / "history.db") as db:
        db.executemany("INSERT INTO history_staged (series_id, ts, value) VALUES (?, ?, ?)", staged)
    conn = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    try:
        conn.executescript(TEMP_SCHEMA)
        conn.execute("BEGIN")
        assert settle_some(conn)
        conn.execute("COMMIT")
        moved = conn.execute("SELECT series_id, ts FROM history_points ORDER BY 1, 2").fetchall()
        left = conn.execute("SELECT count(*) FROM history_staged").fetchone()[0]
    finally:
        conn.close()
    assert left + len(moved) == len(staged)
    return moved


async def test_a_slice_moves_the_oldest_values_of_the_series_with_the_oldest(
    tmp_path: Path,
) -> None:
    """One idle move: the values, among the oldest ``SETTLE_CHUNK``, of the series with the
    oldest, in turn, until they hold ``SETTLE_SLICE``; later values of those series, and the
    other series' values, stay staged (so one busy series makes no larger slice, and many
    series a slice of them)."""
    for case in ("blocks", "interleaved"):
        place = HistoryPlace("sqlite", tmp_path / case)
        (tmp_path / case).mkdir()
        history = await place.open()
        await history.close()
        if case == "blocks":
            head = [(s, T0 + n, n) for s in range(10) for n in range(SETTLE_SLICE // 10)]
            rest = [
                (s, T0 + n, n)
                for n in range((SETTLE_CHUNK - SETTLE_SLICE) // 80)
                for s in range(10, 90)
            ]  # fmt: skip (filling the oldest SETTLE_CHUNK)
            tail = [(s, T0 + 1_000 + n, n) for s in range(10) for n in range(100)]
            moved = _one_slice(tmp_path / case, head + rest + tail)
            assert moved == sorted((s, ts) for s, ts, _ in head)
        else:  # 500 series, ten values each, in turn
            moved = _one_slice(
                tmp_path / case, [(s, T0 + n, n) for n in range(10) for s in range(500)]
            )
            assert SETTLE_SLICE <= len(moved) < SETTLE_SLICE + 10
            assert {s for s, _ in moved} == set(range(len(moved) // 10))


def _lock(tmp_path: Path) -> sqlite3.Connection:
    """Another process holding history.db's write lock."""
    blocker = sqlite3.connect(tmp_path / "history.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


async def test_staged_values_are_read_while_the_writer_is_busy_or_failing(
    tmp_path: Path,
) -> None:
    """A page of points reads the staged values itself: two reads behind a busy writer, one
    behind a large flush (which moves them), and one while the writer cannot write, all find
    the value acknowledged."""
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0, 1)])
    await history.committed()  # (acknowledged: staged)
    history._writer.execute(  # the writer busy for a while
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
        "SELECT count(*) FROM c"
    )
    reads = await asyncio.gather(*(history.points(LAMP, "PM25", T0, T0 + 10) for _ in range(2)))
    assert [[p.value for p in page.points] for page in reads] == [[1], [1]]
    history.add_points(OTHER, [("X", T0 + n, n) for n in range(100_000)])  # moves them first
    flushed = history.committed()
    page = await history.points(LAMP, "PM25", T0, T0 + 10)
    assert [p.value for p in page.points] == [1]
    await flushed
    history.add_points(LAMP, [("PM25", T0 + 1, 2)])
    await history.committed()
    history._writer.execute("PRAGMA busy_timeout=50")
    blocker = _lock(tmp_path)
    page = await history.points(LAMP, "PM25", T0, T0 + 10)
    assert [p.value for p in page.points] == [1, 2]
    blocker.execute("ROLLBACK")
    blocker.close()
    await history.close()


async def test_a_large_flush_that_failed_leaves_no_older_staged_value_to_win_later(
    tmp_path: Path,
) -> None:
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    history._writer.execute("PRAGMA busy_timeout=50")
    history.add_points(LAMP, [("PM25", T0, 1)])  # staged
    await history.committed()
    big = [("Other", T0 + n, n) for n in range(ingest.STAGE_BELOW)]
    blocker = _lock(tmp_path)
    history.add_points(LAMP, big)  # a large flush, which moves what is staged first: fails
    with pytest.raises(StoreUnavailable):
        await asyncio.wait_for(history.committed(), 10)
    blocker.execute("ROLLBACK")
    blocker.close()
    history.add_points(LAMP, [("PM25", T0, 2), *big])  # the later value, in a large flush
    await history.committed()
    await history.close()
    again = await place.open()
    page = await again.points(LAMP, "PM25", T0, T0 + 10)
    assert [p.value for p in page.points] == [2]
    await again.close()


async def test_retention_deletes_staged_values_past_the_cutoff(tmp_path: Path) -> None:
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open(retention=Retention(raw_days=1))
    now = int(time.time() * 1000)
    old = now - 3 * 24 * HOUR
    history.add_points(LAMP, [("PM25", old, 1)])  # a device's old time, in a QoS 1 post
    await history.committed()
    await history.sweeper.sweep_now()
    assert (await history.points(LAMP, "PM25", old, now)).points == []
    await history.close()


async def test_a_sqlite_pass_asked_for_while_one_runs_is_planned_after_it(
    tmp_path: Path,
) -> None:
    """The timer's pass fails (the file locked); a pass asked for meanwhile is planned only
    once it has, so it recomputes the first one's minutes rather than claiming them with its
    marks, and a crash after it loses none."""
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0 + n, n) for n in range(600)])
    await history.committed()
    history._writer.execute("PRAGMA busy_timeout=300")
    await history.committed()
    blocker = _lock(tmp_path)
    first = history._roll_up()
    await asyncio.sleep(0.1)
    history.add_points(LAMP, [("PM25", T0 + 2 * MINUTE + n, n) for n in range(600)])
    second = history._roll_up()
    await asyncio.sleep(0.35)
    blocker.execute("ROLLBACK")
    blocker.close()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(outcomes[0], StoreUnavailable) and outcomes[1] is None
    await crash(history)  # killed before any other pass
    again = await place.open()
    await again.close()
    await place.assert_rollups_as_from_scratch("UTC")


async def test_a_close_that_outlasts_a_running_pass_starts_no_pass_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass asked for by the close while another runs, which outlasts the close's wait, is
    not started once the writer is closed (it was queued on a closed writer, which re-armed
    the timer for ever after)."""
    monkeypatch.setattr(ingest, "CLOSE_WAIT", 0.3)
    place = HistoryPlace("sqlite", tmp_path)
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0, 1)])
    history._writer.execute("PRAGMA busy_timeout=5000")
    await history.committed()
    blocker = _lock(tmp_path)
    running = history._roll_up()  # held up by the lock
    history.add_points(LAMP, [("PM25", T0 + MINUTE, 2)])
    closing = asyncio.ensure_future(history.close())
    await asyncio.sleep(0.6)  # (past the close's wait)
    blocker.execute("ROLLBACK")
    blocker.close()
    await asyncio.wait_for(closing, 10)
    assert running is not None
    await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 10)
    await asyncio.sleep(0.1)
    assert history._rollup is None and history._passes_wanted is None
