"""The in-process bus: one process, no queue between a dialect and the pipeline."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from hongshan.bus import Listener, Server
from hongshan.errors import HongshanError
from hongshan.messages import UPLINKS, CommandResult, DeviceRef, Downlink, Uplink

log = logging.getLogger("hongshan.bus")


class NoDialect(HongshanError):
    """A command for a device whose protocol no dialect serves (or a device of no product)."""

    http_status = 404


class Processor(Protocol):
    """What takes every uplink first (``hongshan.pipeline.Pipeline``)."""

    def process(self, uplink: Uplink) -> Awaitable[None] | None: ...


class LocalBus:
    """The ``Bus`` of one process. ``publish`` runs the uplink through the pipeline where it
    is called, then hands it to the listeners that asked for its kind, product or device: a
    device's messages keep their order and no queue grows. ``request`` calls the dialect that
    serves the device's protocol (``protocol_of`` its product). It never decodes or encodes a
    message: in one process they pass as they are."""

    def __init__(self, pipeline: Processor, protocol_of: Callable[[str], str | None]) -> None:
        self._pipeline = pipeline
        self._protocol_of = protocol_of
        self._servers: dict[str, Server] = {}
        # kind -> [(product, device, listener)]; empty until someone listens
        self._listeners: dict[type[Uplink], list[tuple[str | None, DeviceRef | None, Listener]]]
        self._listeners = {}

    def publish(self, uplink: Uplink) -> Awaitable[None] | None:
        committed = self._pipeline.process(uplink)
        listeners = self._listeners.get(type(uplink)) if self._listeners else None
        if listeners:
            for product, device, listener in listeners:
                if (product is None or product == uplink.device.product) and (
                    device is None or device == uplink.device
                ):
                    try:
                        listener(uplink)
                    except Exception:  # one listener's bug must not stop the others
                        log.exception("listener %r failed on %s", listener, type(uplink).__name__)
        return committed

    def subscribe(
        self,
        listener: Listener,
        *,
        kinds: tuple[type[Uplink], ...] = (),
        product: str | None = None,
        device: DeviceRef | None = None,
    ) -> Callable[[], None]:
        entry = (product, device, listener)
        chosen = kinds or UPLINKS
        for kind in chosen:
            self._listeners.setdefault(kind, []).append(entry)

        def unsubscribe() -> None:
            for kind in chosen:
                entries = self._listeners.get(kind, [])
                if entry in entries:
                    entries.remove(entry)
                if not entries:
                    self._listeners.pop(kind, None)

        return unsubscribe

    def serve(self, protocol: str, server: Server) -> None:
        self._servers[protocol] = server

    async def request(self, command: Downlink) -> CommandResult:
        protocol = self._protocol_of(command.device.product)
        server = self._servers.get(protocol) if protocol is not None else None
        if server is None:
            raise NoDialect(
                f"no dialect serves product {command.device.product!r}"
                + (f" (protocol {protocol!r})" if protocol else "")
            )
        return await server(command)
