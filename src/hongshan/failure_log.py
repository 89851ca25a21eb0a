"""What a store says when its writes fail, without flooding the log.

A full disk fails every batch of every writer, every connection's acknowledgement and every
background write: thousands a minute, each a line or a traceback (13,311 lines in a minute in
the review). ``FailureLog`` says the first failure of a kind at once, then at most one line per
kind per ``LOG_EVERY`` seconds with how many came meanwhile, and one line when a write succeeds
again. A kind is the failure's message with its numbers taken out (a batch's size, a client's
port), so "database or disk is full" is one kind however many batches it fails; or what the
caller names (a client's address, a reason). It is the one rate-limited log of the code base:
the stores' writers, the broker's refused connections and acknowledgements, and the HTTP
guard's connections cut off all say their floods through it. At most ``kinds`` kinds are
remembered (the oldest forgotten first): a kind per client address must not grow without
bound.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

LOG_EVERY = 10.0  # seconds between two lines of the same kind of failure
KINDS = 256  # kinds of failure remembered at most

_NUMBERS = re.compile(r"\d+")


class FailureLog:
    """One store's (or one part's) failures as log lines: never more than one per kind per
    ``every`` seconds. Safe to call from any thread (writers run in threads of their own)."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.ERROR,
        kinds: int = KINDS,
        again: str = "writing again",
    ) -> None:
        self._log = logger
        self._what = what
        self._every = every
        self._level = level
        self._kinds = kinds
        self._again = again  # what a success after failures is said as
        self._clock = clock
        self._lock = threading.Lock()
        self._said: dict[str, float] = {}  # kind -> when a line last said it
        self._unsaid: dict[str, int] = {}  # kind -> failures since
        self.failures = 0  # since the last success

    @property
    def kinds_remembered(self) -> int:
        return len(self._said)

    def failed(self, message: str, kind: str | None = None) -> None:
        """A failure: said now, unless its kind (by default: ``message`` without its numbers)
        was said within ``every`` seconds (then counted, and said with the next line of its
        kind)."""
        if kind is None:
            kind = _NUMBERS.sub("#", message)
        now = self._clock()
        with self._lock:
            self.failures += 1
            said = self._said.get(kind)
            if said is not None and now - said < self._every:
                self._unsaid[kind] = self._unsaid.get(kind, 0) + 1
                return
            if said is None and len(self._said) >= self._kinds:
                oldest = next(iter(self._said))  # (insertion order: the longest remembered)
                del self._said[oldest]
                self._unsaid.pop(oldest, None)
            self._said.pop(kind, None)  # (to the end of the order again)
            self._said[kind] = now
            more = self._unsaid.pop(kind, 0)
        if more:
            self._log.log(
                self._level,
                "%s: %s (and %d more like it since it was last said)",
                self._what,
                message,
                more,
            )
        else:
            self._log.log(self._level, "%s: %s", self._what, message)

    def succeeded(self) -> None:
        """A write succeeded: after failures, one line says so (and how many there were)."""
        if not self.failures:  # (the common case: no lock taken)
            return
        with self._lock:
            failures, self.failures = self.failures, 0
            self._said.clear()
            self._unsaid.clear()
        if failures:
            self._log.warning("%s: %s, after %d failures", self._what, self._again, failures)
