"""A clock the test moves, for what runs on the scenes' ``Clock`` (scenes, alarm conditions)."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Any

from server_thread import ServerThread


class ManualClock:
    """The scenes' clock, moved by the test: ``advance`` runs the calls due, in order, on the
    server's loop."""

    def __init__(self, now: int) -> None:
        self._now = now
        self._calls: list[tuple[int, int, Callable[[], None], list[bool]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.server: ServerThread | None = None

    def now(self) -> int:
        return self._now

    def call_at(self, at: int, callback: Callable[[], None]) -> Any:
        cancelled = [False]
        with self._lock:
            heapq.heappush(self._calls, (at, next(self._order), callback, cancelled))

        class Handle:
            def cancel(self) -> None:
                cancelled[0] = True

        return Handle()

    def due(self) -> list[int]:
        with self._lock:
            return sorted(at for at, _, _, cancelled in self._calls if not cancelled[0])

    def advance(self, to: int) -> None:
        assert self.server is not None

        def run() -> None:
            while True:
                with self._lock:
                    if not self._calls or self._calls[0][0] > to:
                        break
                    at, _, callback, cancelled = heapq.heappop(self._calls)
                self._now = max(self._now, at)
                if not cancelled[0]:
                    callback()
            self._now = max(self._now, to)

        self.server.call(run)
