"""``Turns``: changes of one alarm done one after the other, of different alarms side by side.

An alarm is changed by whatever raises it (rules, scenes, events, the API), by its operators
and by its escalation timer, all at once; each change must be decided on the one before it.
One lock for every alarm did that, and made a rule's repeat of one alarm wait behind every
other alarm's registry write. Here each key (an alarm's device and type) has a queue of its
own and, while it has jobs, a task of its own that does them in order: jobs of different
keys never wait for each other (but for the registry's one thread). A run of jobs that can
be folded (the repeats of an open alarm) is handed over together, to be done in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
J = TypeVar("J")
log = logging.getLogger("hongshan.alarms")


class Turns(Generic[K, J]):
    """Queues of jobs by key, each done by ``run(key, jobs)`` in the order put, by a task
    that lives while its key has jobs. ``run`` is handed one job, or the run of jobs at the
    head of the queue that ``folds`` says may be done together (at most ``most``). It never
    decides anything itself, and ``run`` must answer its jobs' callers (a failure of ``run``
    is logged by the task, never raised to anyone)."""

    def __init__(
        self,
        run: Callable[[K, list[J]], Awaitable[None]],
        *,
        folds: Callable[[J], bool],
        most: int,
    ) -> None:
        self._run = run
        self._folds = folds
        self._most = most
        self._queues: dict[K, deque[J]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def put(self, key: K, job: J) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            task = asyncio.create_task(self._work(key, queue), name=f"alarm turns {key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append(job)

    async def _work(self, key: K, queue: deque[J]) -> None:
        try:
            while queue:
                jobs = [queue.popleft()]
                if self._folds(jobs[0]):
                    while queue and len(jobs) < self._most and self._folds(queue[0]):
                        jobs.append(queue.popleft())
                try:
                    await self._run(key, jobs)
                except Exception:  # a fault of ours: the next jobs are still done
                    log.exception("alarm %s: its changes failed", key)
        finally:
            del self._queues[key]  # (no await since the queue was found empty)

    async def drain(self) -> None:
        """Wait until every queue is done (what was put meanwhile too)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
