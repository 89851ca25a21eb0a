"""Which messages the history took: the memory behind exactly-once for QoS 1 resends.

A device whose PUBACK never came (the server was killed, a commit failed) sends the message
again. Its key (a digest of topic, id and payload, made by the dialect) was written with what
the message said; here each device's last keys are remembered with the outcome of the
transaction that holds them: done once committed, pending until known, and forgotten when it
was rolled back, so that the resend is then taken as new. Backend-neutral: a store hands each
turn's keys to its writer and calls ``settle`` with what became of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

from hongshan.errors import StoreUnavailable
from hongshan.store.history.model import Device

PER_DEVICE = 64  # keys kept per device: more than the messages a device has in flight


class TakenKeys:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._keys: dict[Device, dict[bytes, asyncio.Future[None]]] = {}
        self._turn: asyncio.Future[None] | None = None  # the outcome of this turn's keys
        self._done: asyncio.Future[None] = loop.create_future()
        self._done.set_result(None)

    def restore(self, taken: Iterable[tuple[Device, bytes]]) -> None:
        """Keys committed before a restart, oldest first."""
        for device, key in taken:
            self._remember(device, key, self._done)

    def add(self, device: Device, key: bytes) -> None:
        """A key going to the writer with this turn's rows."""
        if self._turn is None:
            self._turn = self._loop.create_future()
            self._turn.add_done_callback(_seen)
        self._remember(device, key, self._turn)

    def was_taken(self, device: Device, key: bytes) -> Awaitable[None] | None:
        """The outcome, shielded: a resend's connection that goes cancels its own wait, not
        the outcome every other copy of the message waits on."""
        known = self._keys.get(device)
        found = None if known is None else known.get(key)
        if found is None or found.done():
            return found
        return asyncio.shield(found)

    def take_turn(self) -> asyncio.Future[None] | None:
        """The outcome future of the keys added since the last call (None if none were)."""
        turn, self._turn = self._turn, None
        return turn

    def settle(
        self,
        keys: Iterable[tuple[Device, bytes]],
        outcome: asyncio.Future[None],
        committed: bool,
        error: str | None,
    ) -> None:
        """A turn's transaction is over: committed, its keys are taken for good; rolled back,
        they were never taken, and what waited on them (a resend's PUBACK) fails."""
        if committed:
            if not outcome.done():
                outcome.set_result(None)
            return
        for device, key in keys:
            known = self._keys.get(device)
            if known is not None and known.get(key) is outcome:
                del known[key]
        if not outcome.done():
            outcome.set_exception(StoreUnavailable(error or "history write failed"))

    def _remember(self, device: Device, key: bytes, outcome: asyncio.Future[None]) -> None:
        known = self._keys.get(device)
        if known is None:
            known = self._keys[device] = {}
        known[key] = outcome
        if len(known) > PER_DEVICE:
            del known[next(iter(known))]


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
