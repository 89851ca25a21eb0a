"""Retained messages, kept in a tree of topic levels so that a new subscription finds the
messages its filter matches by walking the filter, not by testing every retained topic."""

from __future__ import annotations

from collections.abc import Iterator

from hongshan.broker.message import Message
from hongshan.mqtt.memo import topic_weight


def retained_weight(message: Message) -> int:
    """The bytes a retained message holds in memory, bar fixed overheads."""
    return topic_weight(message.topic) + len(message.payload)


class _Level:
    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, _Level] = {}
        self.message: Message | None = None


class RetainedStore:
    """The retained messages in memory, and their count and bytes (``retained_weight``); what
    is kept and what is refused is the broker's business."""

    def __init__(self) -> None:
        self._root = _Level()
        self._count = 0
        self.bytes = 0

    def __len__(self) -> int:
        return self._count

    def set(self, message: Message) -> None:
        node = self._root
        for level in message.topic.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Level()
            node = child
        if node.message is None:
            self._count += 1
        else:
            self.bytes -= retained_weight(node.message)
        self.bytes += retained_weight(message)
        node.message = message

    def delete(self, topic: str) -> bool:
        path: list[tuple[_Level, str]] = []
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if node.message is None:
            return False
        self.bytes -= retained_weight(node.message)
        node.message = None
        self._count -= 1
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.message is not None or child.children:
                break
            del parent.children[level]
        return True

    def get(self, topic: str) -> Message | None:
        node = self._root
        for level in topic.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            node = child
        return node.message

    def matching(self, topic_filter: str) -> Iterator[Message]:
        """Retained messages whose topics ``topic_filter`` matches (MQTT-4.7.2-1 applied)."""
        levels = topic_filter.split("/")
        stack: list[tuple[_Level, int]] = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == len(levels):
                if node.message is not None:
                    yield node.message
                continue
            level = levels[i]
            if level == "#":
                # 'a/#' matches 'a' itself, and everything below it.
                if node.message is not None and i > 0:
                    yield node.message
                yield from _subtree(node, skip_dollar=i == 0)
            elif level == "+":
                for name, child in node.children.items():
                    if i == 0 and name.startswith("$"):
                        continue
                    stack.append((child, i + 1))
            else:
                exact = node.children.get(level)
                if exact is not None:
                    stack.append((exact, i + 1))

    def all(self) -> Iterator[Message]:
        yield from _subtree(self._root, skip_dollar=False)


def _subtree(node: _Level, *, skip_dollar: bool) -> Iterator[Message]:
    stack = [
        child for name, child in node.children.items() if not (skip_dollar and name.startswith("$"))
    ]
    while stack:
        current = stack.pop()
        if current.message is not None:
            yield current.message
        stack.extend(current.children.values())
