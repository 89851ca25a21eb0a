"""Which Alink topic a device published on, as data (the dialect's topic table).

Every uplink topic is ``/sys/{productKey}/{deviceName}/`` followed by one of the suffixes
below; ``*`` stands for an identifier (an event, a service) or an RRPC message id. A topic that
matches no row is left to ordinary routing (an application may be listening).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import msgspec

from hongshan.mqtt.memo import TopicMemo


class Topic(enum.Enum):
    PROPERTY_POST = "property post"
    HISTORY_POST = "history post"  # values kept while offline, with their times
    PACK_POST = "pack post"  # a gateway's and its sub-devices' values in one message
    EVENT_POST = "event post"
    PROPERTY_SET_REPLY = "property set reply"
    SERVICE_REPLY = "service reply"
    RRPC_RESPONSE = "rrpc response"


@dataclass(frozen=True, kw_only=True)
class Route:
    suffix: tuple[str, ...]
    topic: Topic


# Longest suffix first: "thing/event/property/post" before "thing/event/*/post".
ROUTES = (
    Route(suffix=("thing", "event", "property", "post"), topic=Topic.PROPERTY_POST),
    Route(suffix=("thing", "event", "property", "history", "post"), topic=Topic.HISTORY_POST),
    Route(suffix=("thing", "event", "property", "pack", "post"), topic=Topic.PACK_POST),
    Route(suffix=("thing", "service", "property", "set_reply"), topic=Topic.PROPERTY_SET_REPLY),
    Route(suffix=("thing", "event", "*", "post"), topic=Topic.EVENT_POST),
    Route(suffix=("thing", "service", "*_reply"), topic=Topic.SERVICE_REPLY),
    Route(suffix=("rrpc", "response", "*"), topic=Topic.RRPC_RESPONSE),
)


class DeviceTopic(msgspec.Struct, frozen=True, kw_only=True):
    """(A frozen Struct: one is made per device message, and a frozen dataclass is slower.)"""

    product_key: str
    device_name: str
    topic: Topic
    identifier: str = ""  # the event, the service, or the RRPC message id


def _match(pattern: str, level: str) -> str | None:
    """The part ``*`` stands for, "" for a literal match, None for no match."""
    if pattern == "*":
        return level
    if pattern.startswith("*"):
        tail = pattern[1:]
        return level[: -len(tail)] if level.endswith(tail) and len(level) > len(tail) else None
    return "" if pattern == level else None


# the routes without a wildcard, looked up whole (the common case: property posts)
_LITERAL = {route.suffix: route.topic for route in ROUTES if "*" not in "".join(route.suffix)}
_PATTERNS = tuple(route for route in ROUTES if route.suffix not in _LITERAL)


# A device posts on the same few topics again and again; remembered within a byte budget (an
# lru_cache of 65,536 topics held them whole: up to 4 GiB of ever new long topics).
_PARSED: TopicMemo[DeviceTopic | None] = TopicMemo(65_536, 8 * 1024 * 1024)
_UNSEEN = DeviceTopic(product_key="", device_name="", topic=Topic.PROPERTY_POST)


def parse(topic: str) -> DeviceTopic | None:
    parsed = _PARSED.get(topic, _UNSEEN)
    if parsed is _UNSEEN:
        parsed = _parse(topic)
        _PARSED.remember(topic, parsed)
    return parsed


def _parse(topic: str) -> DeviceTopic | None:
    levels = topic.split("/")
    if len(levels) < 6 or levels[0] != "" or levels[1] != "sys":
        return None
    pk, dn, rest = levels[2], levels[3], tuple(levels[4:])
    literal = _LITERAL.get(rest)
    if literal is not None:
        return DeviceTopic(product_key=pk, device_name=dn, topic=literal)
    for route in _PATTERNS:
        if len(route.suffix) != len(rest):
            continue
        identifier = ""
        for pattern, level in zip(route.suffix, rest, strict=True):
            found = _match(pattern, level)
            if found is None:
                break
            identifier = identifier or found
        else:
            return DeviceTopic(
                product_key=pk, device_name=dn, topic=route.topic, identifier=identifier
            )
    return None


def sync_service_topic(topic: str) -> tuple[str, DeviceTopic] | None:
    """``/ext/rrpc/{msgId}/sys/{pk}/{dn}/thing/service/{identifier}`` → (msgId, the call)."""
    if not topic.startswith("/ext/rrpc/"):
        return None
    msg_id, _, inner = topic[len("/ext/rrpc/") :].partition("/")
    levels = inner.split("/")
    if len(levels) != 6 or levels[0] != "sys" or levels[3:5] != ["thing", "service"]:
        return None
    return msg_id, DeviceTopic(
        product_key=levels[1],
        device_name=levels[2],
        topic=Topic.SERVICE_REPLY,
        identifier=levels[5],
    )
