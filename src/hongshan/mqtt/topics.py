"""Topic names, topic filters and shared subscriptions (MQTT 5.0 sections 4.7 and 4.8).

A Topic Name is what a PUBLISH is sent to: no wildcards. A Topic Filter is what a SUBSCRIBE asks
for: ``+`` stands for one level, ``#`` for any number of levels at the end. Both are non-empty
and never contain U+0000 (MQTT-4.7.3-1, MQTT-4.7.3-2). Levels are separated by ``/``; an empty
level is a level like any other (``/finance`` has two levels, the first one empty).
"""

from __future__ import annotations

from hongshan.errors import RemoteProtocolError
from hongshan.mqtt.reason_codes import ReasonCode

SHARE_PREFIX = "$share/"


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def validate_topic_name(topic: str) -> None:
    """Raise ``RemoteProtocolError`` (0x90 Topic Name invalid) unless ``topic`` is a valid
    Topic Name: non-empty, no ``+`` or ``#``, no U+0000, at most 65,535 bytes of UTF-8."""
    if not topic:  # MQTT-4.7.3-1
        raise RemoteProtocolError("empty topic name", ReasonCode.TOPIC_NAME_INVALID)
    if "+" in topic or "#" in topic:  # MQTT-3.3.2-2, MQTT-4.7.0-1
        raise RemoteProtocolError(
            f"topic name {topic!r} contains a wildcard", ReasonCode.TOPIC_NAME_INVALID
        )
    if "\x00" in topic:  # MQTT-4.7.3-2
        raise RemoteProtocolError("topic name contains U+0000", ReasonCode.TOPIC_NAME_INVALID)
    if _utf8_length(topic) > 0xFFFF:  # MQTT-4.7.3-3
        raise RemoteProtocolError("topic name too long", ReasonCode.TOPIC_NAME_INVALID)


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ``RemoteProtocolError`` (0x8F Topic Filter invalid) unless ``topic_filter`` is a
    valid Topic Filter: non-empty, no U+0000, ``#`` only as the whole last level, ``+`` only as
    a whole level (MQTT-4.7.1-1, MQTT-4.7.1-2). A shared subscription's filter is checked as a
    whole here; ``parse_shared`` checks its share name."""
    if not topic_filter:  # MQTT-4.7.3-1
        raise RemoteProtocolError("empty topic filter", ReasonCode.TOPIC_FILTER_INVALID)
    if "\x00" in topic_filter:  # MQTT-4.7.3-2
        raise RemoteProtocolError("topic filter contains U+0000", ReasonCode.TOPIC_FILTER_INVALID)
    if _utf8_length(topic_filter) > 0xFFFF:  # MQTT-4.7.3-3
        raise RemoteProtocolError("topic filter too long", ReasonCode.TOPIC_FILTER_INVALID)
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if ("+" in level or "#" in level) and (len(level) != 1 or (level == "#" and index != last)):
            raise RemoteProtocolError(
                f"misplaced wildcard in topic filter {topic_filter!r}",
                ReasonCode.TOPIC_FILTER_INVALID,
            )


def over_limits(topic: str, max_length: int, max_levels: int) -> str | None:
    """Why a valid topic name or filter is more than this server accepts (a UTF-8 length over
    ``max_length`` bytes, more than ``max_levels`` levels), or None. Not malformed — the
    spec's 65,535 bytes is ``validate_*``'s business — but refused: MQTT 5.0 answers 0x90 or
    0x8F ("not malformed, but not accepted by this Server", 3.4.2.1, 3.9.3)."""
    length = len(topic)
    if length > max_length or (length * 4 > max_length and not topic.isascii()):
        length = _utf8_length(topic)
        if length > max_length:
            return f"{length} bytes long, more than {max_length}"
    # (a topic has at most as many levels as characters: most need no count at all)
    if length >= max_levels and topic.count("/") >= max_levels:
        return f"{topic.count('/') + 1} levels, more than {max_levels}"
    return None


def parse_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split a shared subscription's filter: ``"$share/g/a/b"`` gives ``("g", "a/b")``; a filter
    that does not start with ``$share/`` gives ``(None, topic_filter)``. An empty share name or
    one with ``+``, ``#`` (MQTT-4.8.2-1, MQTT-4.8.2-2), or a missing filter after it, raises
    ``RemoteProtocolError`` (0x8F). The filter returned is not validated: see
    ``validate_topic_filter``."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    share_name, slash, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not share_name or "+" in share_name or "#" in share_name:
        raise RemoteProtocolError(
            f"invalid share name in {topic_filter!r}", ReasonCode.TOPIC_FILTER_INVALID
        )
    if not slash or not rest:
        raise RemoteProtocolError(
            f"shared subscription {topic_filter!r} without a topic filter",
            ReasonCode.TOPIC_FILTER_INVALID,
        )
    return share_name, rest


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the (valid, non-shared) ``topic_filter`` matches the Topic Name ``topic``.

    ``#`` matches its parent level too (``sport/#`` matches ``sport``, MQTT-4.7.1-2); ``+``
    matches exactly one level, empty ones included (``+/+`` matches ``/finance``). Filters
    starting with a wildcard do not match topics starting with ``$`` (MQTT-4.7.2-1)."""
    if topic[:1] == "$" and topic_filter[:1] in ("+", "#"):
        return False
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter == topic
    return levels_match(topic_filter.split("/"), topic.split("/"))


def levels_match(filter_levels: list[str], topic_levels: list[str]) -> bool:
    """``topic_matches`` on a filter and a topic already split into levels (for callers that
    compare one topic with many filters, split once). No ``$`` rule here: the caller's filters
    say whether they may start with a wildcard."""
    count = len(topic_levels)
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= count or (level != "+" and level != topic_levels[index]):
            return False
    return len(filter_levels) == count
