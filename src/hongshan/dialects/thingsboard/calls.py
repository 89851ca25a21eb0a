"""Server-side RPCs on their way: the request ids given out, the calls waiting for a device's
answer, and which service a late answer was to (for its line in the history)."""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from typing import Any

from hongshan.dialects.thingsboard.directory import Device

RECENT = 4096  # calls remembered after their wait, so that a late answer names its service


class Answer:
    """A device's answer: what it said (any JSON, or text)."""

    __slots__ = ("output",)

    def __init__(self, output: Any) -> None:
        self.output = output


class Calls:
    """Ids are integers, as ThingsBoard's are, counted from a start the clock gives (so that a
    restarted server does not reuse the ids of calls a device may still answer). Owns no
    connection and sends nothing."""

    def __init__(self, start: int) -> None:
        self._ids = itertools.count(start)
        self._waiting: dict[tuple[Device, str], asyncio.Future[Answer]] = {}
        self._services: OrderedDict[tuple[Device, str], str] = OrderedDict()

    def next_id(self, device: Device, service: str) -> int:
        request_id = next(self._ids)
        services = self._services
        services[device, str(request_id)] = service
        if len(services) > RECENT:
            services.popitem(last=False)
        return request_id

    def expect(self, device: Device, request_id: int) -> asyncio.Future[Answer]:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[device, str(request_id)] = future
        return future

    def done(self, device: Device, request_id: int) -> None:
        self._waiting.pop((device, str(request_id)), None)

    def answer(self, device: Device, request_id: str, output: Any) -> str | None:
        """The device answered ``request_id``: the waiting call (if any) has its answer.
        Returns the call's service, None for an id we never gave this device."""
        future = self._waiting.pop((device, request_id), None)
        if future is not None and not future.done():
            future.set_result(Answer(output))
        return self._services.get((device, request_id))

    def give_up(self, failure: BaseException) -> list[tuple[Device, str, str]]:
        """Every waiting call fails with ``failure`` (the platform is stopping); returns them
        as (device, request id, service)."""
        waiting, self._waiting = self._waiting, {}
        given_up = []
        for (device, request_id), future in waiting.items():
            if not future.done():
                future.set_exception(failure)
                given_up.append((device, request_id, self._services.get((device, request_id), "")))
        return given_up

    def forget(self, device: Device) -> None:
        for key in [key for key in self._services if key[0] == device]:
            del self._services[key]
