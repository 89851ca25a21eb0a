"""``sees`` and the feed's filtering, on the registry's real ``TagDirectory``, with principals
built here (users and API keys come from another part): tenants, group limits, each scope,
and a subscriber too slow for its queue dropped while the others get everything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hongshan.identity.principals import SYSTEM, Principal, Role
from hongshan.identity.visibility import Visibility
from hongshan.messages import DeviceRef, PropertyValues, StatusChanged
from hongshan.services.live import LiveFeed, LiveRefused, Scope, Subscriber, Topic
from hongshan.things.tag_directory import TagDirectory

NORTH, SOUTH = ("pk", "north-1"), ("pk", "south-1")


class Products:
    def device_known(self, product_key: str, device_name: str) -> bool:
        return (product_key, device_name) in (NORTH, SOUTH, ("pk", "loner"))

    def product_view(self, product_key: str) -> object | None:
        return object() if product_key == "pk" else None

    def tenant_of(self, product_key: str) -> str | None:
        return "default" if product_key == "pk" else None


def viewer(groups: frozenset[str] | None, tenant: str | None = "default") -> Principal:
    return Principal(kind="user", name="ana", role=Role.VIEWER, tenant=tenant, groups=groups)


@pytest.fixture
def tags() -> TagDirectory:
    directory = TagDirectory()
    for name, member in (("north", NORTH), ("south", SOUTH)):
        directory.put_group(name)
        directory.add_members(name, [member])
    return directory


@pytest.mark.parametrize(
    ("principal", "device", "seen"),
    [
        (SYSTEM, NORTH, True),
        (viewer(None), SOUTH, True),
        (viewer(None, tenant="elsewhere"), NORTH, False),
        (viewer(frozenset({"north"})), NORTH, True),
        (viewer(frozenset({"north"})), SOUTH, False),
        (viewer(frozenset({"north"})), ("pk", "loner"), False),  # in no group
        (viewer(frozenset()), NORTH, False),  # an empty limit sees nothing
        (viewer(frozenset({"gone"})), NORTH, False),  # a deleted group: closed
    ],
)
def test_sees(
    tags: TagDirectory, principal: Principal, device: tuple[str, str], seen: bool
) -> None:
    assert Visibility(tags, Products().tenant_of).sees(principal, *device) is seen


def post(device: tuple[str, str], value: int) -> PropertyValues:
    return PropertyValues(
        device=DeviceRef(*device), received=1, ts=1000 + value, values={"Brightness": value}
    )


async def frames(feed: LiveFeed, subscriber: Subscriber) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in await feed.frames(subscriber)]


async def test_a_group_limited_principal_hears_only_its_groups_devices(
    tags: TagDirectory,
) -> None:
    feed = LiveFeed(Products(), tags)
    limited = feed.join(viewer(frozenset({"north"})))
    feed.subscribe(limited, "all", Topic.PROPERTIES, Scope())
    feed.subscribe(limited, "pk", Topic.PROPERTIES, Scope(product="pk"))
    feed.on_uplink(post(SOUTH, 1))
    feed.on_uplink(post(NORTH, 2))
    got = await frames(feed, limited)
    assert [(f["sub"], f["device"], f["values"]) for f in got] == [
        ("all", "pk/north-1", {"Brightness": 2}),
        ("pk", "pk/north-1", {"Brightness": 2}),
    ]
    # subscribing to what it may not see: the same refusal whether it exists or not
    for scope, word in (
        (Scope(device=DeviceRef(*SOUTH)), "pk/south-1"),
        (Scope(group="south"), "south"),
        (Scope(group="nowhere"), "nowhere"),
    ):
        with pytest.raises(LiveRefused, match=f"no .*{word}.* that you may see"):
            feed.subscribe(limited, "x", Topic.PROPERTIES, scope)
    # a device that joins its group is heard from then on
    tags.add_members("north", [SOUTH])
    feed.on_uplink(post(SOUTH, 3))
    assert [f["device"] for f in await frames(feed, limited)] == ["pk/south-1", "pk/south-1"]
    elsewhere = feed.join(viewer(None, tenant="elsewhere"))
    with pytest.raises(LiveRefused, match="no product 'pk'"):
        feed.subscribe(elsewhere, "x", Topic.STATUS, Scope(product="pk"))


async def test_each_scope_hears_its_own_and_topics_stay_apart(tags: TagDirectory) -> None:
    feed = LiveFeed(Products(), tags)
    subscriber = feed.join(SYSTEM)
    feed.subscribe(subscriber, "d", Topic.PROPERTIES, Scope(device=DeviceRef(*NORTH)))
    feed.subscribe(subscriber, "g", Topic.PROPERTIES, Scope(group="south"))
    feed.subscribe(subscriber, "s", Topic.STATUS, Scope())
    feed.on_uplink(post(NORTH, 1))
    feed.on_uplink(post(SOUTH, 2))
    feed.on_uplink(StatusChanged(device=DeviceRef(*SOUTH), received=5, online=True))
    got = await frames(feed, subscriber)
    assert [(f["sub"], f["type"], f["device"]) for f in got] == [
        ("d", "properties", "pk/north-1"),
        ("g", "properties", "pk/south-1"),
        ("s", "status", "pk/south-1"),
    ]
    assert got[2] == {
        "sub": "s",
        "device": "pk/south-1",
        "type": "status",
        "ts": 5,
        "online": True,
        "reason": "",
    }
    feed.unsubscribe(subscriber, "d")
    feed.leave(subscriber)
    assert feed.clients == 0
    feed.on_uplink(post(NORTH, 3))  # nobody left: nothing is encoded, nothing fails


async def test_a_subscriber_too_slow_for_its_queue_is_dropped_and_others_get_all(
    tags: TagDirectory,
) -> None:
    feed = LiveFeed(Products(), tags, queue_limit=3)
    slow, reading = feed.join(SYSTEM), feed.join(SYSTEM)
    for subscriber in (slow, reading):
        feed.subscribe(subscriber, "all", Topic.PROPERTIES, Scope())
    received: list[int] = []
    for value in range(10):
        feed.on_uplink(post(NORTH, value))
        received += [f["values"]["Brightness"] for f in await frames(feed, reading)]
    assert received == list(range(10))
    assert slow.dropped and feed.dropped == 1 and not slow.subscriptions
    assert await feed.frames(slow) == []  # (woken to close its socket, nothing queued)
    assert feed.messages_sent == 10
    feed.leave(slow)
    feed.leave(reading)
    assert feed.clients == 0
