"""What the platform asks of a ThingsBoard device (``Downlink``), in the API's terms.

A property set or desired values are shared attributes, pushed on ``v1/devices/me/attributes``
(a gateway's device: ``v1/gateway/attributes``, ``{"device", "data"}``); ThingsBoard devices do
not answer an attribute update, so the result is ``SENT`` (code 200). A service call is a
server-side RPC on ``v1/devices/me/rpc/request/{id}`` (a gateway's device: ``v1/gateway/rpc``,
``{"device", "data": {"id", "method", "params"}}``), answered on ``…/rpc/response/{id}`` (the
dialect hands the answer to ``Calls``): ``REPLIED`` with code 200 and the device's answer,
``TIMED_OUT`` (408) after the wait, or ``SENT`` when not waited for (ThingsBoard's one-way
RPC). A device that is not connected is ``OFFLINE`` (409), and nothing is sent. These are the
codes ThingsBoard's REST API answers a server-side RPC with. A raw call (Alibaba's RRPC) has no
form in ThingsBoard's API: ``REFUSED``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from hongshan import messages as m
from hongshan.bus import Bus
from hongshan.dialects.thingsboard import payloads
from hongshan.dialects.thingsboard.attributes import Attributes
from hongshan.dialects.thingsboard.calls import Calls
from hongshan.dialects.thingsboard.directory import Device, DeviceDirectory
from hongshan.dialects.thingsboard.gateway import Routes
from hongshan.dialects.thingsboard.values import from_device, param_types, property_types, to_device
from hongshan.errors import ShuttingDown
from hongshan.messages import MAX_WAIT, CommandResult, DeviceRef, Outcome
from hongshan.things.tsl import ThingModel

REPLIED = 200
TIMED_OUT = 408  # Request Timeout: the device did not answer in time
OFFLINE = 409  # Conflict: the device has no active connection
NOT_SUPPORTED = 400

Send = Callable[[str, str, bytes], None]  # (client id, topic, payload)


class Commands:
    """Carries commands to ThingsBoard devices and their answers back; sends through
    ``send`` and finds a device by ``routes``. Never waits past ``MAX_WAIT``."""

    def __init__(
        self,
        *,
        directory: DeviceDirectory,
        bus: Bus,
        routes: Routes,
        calls: Calls,
        attributes: Attributes,
        send: Send,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._bus = bus
        self._routes = routes
        self._calls = calls
        self._attributes = attributes
        self._send = send
        self._clock = clock
        self.stopping = False  # the platform is stopping: nothing is sent

    async def send(self, command: m.Downlink) -> CommandResult:
        """A command ``DeviceCommands`` has checked against the thing model."""
        if self.stopping:
            raise ShuttingDown("shutting down: no call is sent to a device now")
        device = (command.device.product, command.device.device)
        match command:
            case m.SetProperties() | m.PushDesired():
                return self._shared_attributes(device, command.values)
            case m.CallService():
                return await self._rpc(device, command.service, command.params, command.timeout)
            case m.RawCall():
                why = "ThingsBoard's API has no raw calls (RRPC): call a service"
                return CommandResult(
                    call_id="",
                    outcome=Outcome.REFUSED,
                    code=NOT_SUPPORTED,
                    message=why,
                    problems=[m.Problem(kind=m.ProblemKind.INVALID, message=why)],
                )
        raise TypeError(f"not a command the ThingsBoard dialect carries: {command!r}")

    def _shared_attributes(self, device: Device, values: dict[str, Any]) -> CommandResult:
        route = self._routes.of(device)
        if route is None:
            return _offline()
        client_id, name = route
        update = to_device(property_types(self._model(device)), values)
        if name is None:
            self._send(client_id, "v1/devices/me/attributes", payloads.encode(update))
        else:
            update_bytes = payloads.gateway_attribute_update(name, update)
            self._send(client_id, "v1/gateway/attributes", update_bytes)
        self._attributes.pushed(device, values)
        call_id = str(self._calls.next_id(device, "set"))
        self._record(device, call_id, "set", values, sets_properties=True)
        return CommandResult(
            call_id=call_id,
            outcome=Outcome.SENT,
            code=REPLIED,
            message="sent: a ThingsBoard device does not answer an attribute update",
        )

    async def _rpc(
        self, device: Device, service: str, params: Any, wait: float | None
    ) -> CommandResult:
        if wait is not None and not 0 < wait <= MAX_WAIT:
            raise ValueError(f"wait: {wait} s is not within 0 to {MAX_WAIT:g} s")
        route = self._routes.of(device)
        if route is None:
            return _offline()
        client_id, name = route
        model = self._model(device)
        if type(params) is dict:
            params = to_device(param_types(model, service), params)
        request_id = self._calls.next_id(device, service)
        answered = self._calls.expect(device, request_id) if wait else None
        if name is None:
            topic = f"v1/devices/me/rpc/request/{request_id}"
            self._send(client_id, topic, payloads.rpc_call(service, params))
        else:
            call = payloads.gateway_rpc_call(name, request_id, service, params)
            self._send(client_id, "v1/gateway/rpc", call)
        call_id = str(request_id)
        self._record(device, call_id, service, params)
        if answered is None:
            return CommandResult(
                call_id=call_id, outcome=Outcome.SENT, code=REPLIED, message="sent"
            )
        assert wait is not None
        try:
            answer = await asyncio.wait_for(answered, wait)
        except TimeoutError:
            return CommandResult(
                call_id=call_id,
                outcome=Outcome.TIMED_OUT,
                code=TIMED_OUT,
                message="the device did not answer",
            )
        except ShuttingDown:
            self._bus.publish(
                m.CommandGivenUp(
                    device=DeviceRef(*device),
                    received=int(self._clock() * 1000),
                    call_id=call_id,
                    service=service,
                    why="shutting down",
                )
            )
            raise
        finally:
            self._calls.done(device, request_id)
        problems: list[m.Problem] = []
        if model is not None and service in model.service_map and type(answer.output) is dict:
            output = from_device(param_types(model, service, output=True), answer.output)
            problems = model.check_service_output(service, output)
        return CommandResult(
            call_id=call_id,
            outcome=Outcome.REPLIED,
            code=REPLIED,
            output=answer.output,
            problems=problems,
        )

    def _model(self, device: Device) -> ThingModel | None:
        view = self._directory.product_view(device[0])
        return view.thing_model if view is not None else None

    def _record(
        self,
        device: Device,
        call_id: str,
        service: str,
        params: Any,
        *,
        sets_properties: bool = False,
    ) -> None:
        """The call's line in the device's history (``CommandSent``): a property set's, or a
        service call's."""
        self._bus.publish(
            m.CommandSent(
                device=DeviceRef(*device),
                received=int(self._clock() * 1000),
                call_id=call_id,
                service=service,
                params=params,
                sets_properties=sets_properties,
            )
        )


def _offline() -> CommandResult:
    return CommandResult(
        call_id="", outcome=Outcome.OFFLINE, code=OFFLINE, message="device offline"
    )
