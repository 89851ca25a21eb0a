"""``sees`` and the feed's filtering, on the registry's real ``TagDirectory``, with principals
built here (users and API keys come from another part): tenants, group limits, each scope,
a subscriber too slow for its queue dropped while the others get everything; the inbox (the
post path only appends) and its deliveries: one frame in order, cut at the frame budget, by
the feed's own task, which a message that cannot be encoded does not stop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hongshan.identity.principals import SYSTEM, Principal, Role
from hongshan.identity.visibility import Visibility
from hongshan.messages import DeviceRef, PropertyValues, StatusChanged
from hongshan.services.live import (
    FRAME_BUDGET,
    LiveFeed,
    LiveRefused,
    Scope,
    Subscriber,
    Topic,
)
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
    """What the feed delivered to the subscriber: the messages of its next frame."""
    feed.deliver()
    frame = await feed.frame(subscriber)
    assert frame is not None
    decoded: dict[str, Any] = json.loads(frame)
    if decoded.get("type") == "batch":
        items: list[dict[str, Any]] = decoded["items"]
        return items
    return [decoded]


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
    assert await feed.frame(slow) is None  # (woken to close its socket, nothing queued)
    assert feed.messages_sent == 10
    feed.leave(slow)
    feed.leave(reading)
    assert feed.clients == 0


async def test_a_burst_larger_than_the_limit_reaches_a_socket_that_reads_it(
    tags: TagDirectory,
) -> None:
    # 1,500 devices' status in one delivery, to sockets of a queue limit of 1,000: the limit
    # counts what is owed from earlier deliveries, not what one delivery brings
    feed = LiveFeed(Products(), tags)
    reading, deaf = feed.join(SYSTEM), feed.join(SYSTEM)
    for subscriber in (reading, deaf):
        feed.subscribe(subscriber, "st", Topic.STATUS, Scope())
    for round_ in range(3):
        for n in range(1500):
            feed.on_uplink(StatusChanged(device=DeviceRef("pk", f"d{n}"), received=n, online=True))
        feed.deliver()
        got: list[int] = []
        while reading.backlog:
            got += [message["ts"] for message in _items(await feed.frame(reading))]
        assert got == list(range(1500)), round_
        assert not reading.dropped
        # the one that never reads: its first burst owed from an earlier delivery (1,500,
        # more than 1,000) when the second comes, so it is dropped then, not before
        assert deaf.dropped is (round_ >= 1)
        assert deaf.backlog == (1500 if round_ == 0 else 0)
    assert feed.dropped == 1 and feed.messages_sent == 4500


async def test_a_socket_is_dropped_once_its_earlier_backlog_passes_the_limit(
    tags: TagDirectory,
) -> None:
    feed = LiveFeed(Products(), tags, queue_limit=10)
    deaf = feed.join(SYSTEM)
    feed.subscribe(deaf, "all", Topic.PROPERTIES, Scope())
    for value in range(11):  # a message a delivery: owed 0, 1, … 10 from earlier ones
        feed.on_uplink(post(NORTH, value))
        feed.deliver()
    assert not deaf.dropped and deaf.backlog == 11
    feed.on_uplink(post(NORTH, 11))  # owed 11 when it comes: more than 10
    feed.deliver()
    assert deaf.dropped and deaf.backlog == 0 and feed.dropped == 1
    assert await feed.frame(deaf) is None


def _items(frame: str | None) -> list[dict[str, Any]]:
    assert frame is not None
    decoded: dict[str, Any] = json.loads(frame)
    items: list[dict[str, Any]] = decoded["items"] if decoded["type"] == "batch" else [decoded]
    return items


async def test_the_post_path_only_appends_and_a_delivery_is_one_frame_in_order(
    tags: TagDirectory,
) -> None:
    feed = LiveFeed(Products(), tags)
    subscriber = feed.join(SYSTEM)
    feed.subscribe(subscriber, "all", Topic.PROPERTIES, Scope())
    for value in range(30):  # two devices, interleaved
        feed.on_uplink(post(NORTH if value % 3 else SOUTH, value))
    feed.reply(subscriber, {"type": "pong", "id": "p"})
    # nothing matched, encoded or queued for the socket yet: it all waits in the inbox
    assert subscriber.backlog == 0 and feed.backlog == 31
    feed.deliver()
    assert subscriber.backlog == 31
    frame = await feed.frame(subscriber)
    assert frame is not None and feed.backlog == 0
    batch = json.loads(frame)
    assert batch["type"] == "batch" and len(batch["items"]) == 31
    # the values in the order they came (each device's too), the pong behind them
    assert [m["values"]["Brightness"] for m in batch["items"][:30]] == list(range(30))
    assert batch["items"][30] == {"type": "pong", "id": "p"}
    assert (feed.messages_sent, feed.frames_sent) == (31, 1)
    # one message alone goes as it is, not as a batch
    feed.on_uplink(post(NORTH, 99))
    feed.deliver()
    alone = json.loads(await feed.frame(subscriber) or "")
    assert alone["sub"] == "all" and alone["values"] == {"Brightness": 99}


async def test_a_batch_is_cut_at_the_frame_budget_and_keeps_its_order(
    tags: TagDirectory,
) -> None:
    feed = LiveFeed(Products(), tags)
    subscriber = feed.join(SYSTEM)
    feed.subscribe(subscriber, "all", Topic.PROPERTIES, Scope())
    big = "x" * (FRAME_BUDGET // 5)
    for value in range(12):
        feed.on_uplink(
            PropertyValues(
                device=DeviceRef(*NORTH), received=1, ts=1, values={"N": value, "Note": big}
            )
        )
    feed.deliver()
    got: list[int] = []
    while subscriber.backlog:
        frame = await feed.frame(subscriber)
        assert frame is not None and len(frame) < FRAME_BUDGET + 1000
        got += [item["values"]["N"] for item in json.loads(frame)["items"]]
    assert got == list(range(12)) and feed.frames_sent == 3


async def test_the_feed_s_task_delivers_and_a_left_subscriber_is_owed_nothing(
    tags: TagDirectory,
) -> None:
    feed = LiveFeed(Products(), tags, batch_interval=0)
    feed.start()
    try:
        subscriber, gone = feed.join(SYSTEM), feed.join(SYSTEM)
        feed.subscribe(subscriber, "st", Topic.STATUS, Scope())
        feed.on_uplink(StatusChanged(device=DeviceRef(*NORTH), received=5, online=True))
        feed.reply(gone, {"type": "pong", "id": "late"})
        feed.leave(gone)  # (its pong still in the inbox: not queued, not a drop)
        frame = await asyncio.wait_for(feed.frame(subscriber), timeout=10)
        assert json.loads(frame or "")["online"] is True
        assert feed.backlog == 0 and feed.dropped == 0 and gone.backlog == 0
    finally:
        await feed.stop()


async def test_a_message_that_cannot_be_encoded_is_skipped_and_the_feed_goes_on(
    tags: TagDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    feed = LiveFeed(Products(), tags, batch_interval=0)
    feed.start()
    try:
        subscriber = feed.join(SYSTEM)
        feed.subscribe(subscriber, "all", Topic.PROPERTIES, Scope())
        broken = PropertyValues(device=DeviceRef(*NORTH), received=1, ts=1, values={"x": object()})
        feed.on_uplink(broken)
        feed.on_uplink(post(SOUTH, 7))
        frame = await asyncio.wait_for(feed.frame(subscriber), timeout=10)
        assert json.loads(frame or "")["values"] == {"Brightness": 7}
        assert "could not be delivered" in caplog.text
    finally:
        await feed.stop()
