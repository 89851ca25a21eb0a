"""How long the history's writes take to commit, and how far its writer is behind: the
figures an operator watches to see a disk or a database slowing down before devices feel it
(a QoS 1 post's PUBACK waits for its commit).

Timed per item handed to the writer (a loop turn's rows, ``Ingest._flush``), never per value:
one clock read and one list increment when it is handed over and when its outcome comes."""

from __future__ import annotations

import bisect
import collections
import time
from collections.abc import Callable

# upper bounds (seconds) of the latency buckets: a healthy SQLite group commit takes a few
# milliseconds, a loaded PostgreSQL tens; past a second devices' acknowledgements wait visibly
BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CommitTimes:
    """The latencies of the writes committed (or failed) so far as a histogram — counts per
    bucket of ``BOUNDS`` (the last: above them all), their sum and count — and the writes
    handed over whose outcome has not come yet. Kept on the event loop only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.buckets = [0] * (len(BOUNDS) + 1)  # per bucket, not cumulative
        self.total = 0.0  # seconds, summed over every outcome
        self.count = 0
        self.failed = 0  # writes whose transaction did not commit
        self._waiting: collections.deque[float] = collections.deque()  # handed-over times

    def sent(self) -> float:
        """A write handed to the writer now; the time to give ``done`` with its outcome."""
        at = self._clock()
        self._waiting.append(at)
        return at

    def done(self, sent_at: float, committed: bool) -> None:
        took = self._clock() - sent_at
        waiting = self._waiting
        if waiting and waiting[0] == sent_at:  # (outcomes come in order: the usual case)
            waiting.popleft()
        elif sent_at in waiting:
            waiting.remove(sent_at)
        self.buckets[bisect.bisect_left(BOUNDS, took)] += 1
        self.total += took
        self.count += 1
        if not committed:
            self.failed += 1

    @property
    def in_flight(self) -> int:
        """Writes handed over and not yet committed or failed."""
        return len(self._waiting)

    def lag(self) -> float:
        """Seconds the oldest write in flight has waited (0: the writer has caught up)."""
        return self._clock() - self._waiting[0] if self._waiting else 0.0
