"""A memo keyed by topic names, bounded by the bytes of its keys as well as by their number.

Routing, authorizing and parsing remember their answer per topic name, because a town publishes
to the same few topics again and again. A count of entries alone does not bound the memory such
a memo holds: a topic name may be 65,535 bytes long, so 65,536 remembered topics may be 4 GiB,
and a device publishing to ever new long topics once grew the server by hundreds of megabytes
that stayed after it left. Every such memo is a ``TopicMemo``.

When a new topic would take the memo past either bound, everything is forgotten at once (a
generation ends) rather than the oldest entry: the busy topics come back within a message each,
and forgetting costs nothing per message. A topic longer than ``max_bytes // 8`` is never kept
at all, so one huge topic does not push out a thousand ordinary ones.
"""

from __future__ import annotations

from typing import TypeVar

V = TypeVar("V")


def topic_weight(topic: str) -> int:
    """What a topic's characters may cost in memory: its length for ASCII (one byte a
    character), four bytes a character otherwise (CPython's widest form). ``isascii`` is a
    flag lookup, not a scan."""
    return len(topic) if topic.isascii() else 4 * len(topic)


class TopicMemo(dict[str, V]):
    """Answers per topic name; read it as a dict (``memo.get(topic)``: a plain dict lookup on
    the hot path), add to it with ``remember`` only. It owns the bound on its keys' bytes and
    count; it never decides when an answer is stale (the caller's remembered value says)."""

    __slots__ = ("key_bytes", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.key_bytes = 0  # topic_weight of the keys held

    def has_room(self, topic: str) -> bool:
        """Whether ``remember(topic, …)`` would keep it without forgetting the others."""
        weight = topic_weight(topic)
        return (
            weight <= self.max_bytes >> 3
            and len(self) < self.max_entries
            and self.key_bytes + weight <= self.max_bytes
        )

    def remember(self, topic: str, answer: V) -> None:
        if topic in self:
            self[topic] = answer  # the key (and its bytes) stays as it was
            return
        weight = topic_weight(topic)
        if weight > self.max_bytes >> 3:
            return
        if len(self) >= self.max_entries or self.key_bytes + weight > self.max_bytes:
            self.clear()
        self[topic] = answer
        self.key_bytes += weight

    def clear(self) -> None:
        super().clear()
        self.key_bytes = 0
