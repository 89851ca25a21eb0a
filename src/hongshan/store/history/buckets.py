"""Time buckets for aggregates: ``every`` as ``30s``, ``5m``, ``1h``, ``1d``, ``1w``, ``1mo``,
``1y``, in a time zone.

Seconds, minutes and hours are fixed widths, aligned to the zone's offset from UTC at the start
of the range (an hour in Asia/Kolkata runs from :30 UTC). Days, weeks (from Monday) and months
and years are calendar buckets: the town's day is its local midnight to midnight, however long
daylight saving makes it. Pure functions; no store.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from hongshan.store.history.model import Buckets, HistoryProblem

_FIXED_MS = {"s": 1000, "m": 60_000, "h": 3_600_000}
_EVERY = re.compile(r"^(\d+)(s|m|h|d|w|mo|y)$")
MAX_BUCKETS = 100_000
_ROUGH_MS = {**_FIXED_MS, "d": 86_400_000, "w": 604_800_000, "mo": 2_678_400_000}
_ROUGH_MS["y"] = 366 * _ROUGH_MS["d"]
MAX_WIDTH_YEARS = 10_000
MAX_WIDTH_MS = MAX_WIDTH_YEARS * _ROUGH_MS["y"]


def parse_every(every: str) -> tuple[int, str]:
    found = _EVERY.match(every.strip())
    if found is None or int(found.group(1)) == 0:
        raise HistoryProblem(
            f"every={every!r}: expected a count and a unit, such as 30s, 5m, 1h, 1d, 1w, 1mo or 1y"
        )
    count, unit = int(found.group(1)), found.group(2)
    if count * _ROUGH_MS[unit] > MAX_WIDTH_MS:  # (a width SQL's 64-bit integers can hold)
        raise HistoryProblem(f"every={every!r}: a bucket is at most {MAX_WIDTH_YEARS:,} years")
    return count, unit


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise HistoryProblem(f"tz={name!r}: not a time zone (such as Asia/Shanghai)") from None


def buckets(start: int, end: int, every: str, tz: str = "UTC") -> Buckets:
    if end <= start:
        raise HistoryProblem("the range is empty: 'to' must be after 'from'")
    count, unit = parse_every(every)
    where = zone(tz)
    if unit in _FIXED_MS:
        width = count * _FIXED_MS[unit]
        if (end - start) // width > MAX_BUCKETS:
            raise HistoryProblem(f"every={every} makes more than {MAX_BUCKETS:,} buckets")
        offset = dt.datetime.fromtimestamp(start / 1000, where).utcoffset() or dt.timedelta()
        origin = -int(offset.total_seconds() * 1000)
        return Buckets(start=start, end=end, width=width, origin=origin)
    bounds = _calendar_bounds(start, end, count, unit, where)
    if len(bounds) > MAX_BUCKETS:
        raise HistoryProblem(f"every={every} makes more than {MAX_BUCKETS:,} buckets")
    return Buckets(start=start, end=end, bounds=tuple(bounds))


def _calendar_bounds(
    start: int, end: int, count: int, unit: str, where: zoneinfo.ZoneInfo
) -> list[int]:
    """The start of every bucket from the one holding ``start``, then ``end``."""
    local = dt.datetime.fromtimestamp(start / 1000, where)
    day = local.date()
    if unit == "w":
        day -= dt.timedelta(days=day.weekday())
    elif unit == "mo":
        day = day.replace(day=1)
    elif unit == "y":
        day = day.replace(month=1, day=1)
    bounds: list[int] = []
    at = _midnight(day, where)
    while at < end:
        bounds.append(at)
        try:
            day = _step(day, count, unit)
        except (ValueError, OverflowError):  # past year 9999: the last bucket runs to the end
            break
        at = _midnight(day, where)
        if len(bounds) > MAX_BUCKETS:
            break
    bounds.append(end)
    return bounds


def _step(day: dt.date, count: int, unit: str) -> dt.date:
    if unit == "d":
        return day + dt.timedelta(days=count)
    if unit == "w":
        return day + dt.timedelta(weeks=count)
    months = day.month - 1 + count * (12 if unit == "y" else 1)
    return day.replace(year=day.year + months // 12, month=months % 12 + 1)


def _midnight(day: dt.date, where: zoneinfo.ZoneInfo) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=where).timestamp() * 1000)


def bucket_label(start: int, tz: str) -> str:
    """A bucket's start in the zone, ISO 8601 with its offset (for CSV and the CLI)."""
    return dt.datetime.fromtimestamp(start / 1000, zone(tz)).isoformat(timespec="milliseconds")
