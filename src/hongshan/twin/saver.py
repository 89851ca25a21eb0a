"""The latest property values saved beside the registry, every second, so that a restart
begins from them (``PropertyTwin.restore``; the history's committed values win where newer)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Protocol

from hongshan.twin.properties import PropertyTwin

SAVE_INTERVAL = 1.0  # seconds between saves of the latest property values


class LatestValues(Protocol):
    """Where they are kept (the registry's property table)."""

    def save(self, values: dict[tuple[str, str], dict[str, tuple[Any, int]]]) -> None: ...


class PropertySaver:
    """Every ``interval`` seconds, the latest values of the devices that posted since the last
    save; once more at ``stop``. Never reads: the twin is restored at start by the platform."""

    def __init__(
        self, twin: PropertyTwin, table: LatestValues, interval: float = SAVE_INTERVAL
    ) -> None:
        self._twin = twin
        self._table = table
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._table.save(self._twin.take_changes())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._table.save(self._twin.take_changes())
