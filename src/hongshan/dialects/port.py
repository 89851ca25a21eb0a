"""What a dialect is, and the narrow port through which it meets the broker.

A dialect owns one device protocol whole: its topics and the rights of its devices'
connections, automatic subscriptions, login flavours and registration, gateway and sub-device
sessions, replies, system topics, status messages. It meets the broker only through
``BrokerPort`` (the broker satisfies it as it is) and the rest of the platform only through the
neutral messages on the bus: it publishes ``Uplink``s and serves ``Downlink``s.

Dialects are registered in one place (``hongshan.dialects.DIALECTS``), each by a factory that
takes the ``DialectNeeds`` the platform hands every dialect; a product says which one its
devices speak (``Product.protocol``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hongshan.broker.auth import Access, Client, Credentials, Verdict
from hongshan.broker.message import Message, Refused
from hongshan.bus import Bus
from hongshan.messages import CommandResult, Downlink
from hongshan.things.presence import Way
from hongshan.twin.properties import PropertyValue

if TYPE_CHECKING:
    from hongshan.config import Settings
    from hongshan.store.registry.store import SQLRegistry

# a tap's answer: consumed (True), what the PUBACK waits for, a refusal, or nothing
TapAnswer = bool | Awaitable[None] | Refused | None
Tap = Callable[[Message], TapAnswer]


class BrokerPort(Protocol):
    """The broker as a dialect sees it."""

    on_connected: list[Callable[[Client, str], None]]
    on_disconnected: list[Callable[[Client, str], None]]

    def tap(self, topic_filter: str, handler: Tap) -> None: ...

    def derive(self, topic_filter: str, resolve: Callable[[str], str | None]) -> None: ...

    def send_to(self, client_id: str, topic: str, payload: bytes, qos: int = 1) -> bool: ...

    def publish_from_server(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> None: ...

    def access_of(self, client_id: str) -> Access | None: ...

    def access_changed(self, client_id: str) -> None: ...

    def address_of(self, client_id: str) -> str: ...

    def connection_of(self, client_id: str) -> object: ...

    def disconnect_client(self, client_id: str, reason: int, *, only: object = None) -> bool: ...

    def background(self, task: asyncio.Task[Any]) -> None: ...


class Dialect(Protocol):
    name: str  # what a product's ``protocol`` says: "alink", "thingsboard"

    async def authenticate(self, credentials: Credentials) -> Verdict | None:
        """A CONNECT of one of this dialect's devices: its verdict; None when the credentials
        are none of its devices' (the next dialect, then people and applications, are asked)."""

    def access(self, client: Client) -> Access | None:
        """The rights of a connection this dialect authenticated; None for anyone else's."""

    def refuses_others(self, topic: str) -> bool:
        """Whether ``topic`` is one of its devices' uplinks, which no person or application
        may publish (only the device, or the gateway it is logged in through, speaks for it)."""

    def attach(self, broker: BrokerPort) -> None:
        """Put its taps, derived subscriptions and connect/disconnect listeners on the broker."""

    async def send(self, command: Downlink) -> CommandResult:
        """Carry a command to one of its devices, and its answer back."""

    def stop_calls(self) -> None:
        """The platform is stopping: calls waiting for a device are given up at once."""

    def uplink_counts(self) -> Mapping[str, int]:
        """Its devices' messages so far by what became of them ("accepted", "malformed", …):
        counters it keeps anyway, read by the metrics at each scrape."""


Device = tuple[str, str]
# a device's latest values by property (the twin's ``peek``), each with its time
Latest = Callable[[Device], Mapping[str, PropertyValue]]


class Sessions(Protocol):
    """Where a dialect says its devices came and went (``services.presence.DeviceSessions``:
    presence in the registry, ``StatusChanged`` on the bus), whatever its protocol."""

    on_online: list[Callable[[Device], None]]

    def came(
        self, device: Device, way: Way, address: str, *, gateway: Device | None = None
    ) -> None: ...

    def went(
        self, device: Device, way: Way, reason: str, *, gateway: Device | None = None
    ) -> None: ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class DialectNeeds:
    """What the platform hands each dialect's factory (``DIALECTS``): the registry, the bus,
    the devices' sessions (``DeviceSessions``: presence and status, whatever the protocol),
    the history's idempotency keys of at-least-once messages (``taken``: one handed out, kept
    with what it said; ``was_taken``: whether a resend's first copy was kept, and what its
    acknowledgement waits for), a device's latest values (``latest``: the twin's, by property,
    each with its time; the twin's own mapping, to be read at once and not kept), and the
    settings."""

    registry: SQLRegistry
    bus: Bus
    sessions: Sessions
    taken: Callable[[Device, bytes], None]
    was_taken: Callable[[Device, bytes], Awaitable[None] | None]
    latest: Latest
    settings: Settings


DialectFactory = Callable[[DialectNeeds], Awaitable[Dialect]]
