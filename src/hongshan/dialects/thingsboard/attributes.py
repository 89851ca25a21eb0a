"""A ThingsBoard device's attributes, as its attribute requests are answered.

ThingsBoard keeps a device's attributes in scopes: *client* ones the device reports, *shared*
ones the platform sets. Hongshan keeps properties, so:

- client attributes are the device's latest values of every key it reported, telemetry and
  attributes alike (both are properties here), as the values it reported last (a value with
  an older time than the one kept does not replace it); they are restored at start from what
  the registry kept of the latest values;
- shared attributes are what the platform pushed to the device: property sets (``device set``)
  and desired values, which are pushed again whenever the device comes online. Held in memory:
  after a restart a device's shared attributes are its desired values again, once it is back,
  not the property sets sent before the restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hongshan.dialects.thingsboard.directory import Device
from hongshan.messages import PropertyValues

Values = dict[str, Any]


class Attributes:
    """Every ThingsBoard device's client and shared attributes (in the thing model's terms);
    reads nothing from anywhere but what it is told."""

    def __init__(self) -> None:
        self._client: dict[Device, dict[str, tuple[Any, int]]] = {}
        self._shared: dict[Device, Values] = {}

    def restore(self, saved: Mapping[Device, Mapping[str, tuple[Any, int]]]) -> None:
        """Latest values kept before a restart: (value, time) by key, by device."""
        for device, values in saved.items():
            self._client.setdefault(device, {}).update(values)

    def reported(self, uplinks: Iterable[PropertyValues]) -> None:
        for uplink in uplinks:
            device = (uplink.device.product, uplink.device.device)
            kept = self._client.get(device)
            if kept is None:
                kept = self._client[device] = {}
            times = uplink.device_time
            for key, value in uplink.values.items():
                at = times.get(key, uplink.ts)
                current = kept.get(key)
                if current is None or current[1] <= at:
                    kept[key] = (value, at)

    def pushed(self, device: Device, values: Mapping[str, Any]) -> None:
        self._shared.setdefault(device, {}).update(values)

    def read(
        self, device: Device, client_keys: list[str] | None, shared_keys: list[str] | None
    ) -> tuple[Values, Values]:
        """(client, shared) of these keys; every one of both when neither is asked for."""
        client = self._client.get(device, {})
        shared = self._shared.get(device, {})
        if client_keys is None and shared_keys is None:
            return {k: v for k, (v, _) in client.items()}, dict(shared)
        return (
            {key: client[key][0] for key in client_keys or () if key in client},
            {key: shared[key] for key in shared_keys or () if key in shared},
        )

    def forget(self, device: Device) -> None:
        self._client.pop(device, None)
        self._shared.pop(device, None)
