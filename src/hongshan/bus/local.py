"""The in-process bus: one process, no queue between a dialect and the pipeline."""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from hongshan.bus import Listener, Server
from hongshan.errors import HongshanError
from hongshan.messages import CommandResult, DeviceRef, Downlink, Uplink, kinds_of

log = logging.getLogger("hongshan.bus")

_Entry = tuple[str | None, DeviceRef | None, Listener]


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
        self._process = pipeline.process
        self._protocol_of = protocol_of
        self._servers: dict[str, Server] = {}
        # kind -> ((product, device, listener), ...): a new tuple on each change, so that a
        # listener that unsubscribes while an uplink is handed round skips nobody
        self._listeners: dict[type[Uplink], tuple[_Entry, ...]] = {}
        # the calls each dialect carried, by (protocol, outcome): what the metrics read
        self.results: collections.Counter[tuple[str, str]] = collections.Counter()

    def publish(self, uplink: Uplink) -> Awaitable[None] | None:
        committed = self._process(uplink)
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
        chosen = kinds_of(kinds)
        for kind in chosen:
            self._listeners[kind] = (*self._listeners.get(kind, ()), entry)

        def unsubscribe() -> None:
            for kind in chosen:
                entries = tuple(e for e in self._listeners.get(kind, ()) if e is not entry)
                if entries:
                    self._listeners[kind] = entries
                else:
                    self._listeners.pop(kind, None)

        return unsubscribe

    def serve(self, protocol: str, server: Server) -> None:
        if protocol in self._servers:
            raise ValueError(f"the {protocol} dialect is served already")
        self._servers[protocol] = server

    async def request(self, command: Downlink) -> CommandResult:
        protocol = self._protocol_of(command.device.product)
        server = self._servers.get(protocol) if protocol is not None else None
        if protocol is None or server is None:
            raise NoDialect(
                f"no dialect serves product {command.device.product!r}"
                + (f" (protocol {protocol!r})" if protocol else "")
            )
        result = await server(command)
        self.results[protocol, result.outcome] += 1
        return result
