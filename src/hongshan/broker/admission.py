"""Connections not yet CONNECTed, counted per address from the moment they are accepted.

A host may hold ``max_pending_connections_per_address`` connections that have not completed
CONNECT; past it a new one from that host is closed at once, so one host's slow or silent
clients (a slowloris) hold that many sockets and no more, and other clients' CONNECTs are not
starved. ``connect_timeout`` bounds each one's wait.

The count starts at TCP accept on every listener. On TLS and WebSocket a handshake comes
before MQTT, and a client stalled in it holds a socket as surely as one that never sends
CONNECT: counted only once the handshake was done, 50 half-sent upgrade requests from one
address were all held with the cap at 2 (the review of issue 12). So the listener admits the
connection, and hands its ``Admission`` to the ``MQTTConnection`` that takes over once the
handshake is done; whichever ends first, the count is given back once.
"""

from __future__ import annotations

import logging
import time

from hongshan.broker.stats import Stats
from hongshan.failure_log import FailureLog

log = logging.getLogger("hongshan.broker")

# Connections refused over the cap are logged once per address per this many seconds (with how
# many more since), and that many addresses at most are remembered for it.
REFUSALS_LOG_INTERVAL = 60.0
REFUSALS_REMEMBERED = 4096


class Admission:
    """One connection counted against its address, from its accept until it is CONNECTed or
    gone. Whoever holds it calls ``release`` when that happens: the handshake of its listener
    (a connection lost during it) or its ``MQTTConnection``; a second call does nothing."""

    __slots__ = ("_counts", "accepted_at", "host")

    def __init__(self, counts: dict[str, int], host: str) -> None:
        self._counts: dict[str, int] | None = counts
        self.host = host
        self.accepted_at = time.monotonic()

    def release(self) -> None:
        counts = self._counts
        if counts is None:
            return
        self._counts = None
        left = counts.pop(self.host, 0) - 1
        if left > 0:
            counts[self.host] = left

    def time_left(self, timeout: float) -> float:
        """What is left of ``timeout`` seconds counted from the accept (connect_timeout bounds
        a listener's handshake and the CONNECT after it together, not each in turn)."""
        return max(0.0, timeout - (time.monotonic() - self.accepted_at))


class PendingConnections:
    """The per-address count of connections waiting for CONNECT, and the cap on it. Owns no
    connection: it answers whether a new one may stay, and the caller closes it if not."""

    def __init__(self, cap: int, stats: Stats) -> None:
        self.cap = cap  # 0: no cap (still counted)
        self._stats = stats
        self._counts: dict[str, int] = {}  # host -> its connections not yet CONNECTed
        self._refusals = FailureLog(
            log,
            "closing new connections",
            every=REFUSALS_LOG_INTERVAL,
            level=logging.WARNING,
            kinds=REFUSALS_REMEMBERED,
        )

    def admit(self, host: str) -> Admission | None:
        """A connection from ``host`` just accepted: counted, or None when the host already
        holds ``cap`` of them (then the caller closes it at once)."""
        count = self._counts.get(host, 0)
        if self.cap and count >= self.cap:
            self._stats.refused_pending += 1
            self._refusals.failed(
                f"from {host}: {count} of its connections are waiting for CONNECT "
                "(max_pending_connections_per_address)",
                kind=host,
            )
            return None
        self._counts[host] = count + 1
        return Admission(self._counts, host)

    def held(self, host: str) -> int:
        """How many connections ``host`` holds that are not CONNECTed yet."""
        return self._counts.get(host, 0)
