"""The bus: the one way messages move between the dialects and the rest of the platform.

A dialect publishes a device's ``Uplink``; the pipeline (validate, twin, history, live feed)
takes it, and whatever subscribed by kind, product or device hears of it. A command goes the
other way: ``request(Downlink)`` reaches the dialect that serves the device's protocol, and
its ``CommandResult`` comes back.

``publish`` answers what the device's acknowledgement must wait for: for an uplink with an
idempotency key (an at-least-once message: MQTT QoS 1 or 2), the commit of what it said; for
one without, nothing. A QoS 1 post is acknowledged only once its values are committed, through
the bus as before it.

The in-process implementation (``local.LocalBus``) is a real mode of the product, not a mock:
one process, no queue — each uplink runs through the pipeline where it is published, so a
device's messages keep their order and nothing piles up in memory; back-pressure is the
publisher's own (a device's PUBACK waits for the commit). A bus between processes (NATS
JetStream, the cluster) implements the same ``Bus``: uplinks on subjects by product and device
with the key as the message id, commands to the node that holds the device's session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from hongshan.messages import CommandResult, DeviceRef, Downlink, Uplink

Listener = Callable[[Uplink], None]
Server = Callable[[Downlink], Awaitable[CommandResult]]


class Bus(Protocol):
    def publish(self, uplink: Uplink) -> Awaitable[None] | None:
        """Hand ``uplink`` on; what its acknowledgement waits for (None: nothing)."""

    def subscribe(
        self,
        listener: Listener,
        *,
        kinds: tuple[type[Uplink], ...] = (),
        product: str | None = None,
        device: DeviceRef | None = None,
    ) -> Callable[[], None]:
        """Hear of every uplink of these kinds (all when empty), of one product or device
        (all when None), after the pipeline has taken it; returns how to stop."""

    def serve(self, protocol: str, server: Server) -> None:
        """Commands to devices of ``protocol`` go to ``server`` (a dialect)."""

    async def request(self, command: Downlink) -> CommandResult:
        """Send ``command`` to its device's dialect and wait for the result."""
