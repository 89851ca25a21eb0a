"""Which topics a device built for Alibaba Cloud IoT may use: its own, and nobody else's.

A device (ProductKey ``pk``, DeviceName ``dn``) lives in these namespaces (Alibaba Cloud IoT
Platform, "Topics" and the Alink protocol pages):

=====================================  ==========  ===============================================
topic                                  device      what for
=====================================  ==========  ===============================================
``/sys/pk/dn/#``                       pub + sub   Alink: properties, events, services, topology
``/pk/dn/user/…``                      per class   custom topic classes of the product
``/shadow/update/pk/dn``               pub         device shadow: report / ask
``/shadow/get/pk/dn``                  sub         device shadow: the platform's answers
``/ota/device/inform|progress|request`` pub        firmware version, upgrade progress, ask
``/ota/device/upgrade/pk/dn``          sub         firmware upgrade notices
``/ext/ntp/pk/dn/request``             pub         NTP time request
``/ext/ntp/pk/dn/response``            sub         NTP time answer
``/ext/session/pk/dn/#``               pub + sub   gateway sub-device login and logout
``/ext/rrpc/<msgId>/<own topic>``      pub + sub   RRPC over a custom topic
``/as/mqtt/status/pk/dn``              —           the platform's own status messages
=====================================  ==========  ===============================================

A gateway may also use these topics for each sub-device logged in through it; that is the
``also`` argument (the sub-devices' (pk, dn) pairs), kept up to date as they log in and out
(``carry``, ``drop``: ``plugin.Alink``).

Each topic also has a direction (``TOPIC_DIRECTIONS``, ``direction_of``): *up* is the device
speaking (posts, replies to the platform's calls, its requests), *down* the platform speaking to
it (calls, property set, replies to its requests). A device may never publish a downlink, even
on its own topics (it would be answering or commanding itself in the platform's name); and an
uplink of device D is D's word — the platform stores it as D's values — so only D, or the
gateway D is logged in through, may publish it, whatever an ACL grants anyone else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from hongshan.identity.acl import filter_covers
from hongshan.mqtt.memo import TopicMemo
from hongshan.mqtt.topics import levels_match, topic_matches
from hongshan.things.model import Right, TopicClass

Direction = Literal["up", "down", "both"]  # up: device → platform; down: platform → device


def _own_rules(pk: str, dn: str, classes: Iterable[TopicClass]) -> list[tuple[Right, str]]:
    rules: list[tuple[Right, str]] = [
        ("all", f"/sys/{pk}/{dn}/#"),
        ("pub", f"/shadow/update/{pk}/{dn}"),
        ("sub", f"/shadow/get/{pk}/{dn}"),
        ("pub", f"/ota/device/inform/{pk}/{dn}"),
        ("pub", f"/ota/device/progress/{pk}/{dn}"),
        ("pub", f"/ota/device/request/{pk}/{dn}"),
        ("sub", f"/ota/device/upgrade/{pk}/{dn}"),
        ("pub", f"/ext/ntp/{pk}/{dn}/request"),
        ("sub", f"/ext/ntp/{pk}/{dn}/response"),
        ("all", f"/ext/session/{pk}/{dn}/#"),
    ]
    for topic_class in classes:
        rules.append(
            (
                topic_class.right,
                topic_class.pattern.replace("${productKey}", pk).replace("${deviceName}", dn),
            )
        )
    return rules


# Who speaks on a device's topics (Alibaba Cloud IoT, "What is a topic?", "Auto-subscribed
# topics" and the Alink protocol pages), as (filter, direction); the first row that matches
# decides, ``+`` standing for the product key and device name. Every downlink Alibaba documents
# under /sys/ is listed, also those this platform does not send yet: a device must not publish
# them in the platform's name either. Under /sys/ and /ext/session/ the rows name requests: a
# request's ``…_reply`` goes the other way (``property/post`` up, ``post_reply`` down;
# ``property/set`` down, ``set_reply`` up).
TOPIC_DIRECTIONS: tuple[tuple[str, Direction], ...] = (
    ("/sys/+/+/thing/service/#", "down"),  # service calls, property set and get
    ("/sys/+/+/rrpc/request/+", "down"),
    ("/sys/+/+/thing/model/down_raw", "down"),
    ("/sys/+/+/thing/config/push", "down"),  # remote configuration
    ("/sys/+/+/thing/config/log/push", "down"),  # the log level the platform wants
    ("/sys/+/+/thing/bootstrap/notify", "down"),  # device distribution: connect elsewhere
    ("/sys/+/+/thing/job/notify", "down"),  # device jobs
    ("/sys/+/+/thing/awss/device/switchap", "down"),  # network provisioning: switch AP
    ("/sys/+/+/thing/topo/add/notify", "down"),  # to a gateway: add these sub-devices
    ("/sys/+/+/thing/topo/change", "down"),  # to a gateway: its topology changed
    ("/sys/+/+/thing/disable", "down"),  # to a gateway, for a sub-device
    ("/sys/+/+/thing/enable", "down"),
    ("/sys/+/+/thing/delete", "down"),
    ("/sys/+/+/secure_tunnel/notify", "down"),  # secure tunnel opened
    ("/sys/+/+/edge/debug/switch", "down"),  # remote login switched on or off
    ("/sys/+/+/#", "up"),  # posts, and the device's requests (topology, desired values, …)
    ("/ext/session/+/+/#", "up"),  # sub-device login and logout
    ("/shadow/update/+/+", "up"),
    ("/shadow/get/+/+", "down"),
    ("/ota/device/inform/+/+", "up"),
    ("/ota/device/progress/+/+", "up"),
    ("/ota/device/request/+/+", "up"),
    ("/ota/device/upgrade/+/+", "down"),
    ("/ext/ntp/+/+/request", "up"),
    ("/ext/ntp/+/+/response", "down"),
    # the platform sends the RRPC request itself; what a client publishes here is a device's
    # answer (a synchronous service reply is taken as the device's word)
    ("/ext/rrpc/#", "up"),
    # a device's presence is the platform's to say: as an uplink, nobody else may publish it
    ("/as/mqtt/status/+/+", "up"),
)
# the rows' filters split into levels once; a topic is split once and compared with each (and
# remembered only by its suffix under /sys/, in the bounded memo below)
_ROW_LEVELS = tuple((pattern.split("/"), direction) for pattern, direction in TOPIC_DIRECTIONS)
_REPLIES_TURN = ("/sys/", "/ext/session/")
_FLIP: dict[Direction, Direction] = {"up": "down", "down": "up", "both": "both"}


def direction_of(
    topic: str, classes: Callable[[str], Iterable[TopicClass]] = lambda pk: ()
) -> Direction | None:
    """Who speaks on ``topic``: a device (up), the platform (down), either (both), or None when
    it is no device's topic. ``classes(pk)`` gives a product's custom topic classes, whose
    right says it: ``pub`` is an uplink, ``sub`` a downlink, ``all`` both."""
    request = topic
    turned = topic.endswith("_reply") and topic.startswith(_REPLIES_TURN)
    if turned:
        request = topic[: -len("_reply")]
    found = _row_direction(request)
    if found is not None:
        return _FLIP[found] if turned else found
    levels = topic.split("/", 4)  # "", pk, dn, "user", …
    if len(levels) == 5 and levels[3] == "user" and levels[1]:
        for topic_class in classes(levels[1]):
            pattern = topic_class.pattern.replace("${productKey}", levels[1])
            if topic_matches(pattern.replace("${deviceName}", levels[2]), topic):
                return _CLASS_DIRECTION[topic_class.right]
    return None


_CLASS_DIRECTION: dict[Right, Direction] = {"pub": "up", "sub": "down", "all": "both"}


# Under /sys/{pk}/{dn}/ the direction depends on the rest alone: remembered for the few suffixes
# devices use, in a memo bounded by its keys' bytes (clients choose them; mqtt/memo.py).
_SYS_SUFFIXES: TopicMemo[Direction | None] = TopicMemo(1024, 64 * 1024)


def _row_direction(topic: str) -> Direction | None:
    suffix = None
    if topic.startswith("/sys/"):
        parts = topic.split("/", 4)
        if len(parts) == 5:
            suffix = parts[4]
            if suffix in _SYS_SUFFIXES:  # (None is an answer too: no device's topic)
                return _SYS_SUFFIXES[suffix]
    levels = topic.split("/")
    found: Direction | None = None
    for filter_levels, direction in _ROW_LEVELS:
        if levels_match(filter_levels, levels):
            found = direction
            break
    if suffix is not None:
        _SYS_SUFFIXES.remember(suffix, found)
    return found


def _safe(part: str) -> bool:
    # a name with '+', '#' or '/' would widen every rule it is put into
    return bool(part) and not any(ch in part for ch in "+#/")


class DeviceTopics:
    """The topic rights of one device, and of the sub-devices a gateway carries: ``carry`` when
    one logs in through it, ``drop`` when it logs out (the broker must then be told that the
    connection's rights changed, since it remembers verdicts)."""

    def __init__(
        self,
        product_key: str,
        device_name: str,
        classes: Iterable[TopicClass] = (),
        also: Iterable[tuple[str, str, Iterable[TopicClass]]] = (),
    ) -> None:
        self.device = (product_key, device_name)
        self._own: dict[tuple[str, str], list[tuple[Right, str]]] = {}
        self.rules: list[tuple[Right, str]] = []
        # the topics an RRPC may wrap: the device's own custom and service topics (Alibaba's
        # synchronous service calls travel as /ext/rrpc/{id}/sys/{pk}/{dn}/thing/service/{id})
        self._rrpc_inner: list[str] = []
        for pk, dn, own_classes in ((product_key, device_name, classes), *also):
            self.carry(pk, dn, own_classes)

    def carry(self, pk: str, dn: str, classes: Iterable[TopicClass] = ()) -> None:
        if _safe(pk) and _safe(dn):
            self._own[pk, dn] = _own_rules(pk, dn, classes)
            self._flatten()

    def drop(self, pk: str, dn: str) -> None:
        if (pk, dn) != self.device and self._own.pop((pk, dn), None) is not None:
            self._flatten()

    def _flatten(self) -> None:
        self.rules = [rule for own in self._own.values() for rule in own]
        self._rrpc_inner = []
        for (pk, dn), own in self._own.items():
            self._rrpc_inner.extend(f for _, f in own if not f.startswith("/sys/"))
            self._rrpc_inner.append(f"/sys/{pk}/{dn}/thing/service/+")

    def _allowed(self, wanted: Right, topic: str) -> bool:
        for right, rule in self.rules:
            if (right == "all" or right == wanted) and topic_matches(rule, topic):
                return True
        if topic.startswith("/ext/rrpc/"):
            # /ext/rrpc/${messageId}/${topic}: the wrapped topic must be the device's own
            _, _, rest = topic[len("/ext/rrpc/") :].partition("/")
            inner = "/" + rest
            return any(topic_matches(rule, inner) for rule in self._rrpc_inner)
        return False

    def may_publish(self, topic: str) -> bool:
        # a downlink is the platform's to send, even on the device's own topics
        return self._allowed("pub", topic) and direction_of(topic) != "down"

    def may_subscribe(self, topic_filter: str) -> bool:
        """Allowed when a subscribe rule covers the whole filter (see ``filter_covers``)."""
        if topic_filter.startswith("/ext/rrpc/+/"):
            inner = "/" + topic_filter[len("/ext/rrpc/+/") :]
            return any(topic_matches(rule, inner) for rule in self._rrpc_inner)
        return any(
            (right == "all" or right == "sub") and filter_covers(rule, topic_filter)
            for right, rule in self.rules
        )

    receive_filter = None  # no deny rules: nothing to hold back at delivery
