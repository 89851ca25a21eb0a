"""What a scene's engine is given in a backtest in place of the live ones: the recorded clock
(``RecordedClock``), waits only counted (``RecordedWaits``), the history as it was at the
range's start (``HistoryAtStart``) and the values replayed so far for the twin's
(``ReplayedTwin``). Each keeps the engine's interface (``services.scenes.engine``: ``Clock``,
``Waits``, ``History``, ``latest``); none does any IO of its own."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from hongshan.messages import PropertyValues
from hongshan.services.scenes.engine import History
from hongshan.services.scenes.running import DeviceKey
from hongshan.store.history.model import PointPage
from hongshan.twin.properties import PropertyValue


class _Call:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class RecordedClock:
    """The engine's ``Clock`` in a backtest: now is the recorded time it was moved to; its
    calls go off, in the order of their times (then of their setting), when the driver
    asks (``fire_next``), never on their own."""

    def __init__(self, now: int) -> None:
        self._now = now
        self._calls: list[tuple[int, int, _Call]] = []
        self._order = itertools.count()

    def now(self) -> int:
        return self._now

    def call_at(self, at: int, callback: Callable[[], None]) -> _Call:
        call = _Call(callback)
        heapq.heappush(self._calls, (at, next(self._order), call))
        return call

    def move_to(self, at: int) -> None:
        self._now = max(self._now, at)

    def next_due(self) -> int | None:
        """When the next call not cancelled is due, or None."""
        calls = self._calls
        while calls and calls[0][2].cancelled:
            heapq.heappop(calls)
        return calls[0][0] if calls else None

    def fire_next(self) -> None:
        at, _, call = heapq.heappop(self._calls)
        self.move_to(at)
        call.callback()


class RecordedWaits:
    """The engine's ``Waits`` in a backtest: kept nowhere, only counted — the runs waiting
    in a delay are the runs waiting on the recorded clock."""

    def __init__(self) -> None:
        self.waiting = 0
        self._ids = itertools.count(1)

    async def add_wait(self, scene_id: int, due: int, step: int, data: dict[str, Any]) -> int:
        self.waiting += 1
        return next(self._ids)

    async def drop_wait(self, wait_id: int) -> None:
        self.waiting -= 1


class HistoryAtStart:
    """The history as the engine's priming reads it at the range's start: a hold's values
    before it as recorded; no device's last value (a silence counts from the start)."""

    def __init__(self, history: History) -> None:
        self._history = history

    async def points(
        self,
        device: DeviceKey,
        identifier: str,
        start: int,
        end: int,
        *,
        limit: int = 1000,
        cursor: str | None = None,
        descending: bool = False,
    ) -> PointPage:
        return await self._history.points(
            device, identifier, start, end, limit=limit, cursor=cursor, descending=descending
        )

    async def latest_values(self) -> dict[DeviceKey, dict[str, tuple[Any, int]]]:
        return {}


class ReplayedTwin:
    """The property values replayed so far, per device: the twin as it was then."""

    def __init__(self) -> None:
        self.values: dict[DeviceKey, dict[str, PropertyValue]] = {}

    def latest(self, product_key: str, device_name: str) -> dict[str, PropertyValue]:
        return self.values.get((product_key, device_name), {})

    def take(self, uplink: PropertyValues) -> None:
        device = (uplink.device.product, uplink.device.device)
        known = self.values.get(device)
        if known is None:
            known = self.values[device] = {}
        at = uplink.received
        for identifier, value in uplink.values.items():
            known[identifier] = PropertyValue(value, at)
