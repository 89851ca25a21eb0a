"""Which messages the history took: the memory behind exactly-once for QoS 1 resends.

A device whose PUBACK never came (the server was killed, a commit failed) sends the message
again. Its key (a digest of topic, id and payload, made by the dialect) was written with what
the message said; here each device's keys are remembered with the outcome of the transaction
that holds them: done once committed, pending until known, and forgotten when it was rolled
back, so that the resend is then taken as new. Backend-neutral: a store hands each turn's keys
to its writer and calls ``settle`` with what became of them.

What a device may send again is every message it has no PUBACK for, and that is not bounded
by a count: an MQTT 3.1.1 client has no Receive Maximum, and paho sends its whole queue again
on reconnecting (hundreds of messages while a full disk failed commit after commit), not only
its 20 in flight. A key is therefore never forgotten while its outcome is pending, nor within
``KEEP_SECONDS`` of the last time its message was seen (taken, committed, or sent again: a
device that keeps resending, while commits keep failing, keeps its keys); past that, a device's
last ``PER_DEVICE`` keys are still kept. Memory is bounded by the rate of QoS 1 messages
(about 90 bytes a key: 54 MB for 10,000 a second over a minute).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable

from hongshan.errors import StoreUnavailable
from hongshan.store.history.model import Device

PER_DEVICE = 64  # keys a device keeps however old (a resend after a long time offline)
# seconds a key is kept after its message was last seen: longer than a device takes to come
# back after a failed commit disconnected it (paho backs off to 120 s at most, and starts
# again from 1 s after each CONNACK), and than a failing commit takes to be known
KEEP_SECONDS = 60.0


class Turn:
    """The keys a turn handed to the writer: their transaction's outcome, and when it was last
    known to be pending or committed (``seen``, loop time). Each key maps to its turn's, so a
    key costs one dict slot."""

    __slots__ = ("outcome", "seen")

    def __init__(self, outcome: asyncio.Future[None], seen: float) -> None:
        self.outcome = outcome
        self.seen = seen


class TakenKeys:
    """Each device's taken keys with their turn's outcome; it never writes them (the store's
    writer does, with the turn's rows) and never forgets one whose outcome is pending."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # each device's keys, least recently seen first (a key seen again moves to the end)
        self._keys: dict[Device, dict[bytes, Turn]] = {}
        self._turn: Turn | None = None  # this turn's keys
        self._done: asyncio.Future[None] = loop.create_future()
        self._done.set_result(None)
        self._seen_now: Turn | None = None  # a committed key seen again, this loop second

    def restore(self, taken: Iterable[tuple[Device, bytes]]) -> None:
        """Keys committed before a restart, oldest first."""
        now = self._loop.time()
        restored = Turn(self._done, now)
        for device, key in taken:
            self._remember(device, key, restored, now)

    def add(self, device: Device, key: bytes) -> None:
        """A key going to the writer with this turn's rows."""
        now = self._loop.time()
        if self._turn is None:
            outcome = self._loop.create_future()
            outcome.add_done_callback(_seen)
            self._turn = Turn(outcome, now)
        self._remember(device, key, self._turn, now)

    def was_taken(self, device: Device, key: bytes) -> Awaitable[None] | None:
        """The outcome, shielded: a resend's connection that goes cancels its own wait, not
        the outcome every other copy of the message waits on. A key found was seen now: it
        is kept another ``KEEP_SECONDS`` (its PUBACK may be lost again)."""
        known = self._keys.get(device)
        turn = None if known is None else known.pop(key, None)
        if turn is None:
            return None
        assert known is not None
        outcome = turn.outcome
        if outcome.done():
            known[key] = self._seen_again()
            return outcome
        known[key] = turn  # (pending: its turn's settle finds it there)
        return asyncio.shield(outcome)

    def take_turn(self) -> Turn | None:
        """The keys added since the last call (None if none were)."""
        turn, self._turn = self._turn, None
        return turn

    def settle(
        self,
        keys: Iterable[tuple[Device, bytes]],
        turn: Turn,
        committed: bool,
        error: str | None,
    ) -> None:
        """A turn's transaction is over: committed, its keys are taken for good (and kept
        ``KEEP_SECONDS`` from now: a PUBACK withheld by a failure before them is sent again);
        rolled back, they were never taken, and what waited on them (a resend's PUBACK)
        fails."""
        outcome = turn.outcome
        if committed:
            turn.seen = self._loop.time()
            if not outcome.done():
                outcome.set_result(None)
            return
        for device, key in keys:
            known = self._keys.get(device)
            if known is not None and known.get(key) is turn:
                del known[key]
        if not outcome.done():
            outcome.set_exception(StoreUnavailable(error or "history write failed"))

    def _seen_again(self) -> Turn:
        """A committed turn seen now (shared by the keys seen again within a second)."""
        now = self._loop.time()
        seen = self._seen_now
        if seen is None or now - seen.seen >= 1.0:
            seen = self._seen_now = Turn(self._done, now)
        return seen

    def _remember(self, device: Device, key: bytes, turn: Turn, now: float) -> None:
        known = self._keys.get(device)
        if known is None:
            known = self._keys[device] = {}
        known.pop(key, None)
        known[key] = turn
        # the least recently seen go, while they are settled and old and more than the floor
        # remain; a pending or recent one stops it (the rest are about as recent)
        while len(known) > PER_DEVICE:
            oldest = next(iter(known))
            kept = known[oldest]
            if not kept.outcome.done() or now - kept.seen < KEEP_SECONDS:
                break
            del known[oldest]


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
