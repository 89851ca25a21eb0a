"""``committed()`` for every writer (SQLite's thread and process, PostgreSQL's task): a marker
queued after what it answers for, whose waiters are told when the writer reaches it, and what
each marker of a batch is told (``OwedFailure``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from hongshan.errors import StoreUnavailable

log = logging.getLogger("hongshan.store")


class Marker:
    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[None]] = []


class Markers:
    """A writer's markers: one is queued only when something was written since the last one,
    and every ``committed()`` until then shares it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.last: Marker | None = None  # the marker queued last, not yet reached
        self.dirty = False  # statements queued since it (the writer sets this)

    def committed(self, queue: Callable[[Marker], None]) -> Awaitable[None]:
        """Done once everything queued before is durable; ``queue`` puts a new marker in the
        writer's queue."""
        future: asyncio.Future[None] = self._loop.create_future()
        if self.dirty:
            self.last = Marker()
            queue(self.last)
            self.dirty = False
        elif self.last is None:
            future.set_result(None)
            return future
        self.last.waiters.append(future)
        return future

    def answer(self, markers: Iterable[Marker], errors: Iterable[str | None]) -> None:
        """Each of ``markers`` told its own error (``OwedFailure.answers``)."""
        for marker, error in zip(markers, errors, strict=True):
            self.resolve((marker,), error)

    def resolve(self, markers: Iterable[Marker], error: str | None) -> None:
        """The writer reached ``markers``: their waiters are told (``StoreUnavailable`` with
        ``error`` if it is not None)."""
        for marker in markers:
            if marker is self.last:
                self.last = None
            for future in marker.waiters:
                if future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(StoreUnavailable(error))


class OwedFailure:
    """What the markers of each batch a writer runs are told, in order: a batch that failed
    tells its markers its error, and owes it to the next marker as well if anything was
    written after its last one (what waits on that write waits on a later marker); the first
    marker of a batch that committed answers for a failure owed from before it (a waiter is
    answered for everything queued before it)."""

    def __init__(self) -> None:
        self.error: str | None = None

    def answers(
        self, markers: int, error: str | None, *, written_after: bool = True
    ) -> list[str | None]:
        """``written_after``: the batch wrote something after its last marker."""
        if not markers:
            if error is not None:
                self.error = error
            return []
        owed, self.error = self.error, None
        if error is not None:
            if written_after:
                self.error = error
            return [error] * markers
        return [owed] + [None] * (markers - 1)


def written_after_last_marker(kinds: Iterable[bool]) -> bool:
    """Whether a batch, given as whether each item is a marker (markers and writes; nothing
    else), holds a write after its last marker."""
    after = False
    for is_marker in kinds:
        after = not is_marker
    return after


def tell(outcome: Callable[[bool], None], committed: bool) -> None:
    """An item's outcome told to its caller: one caller's mistake must not stop the writer, nor
    the answers after it."""
    try:
        outcome(committed)
    except Exception:
        log.exception("history: an outcome callback failed")
