"""``DeviceCommands``: one way to command a device, whatever protocol it speaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from hongshan.bus import Bus
from hongshan.errors import HongshanError
from hongshan.messages import (
    DEFAULT_WAIT,
    MAX_WAIT,
    CallService,
    CommandResult,
    DeviceRef,
    Downlink,
    Outcome,
    Problem,
    RawCall,
    SetProperties,
)
from hongshan.things.tsl import ThingModel


class InvalidCall(HongshanError):
    """A call to a device that does not fit its thing model, or that its dialect refuses
    (an RRPC topic that is not the device's own, say); nothing was sent."""

    http_status = 400

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.message} ({p.kind})" for p in problems))
        self.problems = problems

    @property
    def extensions(self) -> dict[str, Any]:
        return {"problems": msgspec.to_builtins(self.problems)}


class DeviceCommands:
    """Set properties, call services, raw calls: checked against the device's
    thing model here, for every protocol alike, then carried by the bus to the dialect that
    serves the device's product, which sends them and brings back the answer. Never speaks a
    protocol itself; never waits longer than ``MAX_WAIT``."""

    def __init__(
        self,
        bus: Bus,
        thing_model: Callable[[str], ThingModel | None],
    ) -> None:
        self._bus = bus
        self._thing_model = thing_model

    async def set(
        self, device: DeviceRef, values: dict[str, Any], *, wait: float | None = None
    ) -> CommandResult:
        """Ask the device to take ``values``; ``wait`` seconds for its answer (None: sent,
        not waited for)."""
        self._check(device, "set", values)
        command = SetProperties(device=device, values=values, timeout=wait or None)
        return await self._request(command)

    async def call(
        self,
        device: DeviceRef,
        service: str,
        params: dict[str, Any],
        *,
        wait: float | None = DEFAULT_WAIT,
    ) -> CommandResult:
        """Call one of the device's services, waiting ``wait`` seconds for its answer
        (None: sent, not waited for — a synchronous service still waits, as on Alibaba)."""
        self._check(device, service, params)
        command = CallService(device=device, service=service, params=params, timeout=wait or None)
        return await self._request(command)

    async def raw(
        self, device: DeviceRef, payload: bytes, *, wait: float, topic: str | None = None
    ) -> CommandResult:
        """Raw bytes to the device, its raw answer back within ``wait`` s (Alibaba's RRPC)."""
        return await self._request(
            RawCall(device=device, payload=payload, timeout=wait, topic=topic)
        )

    async def _request(self, command: Downlink) -> CommandResult:
        if command.timeout is not None and not 0 < command.timeout <= MAX_WAIT:
            raise ValueError(f"timeout: {command.timeout} s is not within 0 to {MAX_WAIT:g} s")
        result = await self._bus.request(command)
        if result.outcome is Outcome.REFUSED:  # the dialect's own checks: as the model's
            raise InvalidCall(result.problems)
        return result

    def _check(self, device: DeviceRef, service: str, params: Any) -> None:
        model = self._thing_model(device.product)
        if model is None:
            return
        problems = model.check_service_input(service, params)
        if problems:
            raise InvalidCall(problems)
