"""Firmware versions as devices report them: ``/ota/device/inform/{pk}/{dn}`` with
``{"id": "1", "params": {"version": "1.0.3", "module": "MCU"}}`` (Alibaba's OTA "report the
version"; no module means the main firmware, ``default``), published on the bus as
``FirmwareReported``: the registry keeps the version of each module (``FirmwareStage``);
upgrades pushed to devices (``/ota/device/upgrade/…``) come with the OTA issue."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from hongshan.bus import Bus
from hongshan.dialects.alink import messages
from hongshan.dialects.alink.messages import REQUEST_INVALID, MalformedMessage
from hongshan.messages import DeviceRef, FirmwareReported

log = logging.getLogger("hongshan.alink")

TAPS = ("/ota/device/inform/+/+",)
DEFAULT_MODULE = "default"


class Inform(msgspec.Struct):
    version: str
    module: str = DEFAULT_MODULE


class InformMessage(msgspec.Struct):
    params: Inform
    id: str | int = ""


_inform = msgspec.json.Decoder(InformMessage)


class FirmwareReports:
    def __init__(self, bus: Bus, clock: Callable[[], float] = time.time) -> None:
        self._bus = bus
        self._clock = clock

    def on_message(self, topic: str, payload: bytes) -> MalformedMessage | None:
        """Keep a device's firmware report; one that is not is returned, for its tap to
        refuse (Alibaba does not answer a report)."""
        levels = topic.split("/")
        if len(levels) != 6:
            return None
        pk, dn = levels[4], levels[5]
        try:
            inform = messages.decode(_inform, payload).params
        except MalformedMessage as exc:
            log.info("%s: not a firmware report: %s", topic, exc)
            return messages.unraised(exc)
        if not inform.version or len(inform.version) > 64 or len(inform.module) > 64:
            log.info("%s: firmware version or module empty or too long", topic)
            message = "request parameter error: version or module empty or past 64 characters"
            return MalformedMessage(message, REQUEST_INVALID, None)
        received = int(self._clock() * 1000)
        versions = {inform.module: inform.version}
        self._bus.publish(
            FirmwareReported(device=DeviceRef(pk, dn), received=received, versions=versions)
        )
        return None
