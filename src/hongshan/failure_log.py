"""What a store says when its writes fail, without flooding the log.

A full disk fails every batch of every writer, every connection's acknowledgement and every
background write: thousands a minute, each a line or a traceback (13,311 lines in a minute in
the review). ``FailureLog`` says the first failure of a kind at once, then at most one line per
kind per ``LOG_EVERY`` seconds with how many came meanwhile, and one line when a write succeeds
again. A kind is the failure's message with its numbers taken out (a batch's size, a client's
port), so "database or disk is full" is one kind however many batches it fails.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

LOG_EVERY = 10.0  # seconds between two lines of the same kind of failure

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
    ) -> None:
        self._log = logger
        self._what = what
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._said: dict[str, float] = {}  # kind -> when a line last said it
        self._unsaid: dict[str, int] = {}  # kind -> failures since
        self.failures = 0  # since the last success

    def failed(self, message: str) -> None:
        """A failure: said now, unless its kind was said within ``every`` seconds (then
        counted, and said with the next line of its kind)."""
        kind = _NUMBERS.sub("#", message)
        now = self._clock()
        with self._lock:
            self.failures += 1
            said = self._said.get(kind)
            if said is not None and now - said < self._every:
                self._unsaid[kind] = self._unsaid.get(kind, 0) + 1
                return
            self._said[kind] = now
            more = self._unsaid.pop(kind, 0)
        if more:
            self._log.error(
                "%s: %s (and %d more like it since it was last said)", self._what, message, more
            )
        else:
            self._log.error("%s: %s", self._what, message)

    def succeeded(self) -> None:
        """A write succeeded: after failures, one line says so (and how many there were)."""
        if not self.failures:  # (the common case: no lock taken)
            return
        with self._lock:
            failures, self.failures = self.failures, 0
            self._said.clear()
            self._unsaid.clear()
        if failures:
            self._log.warning("%s: writing again, after %d failed writes", self._what, failures)
