"""``DeviceSessions``: devices coming and going, whatever protocol they speak."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from hongshan.bus import Bus
from hongshan.messages import DeviceRef, StatusChanged
from hongshan.things.presence import DevicePresence, Way

Device = tuple[str, str]


class PresenceRecord(Protocol):
    """Where a device's last presence is kept (the registry)."""

    def device_connected(self, product_key: str, device_name: str, address: str) -> None: ...

    def device_disconnected(self, product_key: str, device_name: str) -> None: ...


class DeviceSessions:
    """Told by the dialects when a device's session begins or ends — its own connection, or a
    gateway carrying it — it keeps the registry's presence and says each coming and going
    once, as ``StatusChanged`` on the bus (the history's status line, the dialects' status
    topics, later rules). ``on_online`` listeners hear of a device that came online (desired
    values waiting for it are sent). Knows no protocol and no connection."""

    def __init__(
        self, record: PresenceRecord, bus: Bus, clock: Callable[[], float] = time.time
    ) -> None:
        self._record = record
        self._bus = bus
        self._clock = clock
        self.presence = DevicePresence()
        self.on_online: list[Callable[[Device], None]] = []

    def came(
        self,
        device: Device,
        way: Way,
        address: str,
        *,
        gateway: Device | None = None,
    ) -> None:
        """A session of ``device`` began (from ``address``; through ``gateway``)."""
        first = self.presence.came(device, way)
        if first or way is Way.CONNECTION:  # (a takeover's new address too)
            self._record.device_connected(*device, address)
        if first:
            self._status(device, True, address=address, gateway=gateway)
        for listener in self.on_online:
            listener(device)

    def went(self, device: Device, way: Way, reason: str, *, gateway: Device | None = None) -> None:
        """A session of ``device`` ended; offline once it has none left."""
        if self.presence.went(device, way):
            self._record.device_disconnected(*device)
            self._status(device, False, reason=reason, gateway=gateway)

    def forget(self, product_key: str, device_name: str) -> None:
        self.presence.forget(product_key, device_name)

    def _status(
        self,
        device: Device,
        online: bool,
        *,
        address: str = "",
        reason: str = "",
        gateway: Device | None = None,
    ) -> None:
        self._bus.publish(
            StatusChanged(
                device=DeviceRef(*device),
                received=int(self._clock() * 1000),
                online=online,
                address=address,
                reason=reason,
                gateway=DeviceRef(*gateway) if gateway is not None else None,
            )
        )
