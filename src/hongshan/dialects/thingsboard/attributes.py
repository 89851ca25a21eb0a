"""A ThingsBoard device's attributes, as its attribute requests are answered.

ThingsBoard keeps a device's attributes in scopes: *client* ones the device reports, *shared*
ones the platform sets. Hongshan keeps properties, so:

- client attributes are the device's latest values of every key it reported, telemetry and
  attributes alike (both are properties here): read from the platform's latest values (the
  twin, ``DialectNeeds.latest``), which keeps them as the pipeline took them, restores them at
  start and puts them right from the history after a crash. Nothing of them is kept here;
- shared attributes are what the platform pushed to the device: property sets (``device set``)
  and desired values, which are pushed again whenever the device comes online. Held in memory:
  after a restart a device's shared attributes are its desired values again, once it is back,
  not the property sets sent before the restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hongshan.dialects.port import Latest
from hongshan.dialects.thingsboard.directory import Device

Values = dict[str, Any]


class Attributes:
    """Every ThingsBoard device's shared attributes (in the thing model's terms), and its
    client ones as ``latest`` has them; reads nothing else."""

    def __init__(self, latest: Latest) -> None:
        self._latest = latest
        self._shared: dict[Device, Values] = {}

    def pushed(self, device: Device, values: Mapping[str, Any]) -> None:
        self._shared.setdefault(device, {}).update(values)

    def read(
        self, device: Device, client_keys: list[str] | None, shared_keys: list[str] | None
    ) -> tuple[Values, Values]:
        """(client, shared) of these keys; every one of both when neither is asked for."""
        client = self._latest(device)
        shared = self._shared.get(device, {})
        if client_keys is None and shared_keys is None:
            return {key: kept.value for key, kept in client.items()}, dict(shared)
        return (
            {key: client[key].value for key in client_keys or () if key in client},
            {key: shared[key] for key in shared_keys or () if key in shared},
        )

    def forget(self, device: Device) -> None:
        self._shared.pop(device, None)
