"""Aggregates over ranges off the rollups' boundaries: the plan (which table answers which part
of the range) and, on both backends, the composed answer against the values by hand."""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from history_places import HistoryPlace
from hongshan.store.history import rollups
from hongshan.store.history.buckets import buckets
from hongshan.store.history.model import Bucket, Buckets, HistoryProblem

LAMP = ("a1Lamp", "lamp-1")
OTHER = ("a1Lamp", "lamp-2")
T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z
SECOND = 1000
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
NAMES = ["count", "sum", "avg", "min", "max", "first", "last"]
SHANGHAI = rollups.TownDays("Asia/Shanghai")


def tables(every: Buckets, days: rollups.TownDays = SHANGHAI) -> list[tuple[str, int, int]]:
    return [(p.table, p.buckets.start, p.buckets.end) for p in rollups.plan(every, days)]


def test_the_last_24_hours_by_the_hour_read_the_hours_between_two_partial_ends() -> None:
    start = T0 + 17 * MINUTE + 12_345  # "now" less a day: never on an hour
    plan = tables(buckets(start, start + DAY, "1h"))
    assert plan == [
        ("history_points", start, T0 + 18 * MINUTE),
        ("history_minutes", T0 + 18 * MINUTE, T0 + HOUR),
        ("history_hours", T0 + HOUR, T0 + DAY),
        ("history_minutes", T0 + DAY, T0 + DAY + 17 * MINUTE),
        ("history_points", T0 + DAY + 17 * MINUTE, start + DAY),
    ]


def test_buckets_off_the_hour_read_minutes_and_those_off_the_minute_read_points() -> None:
    start = T0 + 12_345
    kolkata = buckets(start, start + DAY, "1h", "Asia/Kolkata")  # hours from :30 UTC
    assert [t for t, _, _ in tables(kolkata)] == [
        "history_points",
        "history_minutes",
        "history_points",
    ]
    assert tables(buckets(start, start + DAY, "30s")) == [("history_points", start, start + DAY)]
    aligned = buckets(T0, T0 + DAY, "1h")  # one table, read as before
    assert tables(aligned) == [("history_hours", T0, T0 + DAY)]
    assert rollups.level(aligned, SHANGHAI) == "history_hours"
    assert rollups.level(buckets(start, start + DAY, "1h"), SHANGHAI) == "history_points"


def test_the_towns_calendar_days_read_the_day_rollups_inside_the_range() -> None:
    midnight = T0 - 8 * HOUR  # 1 December in Shanghai
    start = midnight + 5 * HOUR + 7 * MINUTE + 1
    every = buckets(start, start + 3 * DAY, "1d", "Asia/Shanghai")
    plan = rollups.plan(every, SHANGHAI)
    assert [(p.table, p.buckets.start, p.buckets.end) for p in plan][2:5] == [
        ("history_hours", midnight + 6 * HOUR, midnight + DAY),
        ("history_days", midnight + DAY, midnight + 3 * DAY),
        ("history_hours", midnight + 3 * DAY, midnight + 3 * DAY + 5 * HOUR),
    ]
    # each piece's calendar buckets are those it overlaps, named as in the whole question
    assert plan[0].buckets.bounds == (midnight, midnight + 5 * HOUR + 8 * MINUTE)
    assert plan[3].buckets.bounds == (midnight + DAY, midnight + 2 * DAY, midnight + 3 * DAY)
    # days in another zone than the town's are not its days: its hours answer them
    utc = buckets(start, start + 3 * DAY, "1d", "UTC")
    assert "history_days" not in {p.table for p in rollups.plan(utc, SHANGHAI)}
    assert "history_hours" in {p.table for p in rollups.plan(utc, SHANGHAI)}


EVERY = st.sampled_from(["1s", "30s", "1m", "5m", "1h", "2h", "1d", "1w", "1mo"])
ZONES = st.sampled_from(["UTC", "Asia/Shanghai", "Asia/Kolkata", "Europe/Berlin"])


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(T0 - 40 * DAY, T0 + 40 * DAY),
    length=st.integers(1, 70 * DAY),
    every=EVERY,
    zone=ZONES,
)
def test_a_plans_pieces_tile_the_range_and_no_rollup_row_straddles_a_bucket(
    start: int, length: int, every: str, zone: str
) -> None:
    try:
        question = buckets(start, start + length, every, zone)
    except HistoryProblem:  # too many buckets: asked for nothing
        assume(False)
        raise
    plan = rollups.plan(question, SHANGHAI)
    assert plan[0].buckets.start == start and plan[-1].buckets.end == start + length
    for before, after in itertools.pairwise(plan):
        assert before.buckets.end == after.buckets.start
    for piece in plan:
        lo, hi = piece.buckets.start, piece.buckets.end
        assert lo < hi
        if piece.table == "history_points":
            continue
        rows = _rows(piece.table, lo, hi)
        assert rows[0][0] == lo and rows[-1][1] == hi  # whole rollup rows only
        for row_start, row_end in rows:  # each inside one of the question's buckets
            assert _bucket_of(question, row_start) == _bucket_of(question, row_end - 1)


def _rows(table: str, lo: int, hi: int) -> list[tuple[int, int]]:
    if table == "history_days":
        rows, at = [], lo
        while at < hi:
            rows.append(SHANGHAI.of(at))
            at = rows[-1][1]
        return rows
    width = HOUR if table == "history_hours" else MINUTE
    return [(at, at + width) for at in range(lo, hi, width)]


def _bucket_of(question: Buckets, ts: int) -> int:
    if question.width:
        return question.start_of(ts)
    return question.bounds[bisect.bisect_right(question.bounds, ts) - 1]


def by_hand(
    values: dict[tuple[str, str], dict[int, int]], question: Buckets
) -> list[tuple[int, dict[str, Any]]]:
    """The aggregates of every series' values together, from the values themselves."""
    found: dict[int, list[tuple[int, int]]] = {}
    for series in values.values():
        for ts, value in series.items():
            if question.start <= ts < question.end:
                found.setdefault(_bucket_of(question, ts), []).append((ts, value))
    answer = []
    for start in sorted(found):
        ordered = [value for _, value in sorted(found[start])]
        total = sum(ordered)
        answer.append(
            (
                start,
                {
                    "count": len(ordered),
                    "sum": total,
                    "avg": total / len(ordered),
                    "min": min(ordered),
                    "max": max(ordered),
                    "first": ordered[0],
                    "last": ordered[-1],
                },
            )
        )
    return answer


def assert_agrees(found: list[Bucket], expected: list[tuple[int, dict[str, Any]]]) -> None:
    assert [b.start for b in found] == [start for start, _ in expected]
    for bucket, (_, values) in zip(found, expected, strict=True):
        assert bucket.values["avg"] == pytest.approx(values["avg"])
        assert {k: v for k, v in bucket.values.items() if k != "avg"} == {
            k: v for k, v in values.items() if k != "avg"
        }


def add(
    history: Any,
    values: dict[tuple[str, str], dict[int, int]],
    rng: random.Random,
    n: int,
    base: int,
) -> None:
    """``n`` values to each series at random times over three days (the lamp's at even
    milliseconds, the other's at odd: a first or last is never a tie), whole numbers (their
    sums are exact)."""
    for parity, device in enumerate((LAMP, OTHER)):
        points = []
        for _ in range(n):
            ts = base + rng.randrange(0, 3 * DAY // 2) * 2 + parity
            value = rng.randint(-1000, 1000)
            points.append(("PM25", ts, value))
            values.setdefault(device, {})[ts] = value
        history.add_points(device, points)


# (a town, and when its values begin: Berlin's over the night its clocks went back, a day of
# 25 hours)
TOWNS = [
    ("Asia/Shanghai", T0, 0),
    ("Asia/Shanghai", T0, 1),
    ("Europe/Berlin", 1_761_350_400_000, 2),  # 2025-10-25T00:00:00Z
]


@pytest.mark.parametrize(("town", "base", "seed"), TOWNS, ids=["Shanghai", "Shanghai", "Berlin"])
async def test_composed_aggregates_equal_the_values_by_hand(
    place: HistoryPlace, town: str, base: int, seed: int
) -> None:
    """Random ranges off the rollups' boundaries, fixed and calendar buckets, in the town's
    zone and others: every aggregate equals the one made from the values; values that came
    since the last rollup pass count too."""
    rng = random.Random(seed)
    history = await place.open(town)
    values: dict[tuple[str, str], dict[int, int]] = {}
    add(history, values, rng, 3000, base)
    await history.committed()
    choices = [("1m", "UTC"), ("5m", "UTC"), ("1h", "UTC"), ("1h", "Asia/Kolkata")]
    choices += [("1d", town), ("1d", "UTC"), ("1w", town), ("30s", "UTC"), ("2h", town)]
    for round_ in range(24):
        if round_ in (8, 16):  # more values, some replacing others, no pass awaited
            add(history, values, rng, 50, base)
            await history.committed()
        every, zone = choices[round_ % len(choices)]
        start = base - HOUR + rng.randrange(0, 2 * DAY)
        end = start + rng.randrange(1, 2 * DAY)
        question = buckets(start, end, every, zone)
        found = await history.aggregate([LAMP, OTHER], "PM25", question, NAMES)
        assert_agrees(found, by_hand(values, question))
        # whole numbers' sums are whole, whichever table answered
        assert all(type(b.values["sum"]) is int for b in found)
    await history.close()


async def test_a_composed_aggregate_reads_the_rollups_for_the_middle(place: HistoryPlace) -> None:
    """Points under the middle of the range deleted behind the store's back: the answer is the
    same, read from the rollups, not from the points."""
    history = await place.open()
    history.add_points(LAMP, [("PM25", T0 + s * 10 * SECOND, s % 7) for s in range(3 * 360)])
    await history.committed()
    start = T0 + 12_345
    question = buckets(start, start + 2 * HOUR, "1h")
    before = await history.aggregate([LAMP], "PM25", question, NAMES)
    await place.fetch(
        f"DELETE FROM history_points WHERE ts >= {T0 + HOUR} AND ts < {T0 + 2 * HOUR}"
    )
    assert await history.aggregate([LAMP], "PM25", question, NAMES) == before
    assert before[1].values["count"] == 360
    await history.close()


async def test_text_and_json_values_are_counted_and_ordered_across_the_pieces(
    place: HistoryPlace,
) -> None:
    """A range off the rollups' edges over text and JSON values: counts add, the first comes
    from the raw points at the start and the last from those at the end."""
    history = await place.open()
    texts = [("Name", T0 + s * 20 * SECOND, f"n{s}") for s in range(400)]
    shapes = [("Shape", T0 + s * 20 * SECOND, {"s": s}) for s in range(400)]
    history.add_points(LAMP, texts + shapes)
    await history.committed()
    start, end = T0 + 5 * SECOND, T0 + 2 * HOUR + 5 * SECOND  # n1 to n360
    question = buckets(start, end, "1h")
    assert {p.table for p in rollups.plan(question, SHANGHAI)} >= {
        "history_points",
        "history_hours",
    }
    asked = ["count", "first", "last"]
    names = await history.aggregate([LAMP], "Name", question, asked)
    assert [(b.start, b.values) for b in names] == [
        (T0, {"count": 179, "first": "n1", "last": "n179"}),
        (T0 + HOUR, {"count": 180, "first": "n180", "last": "n359"}),
        (T0 + 2 * HOUR, {"count": 1, "first": "n360", "last": "n360"}),
    ]
    shaped = await history.aggregate([LAMP], "Shape", question, asked)
    assert shaped[0].values == {"count": 179, "first": {"s": 1}, "last": {"s": 179}}
    await history.close()
