"""What a crash (kill -9, a power cut) left behind, put right at start, before devices connect."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from hongshan.bus import Bus
from hongshan.messages import DeviceRef, StatusChanged
from hongshan.store.history.model import HistoryStore
from hongshan.twin.properties import PropertyTwin

log = logging.getLogger("hongshan")

Device = tuple[str, str]


class KnownDevices(Protocol):
    """What the repair asks of the registry."""

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    def online_devices(self) -> list[Device]: ...

    def device_disconnected(self, product_key: str, device_name: str) -> None: ...


async def repair_after_restart(
    registry: KnownDevices,
    history: HistoryStore,
    twin: PropertyTwin,
    bus: Bus,
    clock: Callable[[], float] = time.time,
) -> None:
    """The latest values as the history committed them (the registry's copy, which ``twin``
    was restored from, is saved every second), and no device online that is not connected:
    each one that was is logged offline at this start ("server restarted") unless its log
    already ended offline."""
    latest = await history.latest_values()
    changed = twin.reconcile(
        {device: values for device, values in latest.items() if registry.device_known(*device)}
    )
    last = await history.last_status()
    stale = set(registry.online_devices())
    stale.update(device for device, state in last.items() if state == "online")
    now = int(clock() * 1000)
    for device in sorted(stale):
        if not registry.device_known(*device):
            continue  # (deleted since: its history stays, it has no status)
        registry.device_disconnected(*device)
        if last.get(device) != "offline":
            gone = StatusChanged(
                device=DeviceRef(*device), received=now, online=False, reason="server restarted"
            )
            bus.publish(gone)
    if stale:
        await history.committed()  # (said before anyone can ask)
    if changed or stale:
        log.info(
            "at start: %d latest values taken from the history, %d devices set offline",
            changed,
            len(stale),
        )
