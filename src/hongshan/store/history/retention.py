"""Retention, whatever the backend: raw values and the log for ``raw_days``, rollups for
``rollup_days``, per product, enforced in the background in small steps.

A pass every ``EVERY`` seconds plans its steps (which series have values older than their
product's cutoff, and from when), then queues them to the store's writer one at a time: each
deletes at most a day of one series, and the next is queued only when it has committed. Between
two steps the writer commits whatever the devices sent, so a first pass over years of data never
holds ingest up for longer than one small delete.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol

import msgspec

log = logging.getLogger("hongshan.history")

EVERY = 60.0  # seconds between passes
STEP_MS = 86_400_000  # one step deletes at most this much of one series' time
DAY_MS = 86_400_000


# A century: longer is "for ever" (null). Without a bound, 1e308 days made a cutoff no
# integer holds, and every product's retention pass failed.
MAX_DAYS = 36_500
Days = Annotated[float, msgspec.Meta(le=MAX_DAYS)]  # (> 0: the API says so in its words)


class Retention(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """How long a product's history is kept, in days (at most ``MAX_DAYS``); None keeps it
    for ever."""

    raw_days: Days | None = None  # raw values, events and status changes
    rollup_days: Days | None = None  # minute and hour aggregates

    def cutoffs(self, now: int) -> tuple[int | None, int | None]:
        return _cutoff(self.raw_days, now), _cutoff(self.rollup_days, now)


def _cutoff(days: float | None, now: int) -> int | None:
    # (a setting saved before days were bounded, past MAX_DAYS: kept for ever, as it meant)
    if days is None or days > MAX_DAYS:
        return None
    return now - int(days * DAY_MS)


# a step: (sql, params) run as one writer item
Step = tuple[str, tuple[Any, ...]]
Plan = Callable[[], Awaitable[list[Step]]]


class Writer(Protocol):
    """What the sweeper needs of a store's writer (SQLite's and PostgreSQL's both)."""

    def executemany(
        self, *parts: tuple[Any, Sequence[Sequence[Any]]], outcome: Callable[[bool], None] | None
    ) -> None: ...


class Sweeper:
    """Runs passes of ``plan``'s steps through ``writer``, one committed step at a time."""

    def __init__(self, writer: Writer, loop: asyncio.AbstractEventLoop, plan: Plan) -> None:
        self._writer = writer
        self._loop = loop
        self._plan = plan
        self._steps: deque[Step] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.deleted_steps = 0

    def start(self, delay: float = EVERY) -> None:
        if self._timer is None and self._task is None:
            self._timer = self._loop.call_later(delay, self._begin)

    def _begin(self) -> None:
        self._timer = None
        self._idle.clear()
        self._task = self._loop.create_task(self._run_pass())

    async def _run_pass(self) -> None:
        try:
            self._steps = deque(await self._plan())
        except Exception:  # a read that failed: try again next pass
            log.exception("retention: could not plan a pass")
            self._steps = deque()
        self._task = None
        self._next(True)

    def _next(self, _committed: bool) -> None:
        if not self._steps:
            self._idle.set()
            self.start()
            return
        sql, params = self._steps.popleft()
        self.deleted_steps += 1
        self._writer.executemany((sql, [params]), outcome=self._next)

    async def sweep_now(self) -> None:
        """A whole pass now (tests, and an operator who just shortened a retention)."""
        await self._idle.wait()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._begin()
        await self._idle.wait()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
        self._steps.clear()


def point_steps(delete: str, series_id: int, oldest: int, cutoff: int) -> list[Step]:
    """Delete one series' values before ``cutoff``, a day at a time from its oldest (``delete``
    takes the series, the first and the end millisecond)."""
    steps = []
    start = oldest
    while start < cutoff:
        end = min(start + STEP_MS, cutoff)
        steps.append((delete, (series_id, start, end)))
        start = end
    return steps
