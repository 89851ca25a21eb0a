"""The subscription trie: which subscriptions match a topic name.

Filters are stored level by level, so matching a topic walks only the branches its own levels,
``+`` and ``#`` lead to: the cost grows with the topic's depth and the number of matching filters,
never with the number of unrelated filters (a town of 10,000 lamps each subscribed to its own
command topic matches one of them per message, not 10,000).

Each filter node holds a dict of subscribers, ``key -> value``; what a key and a value are is the
caller's business (the broker keys a client's subscription by client id and a shared
subscription group by ``("$share", group)``).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from hongshan.mqtt.memo import TopicMemo

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Node(Generic[K, V]):
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node[K, V]] = {}
        self.subscribers: dict[K, V] = {}


MEMO_SIZE = 65_536  # topics whose matches are remembered
# ... and the bytes of their names: a device publishing to ever new 60 KB topics once kept
# 65,536 of them here (several GB at the ceiling); at most this much is kept now.
MEMO_BYTES = 8 * 1024 * 1024


class SubscriptionTrie(Generic[K, V]):
    """Matches are remembered per topic until the trie's *shape* changes: a node made or
    pruned, or a filter's subscribers going from none to some or back. Adding a client to a
    filter that already has subscribers changes a dict the remembered answer already holds,
    so it forgets nothing. A town whose devices stay connected routes its busy topics from
    memory; one where subscriptions churn pays a dict lookup more per message than before."""

    def __init__(self) -> None:
        self._root: _Node[K, V] = _Node()
        self._count = 0
        self._shape = 0  # bumped by every change of shape
        self._memo: TopicMemo[tuple[int, list[dict[K, V]]]] = TopicMemo(MEMO_SIZE, MEMO_BYTES)

    def __len__(self) -> int:
        return self._count

    def subscribe(self, topic_filter: str, key: K, value: V) -> V | None:
        """Add or replace ``key``'s subscription to ``topic_filter``; return the value replaced."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
                self._shape += 1
            node = child
        if not node.subscribers:
            self._shape += 1
        previous = node.subscribers.get(key)
        if previous is None and key not in node.subscribers:
            self._count += 1
        node.subscribers[key] = value
        return previous

    def unsubscribe(self, topic_filter: str, key: K) -> V | None:
        """Remove ``key``'s subscription to ``topic_filter``; return its value, or None if absent.

        Nodes left with neither subscribers nor children are pruned, so a town whose devices
        come and go does not leave a trie of dead branches behind."""
        path: list[tuple[_Node[K, V], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        if key not in node.subscribers:
            return None
        value = node.subscribers.pop(key)
        self._count -= 1
        if not node.subscribers:
            self._shape += 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.subscribers or child.children:
                break
            del parent.children[level]
        return value

    def get(self, topic_filter: str) -> dict[K, V] | None:
        """The subscribers of exactly this filter, or None."""
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.subscribers or None

    def matches(self, topic: str) -> list[dict[K, V]]:
        """The subscriber dicts of every filter that matches ``topic`` (a valid topic name).
        The caller must not change the list."""
        remembered = self._memo.get(topic)
        if remembered is not None and remembered[0] == self._shape:
            return remembered[1]
        found = self._walk(topic)
        self._memo.remember(topic, (self._shape, found))
        return found

    def _walk(self, topic: str) -> list[dict[K, V]]:
        """Level by level, carrying the few nodes still in play (the exact child and the ``+``
        child of each): no per-node tuples."""
        levels = topic.split("/")
        found: list[dict[K, V]] = []
        root = self._root
        if topic[:1] == "$":
            # MQTT-4.7.2-1: a topic starting with '$' is not matched by a filter starting with
            # a wildcard, so the root's '+' and '#' branches are skipped for it.
            first = root.children.get(levels[0])
            if first is None:
                return found
            current = [first]
            levels = levels[1:]
        else:
            current = [root]
        for level in levels:
            following: list[_Node[K, V]] = []
            for node in current:
                children = node.children
                if not children:
                    continue
                multi = children.get("#")
                if multi is not None and multi.subscribers:
                    found.append(multi.subscribers)
                single = children.get("+")
                if single is not None:
                    following.append(single)
                exact = children.get(level)
                if exact is not None:
                    following.append(exact)
            if not following:
                return found
            current = following
        for node in current:
            if node.subscribers:
                found.append(node.subscribers)
            if node.children:
                # 'a/#' matches 'a' too: the parent level (MQTT 4.7.1.2)
                multi = node.children.get("#")
                if multi is not None and multi.subscribers:
                    found.append(multi.subscribers)
        return found

    def items(self) -> Iterator[tuple[str, K, V]]:
        """Every (filter, key, value), in no particular order."""
        stack: list[tuple[_Node[K, V], tuple[str, ...]]] = [(self._root, ())]
        while stack:
            node, path = stack.pop()
            if path:
                for key, value in node.subscribers.items():
                    yield "/".join(path), key, value
            for level, child in node.children.items():
                stack.append((child, (*path, level)))
