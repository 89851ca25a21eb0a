"""A scene's device triggers as small state machines, one per trigger and device: told what was
heard and when (ms, the caller's clock), they say whether to fire now, to wait until a time
(the caller sets a timer and calls ``expire`` then), or to give up a wait. No IO, no clock of
their own: ``services.scenes`` drives them with the loop's, tests with a fake one.

- ``Threshold``: a comparison that must start holding (a crossing) and, with a hold time,
  keep holding that long with no value breaking it; it fires once, then again only after a
  value that breaks it and a new crossing.
- ``Changed``: a value other than the last one known.
- ``Silence``: nothing heard for a time (fires once per silence; what is heard next re-arms it).
- ``Repeated``: a comparison that holds on N values in a row, the first and the Nth within a
  window; it fires on the Nth, once, then again only after a value that breaks it (a product's
  alarm conditions, ``rules.alarm_conditions``).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from typing import Any


class Next(enum.Enum):
    """What the caller does after a value: nothing, fire now, wait until ``due``, or give up
    the wait it set."""

    KEEP = "keep"
    FIRE = "fire"
    WAIT = "wait"
    CANCEL = "cancel"


class Threshold:
    """Whether a comparison holds, since when, and whether this stretch of holding has fired.
    ``hold`` (ms) 0 fires on the crossing itself."""

    __slots__ = ("fired", "hold", "since")

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.since: int | None = None  # when the comparison started holding; None: it does not
        self.fired = False

    @property
    def due(self) -> int | None:
        """When the wait under way ends, or None when none is."""
        if self.since is None or self.fired:
            return None
        return self.since + self.hold

    def observe(self, holds: bool, at: int) -> Next:
        """A value heard at ``at``, for which the comparison ``holds`` or not."""
        if not holds:
            waiting = self.due is not None
            self.since = None
            self.fired = False
            return Next.CANCEL if waiting else Next.KEEP
        if self.since is not None:
            return Next.KEEP  # (still holding: no new crossing)
        self.since = at
        if self.hold <= 0:
            self.fired = True
            return Next.FIRE
        return Next.WAIT

    def expire(self, now: int) -> bool:
        """The timer set for ``due`` went off at ``now``: whether to fire (once)."""
        due = self.due
        if due is None or now < due:
            return False
        self.fired = True
        return True

    def resume(self, history: Sequence[tuple[int, bool]]) -> None:
        """The state the values heard before a restart leave (``(at, holds)``, oldest first;
        from the last value before the hold time up to the newest): holding since the first
        of the last unbroken stretch of values that hold. A hold that was complete by the
        newest value was complete while the platform ran, and fired then: it is not fired
        again. What is left of one under way is ``due`` (in the past: fire at once)."""
        since = None
        for at, holds in history:
            if not holds:
                since = None
            elif since is None:
                since = at
        self.since = since
        self.fired = since is not None and (self.hold <= 0 or history[-1][0] >= since + self.hold)


class Repeated:
    """The times of the last values in a row for which a comparison holds (at most
    ``count``), and whether this run of them has fired. ``window`` (ms) bounds the first to the
    Nth (0: any time apart). ThingsBoard's "repeating" counts N events in a row; a window keeps
    N values spread over a day from counting as one burst. No timer: it decides on values."""

    __slots__ = ("count", "fired", "times", "window")

    def __init__(self, count: int, window: int = 0) -> None:
        self.count = max(1, count)
        self.window = window
        self.times: deque[int] = deque(maxlen=self.count)
        self.fired = False

    @property
    def due(self) -> int | None:
        return None

    def observe(self, holds: bool, at: int) -> Next:
        """A value heard at ``at``: FIRE on the Nth in a row (within the window), else KEEP."""
        if not holds:
            self.times.clear()
            self.fired = False
            return Next.KEEP
        if self.fired:
            return Next.KEEP  # (still holding: fired once for this run)
        self.times.append(at)
        if self.window > 0:
            while self.times and self.times[0] < at - self.window:
                self.times.popleft()
        if len(self.times) < self.count:
            return Next.KEEP
        self.fired = True
        return Next.FIRE

    def expire(self, now: int) -> bool:
        return False

    def resume(self, history: Sequence[tuple[int, bool]]) -> None:
        """The state the values heard before a restart leave (``(at, holds)``, oldest first):
        they are counted again; a count that was reached among them fired then."""
        for at, holds in history:
            self.observe(holds, at)


_NOTHING: Any = object()


class Changed:
    """The last value known; a value that differs from it is a change (the first one ever
    heard is not: there is nothing to differ from)."""

    __slots__ = ("last",)

    def __init__(self, last: Any = _NOTHING) -> None:
        self.last = last

    def observe(self, value: Any) -> bool:
        changed = self.last is not _NOTHING and value != self.last
        self.last = value
        return changed


class Silence:
    """When a device was last heard from, and whether this silence has fired; ``length`` ms
    of it fire."""

    __slots__ = ("fired", "heard", "length")

    def __init__(self, length: int, heard: int) -> None:
        self.length = length
        self.heard = heard
        self.fired = False

    @property
    def due(self) -> int | None:
        return None if self.fired else self.heard + self.length

    def observe(self, at: int) -> int:
        """Something heard at ``at``: the silence starts again; when it would fire."""
        self.heard = max(self.heard, at)
        self.fired = False
        return self.heard + self.length

    def expire(self, now: int) -> bool:
        due = self.due
        if due is None or now < due:
            return False
        self.fired = True
        return True
