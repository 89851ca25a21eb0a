"""``Pacer``: how fast commands to many devices go out — a batch's, and a queue's sent to the
devices that come back online — so that a town's 10,000 lamps are switched without flooding
the broker or the devices."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Pacing:
    """At most ``max_in_flight`` commands sent and not yet answered (or given up) at once,
    and at most ``per_second`` started a second."""

    max_in_flight: int = 200
    per_second: float = 1000.0


class Pacer:
    """Slots for commands in flight, and their start times spaced by the rate. Owns the count
    of commands in flight (and the most there were); never sends anything itself. The wait
    for a start is pacing, not waiting for an event: the rate is the point."""

    def __init__(self, pacing: Pacing = Pacing()) -> None:
        self.pacing = pacing
        self._slots = asyncio.Semaphore(pacing.max_in_flight)
        self._gap = 1.0 / pacing.per_second
        self._next_start = 0.0
        self.in_flight = 0
        self.most_in_flight = 0  # the highest ``in_flight`` has been (tests, the benchmark)

    async def start(self) -> None:
        """Wait for a slot and for the rate to allow one more; the caller ``done``s it."""
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next_start > now:
            wait = self._next_start - now
            self._next_start += self._gap
            await asyncio.sleep(wait)
        else:
            self._next_start = now + self._gap
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def done(self) -> None:
        self.in_flight -= 1
        self._slots.release()
