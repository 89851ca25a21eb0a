"""NTP for devices (Alibaba's "NTP service"): a device with no clock worth trusting publishes
``{"deviceSendTime": "<its ms>"}`` to ``/ext/ntp/{pk}/{dn}/request`` and is answered on
``…/response`` with its own time and the server's receive and send times, all in ms, as
strings; it then takes ``(serverRecvTime + serverSendTime + deviceRecvTime - deviceSendTime) / 2``
as the time."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from hongshan.dialects.alink import messages
from hongshan.dialects.alink.messages import MalformedMessage

TAPS = ("/ext/ntp/+/+/request",)


class NtpRequest(msgspec.Struct, rename="camel"):
    device_send_time: str | int


_request = msgspec.json.Decoder(NtpRequest)


class NtpService:
    def __init__(
        self, publish: Callable[[str, bytes, int], None], clock: Callable[[], float] = time.time
    ) -> None:
        self._publish = publish
        self._clock = clock

    def on_message(self, topic: str, payload: bytes) -> MalformedMessage | None:
        """Answer a device's time request; one that is not is returned, for its tap to refuse
        (not answered: the device's time is what an answer carries)."""
        received = str(int(self._clock() * 1000))
        levels = topic.split("/")
        if len(levels) != 6:
            return None
        try:
            request = messages.decode(_request, payload)
        except MalformedMessage as exc:
            return messages.unraised(exc)
        answer = {
            "deviceSendTime": str(request.device_send_time),
            "serverRecvTime": received,
            "serverSendTime": str(int(self._clock() * 1000)),
        }
        self._publish(topic[: -len("request")] + "response", msgspec.json.encode(answer), 0)
        return None
