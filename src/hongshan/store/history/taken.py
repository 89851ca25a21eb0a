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
(about 90 bytes a key: 54 MB for 10,000 a second over a minute) and by ``PER_DEVICE`` keys a
device: a device that sent a burst and went quiet loses the rest of its burst's keys within
``KEEP_SECONDS`` of their commit, whether or not it or any other sends again (the quiet are
trimmed at every turn, and by a timer while no turn comes).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from hongshan.errors import StoreUnavailable
from hongshan.store.history.model import Device

PER_DEVICE = 64  # keys a device keeps however old (a resend after a long time offline)
# seconds a key is kept after its message was last seen: longer than a device takes to come
# back after a failed commit disconnected it (paho backs off to 120 s at most, and starts
# again from 1 s after each CONNACK), and than a failing commit takes to be known
KEEP_SECONDS = 60.0


class Turn:
    """The keys a turn handed to the writer: their transaction's outcome, and when it was last
    known to be pending or committed (``seen``, the clock's time). Each key maps to its turn's, so a
    key costs one dict slot."""

    __slots__ = ("outcome", "seen")

    def __init__(self, outcome: asyncio.Future[None], seen: float) -> None:
        self.outcome = outcome
        self.seen = seen


class TakenKeys:
    """Each device's taken keys with their turn's outcome; it never writes them (the store's
    writer does, with the turn's rows) and never forgets one whose outcome is pending.

    ``clock`` (seconds, the loop's time unless given) says when keys were seen and when they
    are old; the timer that trims the quiet while no turn comes runs on the loop's time."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float] | None = None
    ) -> None:
        self._loop = loop
        self._clock = clock or loop.time
        # each device's keys, least recently seen first (a key seen again moves to the end)
        self._keys: dict[Device, dict[bytes, Turn]] = {}
        self._turn: Turn | None = None  # this turn's keys
        self._done: asyncio.Future[None] = loop.create_future()
        self._done.set_result(None)
        self._seen_now: Turn | None = None  # a committed key seen again, this loop second
        # the devices that may hold more than PER_DEVICE keys, by when their keys may next be
        # old enough to go (least soon first): what the global trim walks, and only as far
        # as a device not due yet
        self._crowded: OrderedDict[Device, float] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    def restore(self, taken: Iterable[tuple[Device, bytes]]) -> None:
        """Keys committed before a restart, oldest first."""
        now = self._clock()
        restored = Turn(self._done, now)
        for device, key in taken:
            self._remember(device, key, restored, now)

    def add(self, device: Device, key: bytes) -> None:
        """A key going to the writer with this turn's rows."""
        now = self._clock()
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
            # (moved to the end: a trim of this device stops before it)
            known[key] = self._seen_again()
            return outcome
        known[key] = turn  # (pending: its turn's settle finds it there)
        return asyncio.shield(outcome)

    def take_turn(self) -> Turn | None:
        """The keys added since the last call (None if none were); the quiet devices' old
        keys are trimmed meanwhile."""
        turn, self._turn = self._turn, None
        self.trim()
        return turn

    def trim(self) -> None:
        """Every device's old keys past its last ``PER_DEVICE`` go, whether or not it sends
        again: the devices whose keys may be old enough are walked, least recently seen first,
        up to the first that is not due."""
        now = self._clock()
        crowded = self._crowded
        while crowded:
            device, due = next(iter(crowded.items()))
            if now - due < KEEP_SECONDS:
                break
            crowded.popitem(last=False)
            known = self._keys.get(device)
            if known is None:
                continue
            blocked = self._trim(device, known, now)
            if blocked is not None:  # pending, or committed since: looked at again later
                crowded[device] = blocked
        self._arm()

    def held(self) -> int:
        """How many keys are remembered (for tests and benchmarks)."""
        return sum(len(known) for known in self._keys.values())

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
            turn.seen = self._clock()
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
        now = self._clock()
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
        if len(known) > PER_DEVICE and self._trim(device, known, now) is not None:
            self._crowd(device, now)

    def _crowd(self, device: Device, seen: float) -> None:
        """``device`` holds more than the floor, the newest of them seen at ``seen``."""
        self._crowded[device] = seen
        self._crowded.move_to_end(device)
        self._arm()

    def _trim(self, device: Device, known: dict[bytes, Turn], now: float) -> float | None:
        """The least recently seen of ``device``'s keys go, while they are settled and old and
        more than the floor remain; a pending or recent one stops it (the rest are about as
        recent). When more than the floor remain: when to look again (None otherwise)."""
        over = len(known) - PER_DEVICE
        if over <= 0:
            return None
        gone = 0
        blocked = None
        for kept in known.values():
            if gone == over:
                break
            if not kept.outcome.done():
                blocked = now
                break
            if now - kept.seen < KEEP_SECONDS:
                blocked = kept.seen
                break
            gone += 1
        if gone == 1:
            del known[next(iter(known))]
        elif gone:
            # (a dict emptied from its front one key at a time is walked past every hole at
            # each step: the rest is copied once instead)
            known = self._keys[device] = dict(itertools.islice(known.items(), gone, None))
        return blocked

    def _arm(self) -> None:
        """While devices hold more than the floor, a timer trims them when the first is due:
        keys are freed even when no device sends any more (no turn comes)."""
        if self._timer is not None or not self._crowded:
            return
        due = next(iter(self._crowded.values())) + KEEP_SECONDS - self._clock()
        self._timer = self._loop.call_later(max(due, 1.0), self._timed_trim)

    def _timed_trim(self) -> None:
        self._timer = None
        self.trim()

    def close(self) -> None:
        """No timer is left (the store closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _seen(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
