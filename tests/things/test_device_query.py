"""Lists of devices from memory (``things.device_query``): each filter and order, the page and
its total; and, on SQLite and PostgreSQL, that what the registry keeps in memory is what it
wrote — a registry reopened from its database lists every device exactly as the one that made
the changes did."""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
import pytest

from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry.store import ALL_DEVICES, SQLRegistry
from hongshan.things import device_query
from hongshan.things.directory import DeviceKey, DeviceRecord, Directory, ProductView
from hongshan.things.model import (
    DataFormat,
    DeviceFilter,
    DeviceState,
    Location,
    NodeType,
    Reach,
)
from hongshan.things.tag_directory import TagDirectory
from registry_databases import RegistryDatabase

KEY = secrets.token_bytes(32)
LAMP, METER = "a1Lamp00001", "a1Meter0001"


def _view(tenant: str) -> ProductView:
    return ProductView(
        node_type=NodeType.DEVICE,
        data_format=DataFormat.ALINK,
        topic_classes=(),
        thing_model=None,
        dynamic_registration=False,
        sealed_secret="",
        tenant=tenant,
    )


class Town:
    """A directory and tags made by hand: lamps of town A, meters of town B."""

    def __init__(self) -> None:
        self.directory = Directory(SecretBox(KEY))
        self.tags = TagDirectory()
        self.directory.put_product(LAMP, _view("a"))
        self.directory.put_product(METER, _view("b"))
        self.next_id = 1

    def add(self, key: DeviceKey, **fields: object) -> DeviceRecord:
        record = DeviceRecord(
            id=self.next_id, sealed="", state=DeviceState.INACTIVE, ever_online=False
        )
        record = msgspec.structs.replace(record, **fields)
        self.next_id += 1
        self.directory.add_device(key, record)
        return record

    def names(self, **where: Any) -> list[str]:
        found, _ = device_query.select(self.directory, self.tags, DeviceFilter(**where))
        return [key[1] for key, _ in found]

    def total(self, **where: Any) -> int:
        return device_query.select(self.directory, self.tags, DeviceFilter(**where))[1]


@pytest.fixture
def town() -> Town:
    town = Town()
    town.add((LAMP, "lamp-b"), nickname="Xinhua Road 北", state=DeviceState.ONLINE,
             last_online_at=3_000)  # fmt: skip
    town.add((LAMP, "lamp-a"), state=DeviceState.OFFLINE, last_online_at=1_000)
    town.add((LAMP, "Lamp_C"), state=DeviceState.ONLINE, last_online_at=3_000)
    town.add((METER, "meter-1"), nickname="in the lamp room")
    town.add((LAMP, "gw-1"), state=DeviceState.DISABLED)
    town.directory.set_gateway([(LAMP, "lamp-a"), (LAMP, "Lamp_C")], (LAMP, "gw-1"))
    town.tags.change_device((LAMP, "lamp-b"), {"district": "east"})
    town.tags.change_device((METER, "meter-1"), {"district": "east", "floor": "2"})
    town.tags.put_group("clinic", "a")
    town.tags.add_members("clinic", [(LAMP, "lamp-a"), (LAMP, "gw-1")], "a")
    return town


def test_everything_in_the_order_of_creation_paged_with_its_total(town: Town) -> None:
    everything = ["lamp-b", "lamp-a", "Lamp_C", "meter-1", "gw-1"]
    assert town.names() == everything
    assert town.names(limit=2, offset=1) == ["lamp-a", "Lamp_C"]
    assert town.total(limit=2, offset=1) == 5
    assert town.names(offset=5) == [] and town.total(offset=5) == 5
    assert town.names(limit=0) == [] and town.total(limit=0) == 5
    assert town.names(order=("createdAt", True)) == everything[::-1]
    assert town.names(order=("createdAt", True), limit=2, offset=1) == ["meter-1", "Lamp_C"]


def test_each_filter_alone_and_together(town: Town) -> None:
    assert town.names(product_key=METER) == ["meter-1"]
    assert town.names(product_key="a1NoSuchPrd") == []
    assert town.names(state=DeviceState.ONLINE) == ["lamp-b", "Lamp_C"]
    # a prefix is the name's start, case-sensitive, and "_" or "%" are themselves
    assert town.names(name_prefix="lamp") == ["lamp-b", "lamp-a"]
    assert town.names(name_prefix="Lamp_") == ["Lamp_C"]
    assert town.names(name_prefix="lamp%") == []
    # text: in the name or the nickname, whatever the case
    assert town.names(text="LAMP") == ["lamp-b", "lamp-a", "Lamp_C", "meter-1"]
    assert town.names(text="北") == ["lamp-b"]
    assert town.names(text="xinhua") == ["lamp-b"]
    assert town.names(group="clinic") == ["lamp-a", "gw-1"]
    assert town.names(group="nowhere") == []
    assert town.names(tags={"district": "east"}) == ["lamp-b", "meter-1"]
    assert town.names(tags={"district": "east", "floor": "2"}) == ["meter-1"]
    assert town.names(tags={"district": "west"}) == []
    assert town.names(gateway=(LAMP, "gw-1")) == ["lamp-a", "Lamp_C"]
    assert town.names(gateway=(LAMP, "lamp-a")) == []
    both = {"product_key": LAMP, "state": DeviceState.ONLINE, "text": "xin"}
    assert town.names(**both) == ["lamp-b"] and town.total(**both) == 1
    # a filter that leaves nothing leaves nothing for the next (not everything)
    assert town.names(state=DeviceState.INACTIVE, name_prefix="lamp") == []


def test_a_reach_narrows_whatever_is_asked(town: Town) -> None:
    a, b = Reach(tenant="a"), Reach(tenant="b")
    assert town.names(reach=a) == ["lamp-b", "lamp-a", "Lamp_C", "gw-1"]
    assert town.names(reach=b) == ["meter-1"]
    assert (
        town.names(reach=b, product_key=LAMP) == [] and town.total(reach=b, product_key=LAMP) == 0
    )
    assert town.names(reach=b, text="lamp") == ["meter-1"]
    assert town.names(reach=Reach(tenant="c")) == []
    clinic = Reach(tenant="a", groups=frozenset({"clinic"}))
    assert town.names(reach=clinic) == ["lamp-a", "gw-1"]
    assert town.names(reach=Reach(tenant="a", groups=frozenset())) == []


def test_each_order_ascending_and_descending_equals_in_order_of_creation(town: Town) -> None:
    assert town.names(order=("deviceName", False)) == [
        "Lamp_C",
        "gw-1",
        "lamp-a",
        "lamp-b",
        "meter-1",
    ]  # fmt: skip  (by code point: capitals first)
    assert town.names(order=("deviceName", True)) == [
        "meter-1", "lamp-b", "lamp-a", "gw-1", "Lamp_C"
    ]  # fmt: skip
    assert town.names(order=("productKey", False)) == [
        "lamp-b", "lamp-a", "Lamp_C", "gw-1", "meter-1"
    ]  # fmt: skip
    assert town.names(order=("productKey", True)) == [
        "meter-1", "lamp-b", "lamp-a", "Lamp_C", "gw-1"
    ]  # fmt: skip
    # never online: first ascending, last descending; the two at 3,000 as created
    assert town.names(order=("lastOnlineAt", False)) == [
        "meter-1", "gw-1", "lamp-a", "lamp-b", "Lamp_C"
    ]  # fmt: skip
    assert town.names(order=("lastOnlineAt", True)) == [
        "lamp-b", "Lamp_C", "lamp-a", "meter-1", "gw-1"
    ]  # fmt: skip
    assert town.names(order=("state", False)) == [
        "gw-1", "meter-1", "lamp-a", "lamp-b", "Lamp_C"
    ]  # fmt: skip
    assert town.names(order=("state", False), limit=2, offset=2) == ["lamp-a", "lamp-b"]


def test_devices_added_out_of_the_order_of_their_ids_still_list_by_creation() -> None:
    town = Town()
    town.next_id = 10
    town.add((LAMP, "ten"))
    town.next_id = 2
    town.add((LAMP, "two"))
    assert town.names() == ["two", "ten"]
    assert town.names(order=("createdAt", True)) == ["ten", "two"]
    assert town.names(limit=1) == ["two"]


async def test_what_is_kept_in_memory_is_what_was_written(
    registry_db: RegistryDatabase,
) -> None:
    """Every change the registry makes to a device, then the registry reopened from its
    database: each device listed (and got) as the first one had it in memory."""
    registry = await SQLRegistry.open(registry_db.url, SecretBox(KEY), schema=registry_db.schema)
    try:
        gateway = await registry.create_product("Gateway", node_type=NodeType.GATEWAY)
        lamps = await registry.create_product("Lamp", node_type=NodeType.SUBDEVICE)
        gw, pk = gateway.product_key, lamps.product_key
        east = Location(lat=31.5, lon=120.3, district="east")
        await registry.create_device(gw, "gw-1", nickname="东门网关", location=east)
        await registry.create_device(
            pk, "lamp-0", tags={"pole": "7"}, gateway=(gw, "gw-1"), nickname="zero"
        )
        await registry.create_devices(pk, [f"lamp-{i}" for i in range(1, 6)])
        registry.device_connected(gw, "gw-1", "10.0.0.7:51000")
        registry.device_connected(pk, "lamp-1", "[::1]:40000")
        registry.device_disconnected(pk, "lamp-1")
        registry.device_connected(pk, "lamp-2", "10.0.0.9:1")
        await registry.update_device(pk, "lamp-3", nickname="three", tags={"a": "1"},
                                     firmware={"default": "1.2.0", "mcu": "0.9"})  # fmt: skip
        await registry.update_device(pk, "lamp-3", remove_tags=["a"], firmware={"mcu": "1.0"})
        await registry.update_device(pk, "lamp-4", location=Location(lat=1, lon=2))
        assert await registry.bind_gateway((gw, "gw-1"), [(pk, "lamp-1"), (pk, "lamp-2")]) == []
        assert await registry.unbind_gateway((pk, "lamp-2")) == (gw, "gw-1")
        await registry.create_device(gw, "gw-2")
        await registry.bind_gateway((gw, "gw-2"), [(pk, "lamp-5")])
        await registry.delete_device(gw, "gw-2")  # lamp-5 loses its gateway
        await registry.set_enabled(pk, "lamp-4", False)
        await registry.delete_device(pk, "lamp-0")
        before, total = registry.device_page(ALL_DEVICES)
        got = {(d.product_key, d.device_name): d for d in before}
        assert got[(pk, "lamp-1")].gateway == (gw, "gw-1")
        assert got[(pk, "lamp-1")].last_ip == "[::1]" and got[(pk, "lamp-1")].state == "offline"
        assert got[(pk, "lamp-2")].gateway is None and got[(pk, "lamp-5")].gateway is None
        assert got[(pk, "lamp-3")].firmware == {"default": "1.2.0", "mcu": "1.0"}
        assert got[(pk, "lamp-3")].tags == {} and got[(gw, "gw-1")].nickname == "东门网关"
        assert got[(gw, "gw-1")].first_online_at == got[(gw, "gw-1")].last_online_at
    finally:
        await registry.close()
    again = await SQLRegistry.open(registry_db.url, SecretBox(KEY), schema=registry_db.schema)
    try:
        assert again.device_page(ALL_DEVICES) == (before, total)
        assert again.directory.in_id_order
        for device in before:
            assert await again.get_device(device.product_key, device.device_name) == device
    finally:
        await again.close()


def test_an_offset_or_limit_beyond_any_index_is_an_empty_page(town: Town) -> None:
    huge = 2**63 - 1
    assert town.names(offset=huge) == [] and town.total(offset=huge) == 5
    assert town.names(limit=huge) == town.names()
    assert town.names(offset=huge, state=DeviceState.ONLINE) == []
