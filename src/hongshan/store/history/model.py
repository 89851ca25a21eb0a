"""What the history keeps and how it is asked, whatever the backend.

Writes are made on the event loop and never wait: they are queued for the store's one writer,
and ``committed()`` is the awaitable that says everything queued so far is durable (a QoS 1
post's PUBACK waits for it). Reads are coroutines.

Times are milliseconds since the epoch throughout. A device is ``(product_key, device_name)``.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from typing import Any, Protocol

import msgspec

from hongshan.errors import HongshanError
from hongshan.messages import Uplink
from hongshan.store.history.retention import Retention

Device = tuple[str, str]

# the aggregates a bucket can carry; first and last are the values of its earliest and latest
# points
AGGREGATES = ("avg", "min", "max", "sum", "count", "first", "last")
NUMERIC_AGGREGATES = frozenset({"avg", "min", "max", "sum"})


class LogKind(enum.StrEnum):
    """What else than property values the history keeps, one entry per happening."""

    EVENT = "event"  # identifier: the event; body: its output values
    SERVICE_REPLY = "service_reply"  # identifier: the service; body: code, data
    STATUS = "status"  # identifier: online | offline; body: address, reason
    PROPERTY_SET = "property_set"  # identifier: "set"; body: the values asked for
    SERVICE_CALL = "service_call"  # identifier: the service; body: its input values


class Point(msgspec.Struct, frozen=True, array_like=True):
    ts: int
    value: Any


class PointPage(msgspec.Struct, frozen=True):
    points: list[Point]
    next: str | None  # the cursor for the page after this one; None when this is the last


class Bucket(msgspec.Struct, frozen=True):
    start: int  # the bucket's first millisecond; it runs until the next one's start
    values: dict[str, Any]  # aggregate name -> value (None for avg/min/max/sum of nothing)


class Buckets(msgspec.Struct, frozen=True):
    """[start, end) cut into buckets: fixed ``width`` ms aligned to ``origin``, or the
    calendar ``bounds`` (every bucket's start, then ``end``). A bucket is named by its own
    start, which for the first one may lie before ``start``; only values in [start, end)
    count."""

    start: int
    end: int
    width: int = 0
    origin: int = 0
    bounds: tuple[int, ...] = ()

    def start_of(self, ts: int) -> int:
        """The start of the fixed bucket that holds ``ts``."""
        return ts - (ts - self.origin) % self.width


class LogEntry(msgspec.Struct, frozen=True):
    ts: int
    kind: LogKind
    identifier: str
    body: Any


class LogPage(msgspec.Struct, frozen=True):
    entries: list[LogEntry]
    next: str | None


class SeriesInfo(msgspec.Struct, frozen=True):
    """A property of a device that has values: what type they were stored as."""

    identifier: str
    kind: str  # bool | int | float | text | json


class HistoryProblem(HongshanError):
    """A question the history cannot answer as asked (a text property averaged, a bad cursor);
    the API answers it as 400 with this message."""

    http_status = 400


class HistoryStore(Protocol):
    # -- writing (event loop; never blocks) --------------------------------------------------

    def add_points(
        self, device: Device, points: Iterable[tuple[str, int, Any]], *, arrival: bool = False
    ) -> None:
        """Property values: (identifier, ts, value). A value already kept for the same property
        and millisecond is replaced: the device said what it was at that time. With
        ``arrival`` the times are when the values arrived, not the device's, and values of a
        property that arrive in the same millisecond are all kept, a millisecond apart."""

    def add_log(
        self, device: Device, kind: LogKind, identifier: str, ts: int, body: Any
    ) -> None: ...

    def add_taken(self, device: Device, key: bytes, ts: int) -> None:
        """Remember that the message with identity ``key`` was taken (committed with what it
        said), so that its resend is recognised (``was_taken``), after a crash too."""

    def was_taken(self, device: Device, key: bytes) -> Awaitable[None] | None:
        """None when this message was not taken; else the outcome of the transaction that
        holds it: done when committed, pending while not known, failed (``StoreUnavailable``)
        when rolled back — a resend's acknowledgement waits for it. Keys from before a
        restart are known for the minutes before the last one taken."""

    def committed(self) -> Awaitable[None]:
        """Done once everything added before is durable; fails with ``StoreUnavailable``."""

    @property
    def problem(self) -> str | None:
        """Why the last write failed, until one succeeds (for the health endpoint)."""

    # -- reading --------------------------------------------------------------------------------

    async def series(self, device: Device) -> list[SeriesInfo]: ...

    async def points(
        self,
        device: Device,
        identifier: str,
        start: int,
        end: int,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        descending: bool = False,
    ) -> PointPage:
        """Raw values with start <= ts < end, oldest first (newest first if ``descending``)."""

    async def aggregate(
        self,
        devices: Sequence[Device],
        identifier: str,
        buckets: Buckets,
        aggregates: Sequence[str],
    ) -> list[Bucket]:
        """Aggregates of the values of ``identifier`` of all ``devices`` together, per bucket
        (``buckets.buckets``); buckets without values are left out."""

    async def log(
        self,
        device: Device,
        start: int,
        end: int,
        *,
        kinds: Sequence[LogKind] = (),
        limit: int = 1000,
        cursor: str | None = None,
    ) -> LogPage: ...

    def replay(
        self,
        start: int,
        end: int,
        *,
        product: str | None = None,
        device: Device | None = None,
        chunk: int = ...,
    ) -> AsyncIterator[list[Uplink]]:
        """What was recorded in [start, end) (of one device, a product's devices, or all) as
        the uplinks heard, in time order, a chunk at a time (``replay``)."""

    # -- retention (per product) ----------------------------------------------------------------

    default_retention: Retention  # the server's (history_raw_days, history_rollup_days)

    def retention(self, product_key: str) -> Retention:
        """The product's own retention, else ``default_retention`` (that very object)."""

    async def set_retention(self, product_key: str, retention: Retention | None) -> None:
        """A product's own retention (None: back to the default), once committed."""

    # -- at start (what a crash may have left behind elsewhere) ---------------------------------

    async def latest_values(self) -> dict[Device, dict[str, tuple[Any, int]]]:
        """Each series' newest committed value and its time: the registry's copy of the
        latest values is saved every second, the history before a post is acknowledged."""

    async def last_status(self) -> dict[Device, str]:
        """Each device's last status entry ("online" or "offline"), for those with one."""

    async def close(self) -> None: ...


def cursor_of(text: str | None, parts: int) -> tuple[int, ...] | None:
    """The numbers of a page cursor a store gave (``ts`` or ``ts:seq``)."""
    if text is None:
        return None
    try:
        numbers = tuple(int(part) for part in text.split(":"))
    except ValueError:
        numbers = ()
    if len(numbers) != parts:
        raise HistoryProblem(f"cursor {text!r} is not one this history gave")
    return numbers
