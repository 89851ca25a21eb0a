"""``AuditLog``: every attempt at a change through the API, kept without delaying it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from hongshan.failure_log import FailureLog
from hongshan.store.registry.audit import AuditEntry, AuditFilter

log = logging.getLogger("hongshan.audit")

DAY = 86_400_000  # ms
PRUNE_EVERY = 3600.0  # seconds between looks for records past their retention
MAX_QUEUED = 10_000  # records waiting to be written; past it they are lost, and counted
MAX_BATCH = 500  # records in one transaction at most


class AuditStore(Protocol):
    """Where records are kept (``store.registry.audit.AuditTable``)."""

    async def add(self, entries: Sequence[AuditEntry]) -> None: ...

    async def find(self, where: AuditFilter) -> tuple[list[AuditEntry], int]: ...

    async def prune(self, before: int) -> int: ...


def _ms() -> int:
    return int(time.time() * 1000)


class AuditLog:
    """Owns the queue of records not yet written and the one task that writes them, in
    batches (one transaction for what came meanwhile), and the hourly prune. Never reads a
    request: what a record holds is its caller's (``api.audit_trail``) to say.

    ``record`` never waits: a request's answer is not held up by the audit log. When the
    queue is full (the registry is down or far behind) a record is dropped and counted, and
    the loss said in the log once per interval, rather than requests blocking on it. A batch
    whose write fails is lost likewise (the registry's own retries are for data the town
    runs on; an audit record is not worth holding memory for without bound)."""

    def __init__(
        self,
        store: AuditStore,
        *,
        keep_days: float = 365.0,
        clock: Callable[[], int] = _ms,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._store = store
        self._keep_ms = int(keep_days * DAY)
        self._clock = clock
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(max_queued)
        self._accepted = 0  # records queued since start
        self._done = 0  # of those, written or lost
        self._progress = asyncio.Condition()
        self.lost = 0
        self._losses = FailureLog(log, "audit records")
        self._writer: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_batches(), name="audit writer")
        self._pruner = asyncio.create_task(self._prune_every(PRUNE_EVERY), name="audit pruning")

    async def stop(self) -> None:
        """What is queued is written, then the tasks end."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled(), timeout=10)
        for task in (self._writer, self._pruner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def record(self, entry: AuditEntry) -> None:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.lost += 1
            self._losses.failed(f"the queue is full ({self.lost} lost since start)")
            return
        self._accepted += 1

    async def settled(self) -> None:
        """Return once every record queued before this call is written (or lost)."""
        target = self._accepted
        async with self._progress:
            await self._progress.wait_for(lambda: self._done >= target)

    async def find(self, where: AuditFilter) -> tuple[list[AuditEntry], int]:
        """Records, newest first: the ones queued before the question included (a reader
        sees the attempts made before it asked)."""
        await self.settled()
        return await self._store.find(where)

    async def prune(self) -> int:
        """Forget the records older than they are kept; how many went."""
        return await self._store.prune(self._clock() - self._keep_ms)

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._store.add(batch)
            except Exception as exc:  # (the database's): the batch is lost, and said
                self.lost += len(batch)
                self._losses.failed(f"{type(exc).__name__}: {exc} ({self.lost} lost since start)")
            else:
                self._losses.succeeded()
            async with self._progress:
                self._done += len(batch)
                self._progress.notify_all()

    async def _prune_every(self, seconds: float) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # (the database's, say): tried again at the next turn
                log.exception("audit: forgetting old records failed")
            await asyncio.sleep(seconds)
