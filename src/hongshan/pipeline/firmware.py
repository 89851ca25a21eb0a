"""The pipeline stage that keeps the firmware versions devices report, in the registry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hongshan.messages import FirmwareReported, Uplink

log = logging.getLogger("hongshan.pipeline")

# (product key, device name, {module: version}) → done once kept
Record = Callable[[str, str, dict[str, str]], Awaitable[object]]


class FirmwareStage:
    """A ``FirmwareReported`` becomes the device's firmware versions in the registry (a write
    of its own, in the background: nobody waits for a report's acknowledgement)."""

    kinds = (FirmwareReported,)

    def __init__(self, record: Record) -> None:
        self._record = record
        self._tasks: set[asyncio.Future[object]] = set()

    def on_uplink(self, uplink: Uplink) -> Awaitable[None] | None:
        if type(uplink) is FirmwareReported:
            device = uplink.device
            task = asyncio.ensure_future(
                self._record(device.product, device.device, uplink.versions)
            )
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return None

    def _done(self, task: asyncio.Future[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("firmware report not kept: %s", task.exception())
