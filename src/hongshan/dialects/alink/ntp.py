"""NTP for devices (Alibaba's "NTP service"): a device with no clock worth trusting publishes
``{"deviceSendTime": "<its ms>"}`` to ``/ext/ntp/{pk}/{dn}/request`` and is answered on
``…/response`` with its own time and the server's receive and send times, all in ms, as
strings; it then takes ``(serverRecvTime + serverSendTime + deviceRecvTime - deviceSendTime) / 2``
as the time."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

TAPS = ("/ext/ntp/+/+/request",)


class NtpRequest(msgspec.Struct, rename="camel"):
    device_send_time: str | int


_decode = msgspec.json.Decoder(NtpRequest).decode


class NtpService:
    def __init__(
        self, publish: Callable[[str, bytes, int], None], clock: Callable[[], float] = time.time
    ) -> None:
        self._publish = publish
        self._clock = clock

    def on_message(self, topic: str, payload: bytes) -> None:
        received = str(int(self._clock() * 1000))
        levels = topic.split("/")
        if len(levels) != 6:
            return
        try:
            request = _decode(payload)
        except msgspec.DecodeError:
            return  # nothing to answer with: the device's time is what the answer carries
        answer = {
            "deviceSendTime": str(request.device_send_time),
            "serverRecvTime": received,
            "serverSendTime": str(int(self._clock() * 1000)),
        }
        self._publish(topic[: -len("request")] + "response", msgspec.json.encode(answer), 0)
