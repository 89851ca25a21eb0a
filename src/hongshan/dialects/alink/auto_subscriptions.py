"""Alibaba's "automatic topic subscription": what a device whose client id says ``_ss=1`` (the
Link SDKs) receives without subscribing, so that replies and calls reach it.

Alibaba lists some twenty topics under /sys/{pk}/{dn}/thing/ (post replies, service calls,
property set and get, desired-property, config, topology and OTA replies, raw down); one filter
over that branch covers them all, and being no-local, never hands the device its own uplinks
back. Each template below becomes one derived subscription for all devices (``Broker.derive``):
the broker asks ``AutoSubscriptions`` who receives a topic it matches — the gateway carrying the
device the topic names, else that device if its SDK asked for them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from hongshan.broker.auth import Client
from hongshan.dialects.alink.device_auth import AUTO_SUBSCRIBE, device_client_id
from hongshan.dialects.port import BrokerPort
from hongshan.mqtt.memo import TopicMemo

AUTO_SUBSCRIBED = (
    "/sys/{pk}/{dn}/thing/#",
    "/sys/{pk}/{dn}/rrpc/request/+",
    "/ext/rrpc/+/sys/{pk}/{dn}/thing/service/+",  # synchronous service calls
    "/ext/session/{pk}/{dn}/combine/+",  # sub-device login and logout replies
    "/ext/ntp/{pk}/{dn}/response",
    "/shadow/get/{pk}/{dn}",
    "/ota/device/upgrade/{pk}/{dn}",
)

Device = tuple[str, str]


def auto_subscription_patterns() -> list[tuple[str, int, int]]:
    """Each automatic subscription as (filter with ``+`` for the device, the topic levels that
    hold its product key and its device name): one pattern serves every device."""
    patterns = []
    for template in AUTO_SUBSCRIBED:
        levels = template.split("/")
        pk_at, dn_at = levels.index("{pk}"), levels.index("{dn}")
        levels[pk_at] = levels[dn_at] = "+"
        patterns.append(("/".join(levels), pk_at, dn_at))
    return patterns


class AutoSubscriptions:
    """Who receives each automatically subscribed topic: the gateway carrying the device it
    names (``carrier``, the gateway service's map), else that device if its SDK asked for them
    (``_ss=1``, the ``AUTO_SUBSCRIBE`` label of its connection). A session, persistent ones
    included, keeps them until it connects without asking. Answers are remembered per topic
    (bounded by its topics' bytes: a device publishing to ever new long topics must not grow
    it) until who-gets-what changes (``changed``)."""

    def __init__(self, carrier: Mapping[Device, Device]) -> None:
        self._carrier = carrier
        self._asked: set[str] = set()  # device client ids with _ss=1
        self._generation = 0  # bumped when who receives automatic subscriptions changes

    def attach(self, broker: BrokerPort) -> None:
        for topic_filter, pk_at, dn_at in auto_subscription_patterns():
            # (seven patterns: 2 MiB of topic names each holds a town's 10,000 devices' topics)
            known: TopicMemo[tuple[int, str | None]] = TopicMemo(65_536, 2 * 1024 * 1024)
            broker.derive(topic_filter, functools.partial(self._owner, pk_at, dn_at, known))

    def changed(self) -> None:
        """Who receives some device's topics changed (a sub-device logged in or out)."""
        self._generation += 1

    def connected(self, client: Client) -> None:
        """A device connected, asking for them (``_ss=1``) or not."""
        asked = AUTO_SUBSCRIBE in client.labels
        if asked != (client.client_id in self._asked):
            self._generation += 1
            if asked:
                self._asked.add(client.client_id)
            else:
                self._asked.discard(client.client_id)

    def _owner(
        self, pk_at: int, dn_at: int, known: TopicMemo[tuple[int, str | None]], topic: str
    ) -> str | None:
        remembered = known.get(topic)
        if remembered is not None and remembered[0] == self._generation:
            return remembered[1]
        levels = topic.split("/", dn_at + 1)  # only as far as the device's levels
        device = (levels[pk_at], levels[dn_at])
        carrier = self._carrier.get(device)
        owner: str | None
        if carrier is not None:
            owner = device_client_id(*carrier)
        else:
            client_id = device_client_id(*device)
            owner = client_id if client_id in self._asked else None
        known.remember(topic, (self._generation, owner))
        return owner
