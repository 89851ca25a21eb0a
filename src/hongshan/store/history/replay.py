"""Replay: what the history recorded in a range, read back as the neutral uplinks the rest of
the platform heard live (``messages``), oldest first, a chunk at a time.

What comes back, for the devices asked for (one, a product's, or all):

- property values as ``PropertyValues``: the points of one device that share a millisecond
  are the values one post carried, regrouped into one uplink (``ts`` and ``received`` both
  that millisecond; ``device_time`` empty);
- the log as ``EventRaised``, ``ServiceReplied``, ``StatusChanged``, ``CommandSent`` and
  ``CommandGivenUp``, from its kinds and bodies (``pipeline.history`` writes them);
- in the order of their recorded times (a log line before values of the same millisecond),
  in chunks of about ``CHUNK`` values: a window of time is read at once, the window grown
  while it holds few values and shrunk (and read again) when it holds more than ``CAP``, so
  that a million values never sit in memory at once.

What cannot be replayed, because the history never kept it: a client's raw publish on a
topic that is no thing-model topic (a custom ``/{pk}/{dn}/user/…`` topic, any application's
topic), the republishes of rules, a post's idempotency key and the device's own message id,
firmware reports and registrations (the registry's, not the history's); and the order of
arrival where it differs from the recorded time (a point's time is the device's where it gave
one). Values the history kept a millisecond apart (``arrival``: several posts in one
millisecond) come back as separate posts.

Independent of the rules: anything that wants the town's past as it was heard (a rule's
backtest, a scene's) reads it here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from heapq import merge
from operator import attrgetter
from typing import Any

import msgspec

from hongshan.messages import (
    CommandGivenUp,
    CommandSent,
    DeviceRef,
    EventRaised,
    PropertyValues,
    ServiceReplied,
    StatusChanged,
    Uplink,
)
from hongshan.store.history.model import HistoryProblem, LogKind

CHUNK = 50_000  # values (points and log lines) a chunk aims at
CAP = 4 * CHUNK  # a window holding more is read again, halved
FIRST_WINDOW = 60_000  # ms: the first window; it doubles while it holds less than half a chunk

PointRow = tuple[int, int, Any]  # (ts, series id, value as stored)
LogRow = tuple[int, int, int, str, str, Any]  # (ts, device id, seq, kind, identifier, body JSON)
Window = tuple[list[PointRow], list[LogRow]]
ReadWindow = Callable[
    [Sequence[int], Sequence[int], int, int, int | None], Awaitable[Window | None]
]
"""A backend's read of one window: (series ids, device ids, start, end, cap) → its points and
log lines (in any order), or None when they are more than ``cap``."""
Decode = Callable[[str, Any], Any]  # (series kind, value as stored) → the value as posted

_unjson = msgspec.json.Decoder()
_received = attrgetter("received")


async def replay(
    read: ReadWindow,
    series: dict[int, tuple[DeviceRef, str, str]],
    devices: dict[int, DeviceRef],
    decode: Decode,
    start: int,
    end: int,
    *,
    chunk: int = CHUNK,
    plain: frozenset[str] = frozenset(),
) -> AsyncIterator[list[Uplink]]:
    """The uplinks of ``series`` (id → device, identifier, kind) and of the logs of
    ``devices`` (id → device) recorded in [start, end), a chunk (a list) at a time; values of
    the ``plain`` kinds are as stored, the others are decoded."""
    decoded: dict[int, tuple[DeviceRef, str, str | None]] = {
        series_id: (device, identifier, None if kind in plain else kind)
        for series_id, (device, identifier, kind) in series.items()
    }
    if start >= end:
        raise HistoryProblem(f"an empty range: from {start} is not before to {end}")
    if not series and not devices:
        return
    cap = max(4 * chunk, 1)
    series_ids, device_ids = sorted(series), sorted(devices)
    window = FIRST_WINDOW
    at = start
    while at < end:
        upto = min(end, at + window)
        got = await read(series_ids, device_ids, at, upto, cap if upto - at > 1 else None)
        if got is None:
            window = max(1, (upto - at) // 2)
            continue
        points, lines = got
        count = len(points) + len(lines)
        if count:
            yield _uplinks(points, lines, decoded, devices, decode)
        if count < chunk // 2:
            window = min(window * 2, max(end - start, 1))
        elif count > chunk:
            window = max(1, window // 2)
        at = upto


def _uplinks(
    points: list[PointRow],
    lines: list[LogRow],
    series: dict[int, tuple[DeviceRef, str, str | None]],
    devices: dict[int, DeviceRef],
    decode: Decode,
) -> list[Uplink]:
    posts = _posts(points, series, decode)
    if not lines:
        return posts
    lines.sort()
    logged = [u for u in (_logged(line, devices) for line in lines) if u is not None]
    return list(merge(logged, posts, key=_received))


def _posts(
    points: list[PointRow], series: dict[int, tuple[DeviceRef, str, str | None]], decode: Decode
) -> list[Uplink]:
    """Points in time order, those of one device in one millisecond made one post."""
    points.sort()
    posts: list[Uplink] = []
    add = posts.append
    current = -1
    group: dict[DeviceRef, dict[str, Any]] = {}
    for ts, series_id, value in points:
        if ts != current:
            if group:
                for device, values in group.items():
                    add(PropertyValues(device=device, received=current, values=values, ts=current))
                group = {}
            current = ts
        found = series.get(series_id)
        if found is None:
            continue
        device, identifier, kind = found
        into = group.get(device)
        if into is None:
            into = group[device] = {}
        into[identifier] = value if kind is None else decode(kind, value)
    for device, values in group.items():
        add(PropertyValues(device=device, received=current, values=values, ts=current))
    return posts


def _logged(line: LogRow, devices: dict[int, DeviceRef]) -> Uplink | None:
    """The uplink a log line was written from (``pipeline.history._line``)."""
    ts, device_id, _, kind, identifier, raw = line
    device = devices.get(device_id)
    if device is None:
        return None
    body = _unjson.decode(raw) if isinstance(raw, bytes | str) else raw
    if not isinstance(body, dict):
        body = {}
    match kind:
        case LogKind.EVENT:
            return EventRaised(device=device, received=ts, event=identifier, params=body, ts=ts)
        case LogKind.SERVICE_REPLY:
            return ServiceReplied(
                device=device,
                received=ts,
                call_id=str(body.get("id", "")),
                service=identifier,
                code=int(body.get("code", 0)),
                output=body.get("data"),
                message=str(body.get("message", "")),
            )
        case LogKind.STATUS:
            carrier = str(body.get("gateway", ""))
            pk, found, dn = carrier.partition("&")
            return StatusChanged(
                device=device,
                received=ts,
                online=identifier == "online",
                reason=str(body.get("reason", "")),
                address=str(body.get("address", "")),
                gateway=DeviceRef(pk, dn) if found else None,
            )
        case LogKind.PROPERTY_SET | LogKind.SERVICE_CALL:
            sets = kind == LogKind.PROPERTY_SET
            call_id = str(body.get("id", ""))
            if "outcome" in body:
                return CommandGivenUp(
                    device=device,
                    received=ts,
                    call_id=call_id,
                    service=identifier,
                    why=str(body["outcome"]),
                    sets_properties=sets,
                )
            return CommandSent(
                device=device,
                received=ts,
                call_id=call_id,
                service=identifier,
                params=body.get("params"),
                sets_properties=sets,
            )
    return None
