"""A ThingsBoard connection and, for a gateway, the sub-devices it carries by their names.

A gateway names its devices in its payloads (``{"device": "Lamp 7"}``); each becomes a
Hongshan device the first time it is named — by ``v1/gateway/connect``, or by any message, as
ThingsBoard connects a device on its first message too:

- its product is the connect's ``type`` when that is the key of a product that speaks
  ThingsBoard's API, else the gateway's own product;
- its name is the ThingsBoard name when that fits a Hongshan device name (4 to 32 letters,
  digits and ``- _ @ . :``), else the name with every other character as ``_``, cut to 23,
  and ``_`` and 8 hex digits of the name's SHA-256 (``Lamp 7`` → ``Lamp_7_d1c9482a``): the
  same name always gives the same device (and two names one only if 32 bits of their
  digests meet);
- it is created, bound to the gateway, if the registry has no such device yet. Until that is
  done (``Pending``) what the gateway says of it waits, in order; a disabled device is not
  carried, and what the gateway says of it is left out.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable

from hongshan.dialects.thingsboard.directory import Device

MAX_SUB_DEVICES = 1500  # carried at once by one gateway (Alibaba's limit for a gateway)
MAX_BACKLOG = 1000  # messages' parts waiting for one sub-device to be created

_FITS = re.compile(r"[A-Za-z0-9\-_@.:]{4,32}")  # things.naming's device name
_UNFIT = re.compile(r"[^A-Za-z0-9\-_@.:]")


def device_name_for(name: str) -> str:
    """The Hongshan device name of a ThingsBoard device name (see the module's text)."""
    if _FITS.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_UNFIT.sub('_', name)[:23]}_{digest}"


Work = Callable[[], Awaitable[None] | None]


class Pending:
    """A sub-device being admitted: what waits for it, and the acknowledgements waiting."""

    __slots__ = ("backlog", "device")

    def __init__(self, device: Device) -> None:
        self.device = device
        self.backlog: list[tuple[Work, asyncio.Future[None]]] = []

    def wait(self, work: Work) -> asyncio.Future[None] | None:
        """Do ``work`` once the device is admitted; returns what the message's acknowledgement
        waits for (None when the backlog is full and ``work`` is left out)."""
        if len(self.backlog) >= MAX_BACKLOG:
            return None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.backlog.append((work, done))
        return done

    def run(self) -> None:
        """Admitted: the waiting work, in order, each acknowledgement once its own is done."""
        for work, done in self.backlog:
            try:
                committed = work()
            except Exception as exc:  # (passed to the acknowledgement, which fails)
                done.set_exception(exc)
                continue
            if committed is None:
                done.set_result(None)
            else:
                _chain(committed, done)
        self.backlog = []

    def drop(self) -> None:
        """Not admitted: the work is left out, its messages acknowledged all the same."""
        for _, done in self.backlog:
            done.set_result(None)
        self.backlog = []


def _chain(committed: Awaitable[None], done: asyncio.Future[None]) -> None:
    future = asyncio.ensure_future(committed)

    def settle(finished: asyncio.Future[None]) -> None:
        if finished.cancelled():
            done.cancel()
        elif finished.exception() is not None:
            done.set_exception(finished.exception())  # type: ignore[arg-type]
        else:
            done.set_result(None)

    future.add_done_callback(settle)


class Link:
    """One connection of a ThingsBoard device: its device, where it came from, and for a
    gateway the sub-devices it carries (``carried``: ThingsBoard name → device), those being
    admitted, and the names it was refused this session."""

    __slots__ = ("address", "carried", "client_id", "device", "gateway", "pending", "refused")

    def __init__(self, client_id: str, device: Device, *, gateway: bool, address: str) -> None:
        self.client_id = client_id
        self.device = device
        self.gateway = gateway
        self.address = address
        self.carried: dict[str, Device] = {}
        self.pending: dict[str, Pending] = {}
        self.refused: set[str] = set()

    def full(self) -> bool:
        return len(self.carried) + len(self.pending) >= MAX_SUB_DEVICES


class Routes:
    """Where each online ThingsBoard device is reached: its own connection (``direct``: its
    client id), else the gateway that carries it (``carried``: the gateway's link and the
    device's ThingsBoard name)."""

    def __init__(self) -> None:
        self.direct: dict[Device, str] = {}
        self.carried: dict[Device, tuple[Link, str]] = {}

    def of(self, device: Device) -> tuple[str, str | None] | None:
        """(client id to send to, the device's name in a gateway's payloads, or None for its
        own connection); None when it is not online."""
        client_id = self.direct.get(device)
        if client_id is not None:
            return client_id, None
        carried = self.carried.get(device)
        if carried is not None:
            return carried[0].client_id, carried[1]
        return None
