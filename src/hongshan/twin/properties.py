"""The latest value and time of every property of every device (a pipeline stage).

Kept in memory; the history store (issue 4) keeps every value. Reading a device's values is a
dict lookup, which is what the API's device page and the rules need.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import msgspec

from hongshan.messages import PropertyValues, Uplink


class PropertyValue(msgspec.Struct, frozen=True):
    value: Any
    time: int  # ms since the epoch


_NOTHING: dict[str, PropertyValue] = {}


class PropertyTwin:
    """The latest values, a pipeline stage of property values only."""

    kinds = (PropertyValues,)

    def __init__(self) -> None:
        self._latest: dict[tuple[str, str], dict[str, PropertyValue]] = {}
        self._newest: dict[tuple[str, str], int] = {}  # the latest time of any of its values
        self._changed: set[tuple[str, str]] = set()

    def on_uplink(self, uplink: Uplink) -> Awaitable[None] | None:
        if type(uplink) is not PropertyValues:
            return None
        device = (uplink.device.product, uplink.device.device)
        values = self._latest.get(device)
        if values is None:
            values = self._latest[device] = {}
        ts = uplink.ts
        self._changed.add(device)
        times = uplink.device_time
        if not times and ts >= self._newest.get(device, 0):
            # the usual post: one time for all, newer than anything kept
            for identifier, value in uplink.values.items():
                values[identifier] = PropertyValue(value, ts)
            self._newest[device] = ts
            return None
        for identifier, value in uplink.values.items():
            at = times.get(identifier, ts)
            current = values.get(identifier)
            if current is None or current.time <= at:  # a late history post does not win
                values[identifier] = PropertyValue(value, at)
                if at > self._newest.get(device, 0):
                    self._newest[device] = at
        return None

    def take_changes(self) -> dict[tuple[str, str], dict[str, tuple[Any, int]]]:
        """The current values of every device that changed since the last call."""
        changed, self._changed = self._changed, set()
        return {
            device: {k: (v.value, v.time) for k, v in self._latest[device].items()}
            for device in changed
            if device in self._latest
        }

    def restore(self, saved: dict[tuple[str, str], dict[str, tuple[Any, int]]]) -> None:
        for device, values in saved.items():
            self._latest[device] = {k: PropertyValue(v, at) for k, (v, at) in values.items()}
            self._newest[device] = max((at for _, at in values.values()), default=0)

    def reconcile(self, committed: dict[tuple[str, str], dict[str, tuple[Any, int]]]) -> int:
        """After a crash: the history's newest committed values (``latest_values``) win over
        restored ones as old or older; the restored ones were saved up to a second before the
        crash, the history's before each post was acknowledged. How many values changed."""
        changed = 0
        for device, found in committed.items():
            values = self._latest.setdefault(device, {})
            for identifier, (value, at) in found.items():
                current = values.get(identifier)
                if (
                    current is None
                    or current.time < at
                    or (current.time == at and current.value != value)
                ):
                    values[identifier] = PropertyValue(value, at)
                    changed += 1
                    self._changed.add(device)
                    if at > self._newest.get(device, 0):
                        self._newest[device] = at
        return changed

    def values(self, product_key: str, device_name: str) -> dict[str, PropertyValue]:
        return dict(self._latest.get((product_key, device_name), {}))

    def peek(self, product_key: str, device_name: str) -> dict[str, PropertyValue]:
        """The device's values without a copy, for reading at once (many devices' values in
        one answer); empty when it has none."""
        return self._latest.get((product_key, device_name), _NOTHING)

    def forget(self, product_key: str, device_name: str) -> None:
        self._latest.pop((product_key, device_name), None)
        self._newest.pop((product_key, device_name), None)
        self._changed.discard((product_key, device_name))
