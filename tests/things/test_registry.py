"""The registry on SQLite and PostgreSQL: products, devices, lifecycle, groups, tags, presence,
and secrets sealed at rest."""

from __future__ import annotations

import secrets
from pathlib import Path

import msgspec
import pytest
import sqlalchemy as sa

from hongshan.identity.secret_box import SecretBox, SecretUnreadable
from hongshan.store.registry import schema
from hongshan.store.registry.engine import create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import (
    DeviceFilter,
    DevicePlace,
    DeviceState,
    Location,
    NodeType,
    RegistryError,
    TopicClass,
)
from hongshan.things.naming import InvalidName
from hongshan.things.tsl import ThingModel
from hongshan.twin.desired import DesiredValue
from hongshan.twin.shadow import Shadow
from registry_databases import KEY, RegistryDatabase

DATA = Path(__file__).parent / "data"


async def reopen(registry: SQLRegistry, db: RegistryDatabase, key: bytes = KEY) -> SQLRegistry:
    await registry.close()
    return await db.open(key)


async def test_the_migrated_schema_matches_the_tables_the_code_queries(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        inspector = sa.inspect(engine)
        for table in schema.metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name for c in table.columns}, table.name
    finally:
        engine.dispose()


async def test_a_product_keeps_its_thing_model_and_topic_classes(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    tsl = ThingModel.from_json((DATA / "streetlight.json").read_bytes())
    classes = (TopicClass("/${productKey}/${deviceName}/user/get", "sub"),)
    product = await registry.create_product(
        "Streetlight", node_type=NodeType.DEVICE, topic_classes=classes, thing_model=tsl
    )
    assert product.product_key.startswith("a1") and len(product.product_key) == 11
    assert product.product_secret is not None and len(product.product_secret) == 16
    registry = await reopen(registry, registry_db)
    try:
        again = await registry.get_product(product.product_key, with_secret=True)
        assert again.product_secret == product.product_secret
        assert again.topic_classes == classes
        assert (await registry.thing_model(product.product_key)) == tsl
        view = registry.product_view(product.product_key)
        assert view is not None and view.thing_model == tsl
        assert [p.product_key for p in await registry.list_products()] == [product.product_key]
        without = await registry.get_product(product.product_key)
        assert without.product_secret is None
    finally:
        await registry.close()


async def test_an_imported_product_keeps_its_key_and_a_second_one_conflicts(
    registry: SQLRegistry,
) -> None:
    await registry.create_product("Meter", product_key="a1AbCdEfGhI", product_secret="s" * 16)
    with pytest.raises(RegistryError) as caught:
        await registry.create_product("Meter again", product_key="a1AbCdEfGhI")
    assert caught.value.kind == "conflict"


async def test_device_secrets_are_sealed_in_the_database_and_open_with_the_key(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    product = await registry.create_product("Lamp")
    device = await registry.create_device(product.product_key, "lamp-0001")
    assert device.device_secret is not None and len(device.device_secret) == 32
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        with engine.connect() as db:
            stored = db.execute(sa.select(schema.devices.c.device_secret)).scalar_one()
            sealed_product = db.execute(sa.select(schema.products.c.product_secret)).scalar_one()
    finally:
        engine.dispose()
    assert device.device_secret not in stored and stored.startswith("v1:")
    assert product.product_secret is not None and product.product_secret not in sealed_product
    credentials = await registry.credentials(product.product_key, "lamp-0001")
    assert credentials is not None and credentials.device_secret == device.device_secret
    # a sealed secret does not open for another device: rows cannot be swapped
    box = SecretBox(KEY)
    with pytest.raises(SecretUnreadable):
        box.open(stored, f"device/{product.product_key}/lamp-0002")
    # nor with another key: the registry says so when it opens, not at the first CONNECT
    await registry.close()
    with pytest.raises(SecretUnreadable, match=r"secret\.key"):
        await registry_db.open(secrets.token_bytes(32))


async def test_device_names_follow_alibabas_rules_and_are_unique_per_product(
    registry: SQLRegistry,
) -> None:
    product = await registry.create_product("Lamp")
    pk = product.product_key
    generated = await registry.create_device(pk)
    assert len(generated.device_name) == 20
    await registry.create_device(pk, "lamp_01@east.3")
    with pytest.raises(RegistryError) as caught:
        await registry.create_device(pk, "lamp_01@east.3")
    assert caught.value.kind == "conflict"
    with pytest.raises(InvalidName):
        await registry.create_device(pk, "no spaces allowed")
    with pytest.raises(InvalidName):
        await registry.create_device(pk, "abc")
    with pytest.raises(RegistryError) as missing:
        await registry.create_device("a1NoSuchPrd", "lamp-0001")
    assert missing.value.kind == "not_found"


async def test_the_lifecycle_inactive_online_offline_disabled(registry: SQLRegistry) -> None:
    pk = (await registry.create_product("Lamp")).product_key
    await registry.create_device(pk, "lamp-0001")
    seen_disabled: list[tuple[str, str]] = []
    registry.on_device_disabled.append(lambda p, d: seen_disabled.append((p, d)))

    async def state() -> DeviceState:
        return (await registry.get_device(pk, "lamp-0001")).state

    assert await state() is DeviceState.INACTIVE
    registry.device_connected(pk, "lamp-0001", "10.0.0.7:50312")
    device = await registry.get_device(pk, "lamp-0001")
    assert device.state is DeviceState.ONLINE and device.last_ip == "10.0.0.7"
    assert device.first_online_at is not None and device.first_online_at == device.last_online_at
    registry.device_disconnected(pk, "lamp-0001")
    assert await state() is DeviceState.OFFLINE
    assert (await registry.get_device(pk, "lamp-0001")).last_ip == "10.0.0.7"
    await registry.set_enabled(pk, "lamp-0001", False)
    assert await state() is DeviceState.DISABLED
    assert seen_disabled == [(pk, "lamp-0001")]
    credentials = await registry.credentials(pk, "lamp-0001")
    assert credentials is not None and not credentials.enabled
    await registry.set_enabled(pk, "lamp-0001", True)
    assert await state() is DeviceState.OFFLINE  # it was online once
    await registry.create_device(pk, "lamp-0002")
    await registry.set_enabled(pk, "lamp-0002", False)
    await registry.set_enabled(pk, "lamp-0002", True)
    assert (await registry.get_device(pk, "lamp-0002")).state is DeviceState.INACTIVE


async def test_presence_is_batched_and_survives_a_reopen(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = (await registry.create_product("Meter")).product_key
    names = [f"meter-{i:04d}" for i in range(50)]
    for name in names:
        await registry.create_device(pk, name)
    for name in names:
        registry.device_connected(pk, name, "192.168.1.9:1000")
    registry.device_disconnected(pk, names[0])
    registry = await reopen(registry, registry_db)
    try:
        online = await registry.count_devices(DeviceFilter(state=DeviceState.ONLINE))
        assert online == 49
        assert (await registry.get_device(pk, names[0])).state is DeviceState.OFFLINE
    finally:
        await registry.close()


async def test_tags_location_firmware_and_filters(registry: SQLRegistry) -> None:
    lamp = (await registry.create_product("Lamp")).product_key
    meter = (await registry.create_product("Meter")).product_key
    await registry.create_device(
        lamp,
        "lamp-east-1",
        tags={"street": "Xinhua Road", "district": "east"},
        location=Location(lat=31.49, lon=120.31, district="east"),
    )
    await registry.create_device(lamp, "lamp-west-1", tags={"district": "west"})
    await registry.create_device(meter, "meter-east-1", tags={"district": "east"})
    east = await registry.list_devices(DeviceFilter(tags={"district": "east"}))
    assert {d.device_name for d in east} == {"lamp-east-1", "meter-east-1"}
    lamps_east = await registry.list_devices(
        DeviceFilter(product_key=lamp, tags={"district": "east"})
    )
    assert [d.device_name for d in lamps_east] == ["lamp-east-1"]
    assert lamps_east[0].location == Location(lat=31.49, lon=120.31, district="east")
    assert lamps_east[0].tags == {"street": "Xinhua Road", "district": "east"}
    updated = await registry.update_device(
        lamp,
        "lamp-east-1",
        tags={"district": "north"},
        remove_tags=["street"],
        firmware={"default": "1.0.3", "mcu": "2.1"},
        nickname="东区路灯_1",
    )
    assert updated.tags == {"district": "north"}
    assert updated.firmware == {"default": "1.0.3", "mcu": "2.1"}
    assert updated.nickname == "东区路灯_1"
    by_prefix = await registry.list_devices(DeviceFilter(name_prefix="lamp-"))
    assert [d.device_name for d in by_prefix] == ["lamp-east-1", "lamp-west-1"]
    # LIKE's wildcards in a prefix are literal
    assert await registry.list_devices(DeviceFilter(name_prefix="lamp_")) == []
    page = await registry.list_devices(DeviceFilter(limit=2, offset=1))
    assert [d.device_name for d in page] == ["lamp-west-1", "meter-east-1"]
    # places: from memory for a product or a prefix, by a query for tags, the same answers
    await registry.update_device(lamp, "lamp-west-1", location=Location(lat=31.5, lon=120.2))
    places = await registry.device_places(DeviceFilter(product_key=lamp))
    assert places == [
        DevicePlace(lamp, "lamp-east-1", 31.49, 120.31, "east"),
        DevicePlace(lamp, "lamp-west-1", 31.5, 120.2, ""),
    ]
    tagged = await registry.device_places(DeviceFilter(product_key=lamp, tags={"district": "west"}))
    assert tagged == places[1:]
    assert [p.device_name for p in await registry.device_places()] == [
        "lamp-east-1",
        "lamp-west-1",
        "meter-east-1",
    ]
    assert await registry.device_places(DeviceFilter(name_prefix="meter-")) == [
        DevicePlace(meter, "meter-east-1", None, None, "")
    ]


async def test_groups_and_gateways(registry: SQLRegistry) -> None:
    gw = (await registry.create_product("Gateway", node_type=NodeType.GATEWAY)).product_key
    sub = (await registry.create_product("Sensor", node_type=NodeType.SUBDEVICE)).product_key
    await registry.create_device(gw, "gateway-01")
    await registry.create_device(sub, "sensor-01", gateway=(gw, "gateway-01"))
    await registry.create_device(sub, "sensor-02")
    await registry.create_device(gw, "gateway-02")
    assert await registry.bind_gateway((gw, "gateway-01"), [(sub, "sensor-02")]) == []
    children = await registry.list_devices(DeviceFilter(gateway=(gw, "gateway-01")))
    assert [d.device_name for d in children] == ["sensor-01", "sensor-02"]
    assert children[0].gateway == (gw, "gateway-01")
    # a gateway's topology delete takes out only its own sub-devices
    assert await registry.unbind_gateway((sub, "sensor-02"), (gw, "gateway-02")) is None
    assert (await registry.get_device(sub, "sensor-02")).gateway == (gw, "gateway-01")
    assert await registry.unbind_gateway((sub, "sensor-02"), (gw, "gateway-01")) == (
        gw,
        "gateway-01",
    )
    assert (await registry.get_device(sub, "sensor-02")).gateway is None
    assert await registry.unbind_gateway((sub, "sensor-02")) is None  # none to take it from

    group = await registry.groups.create("Xinhua Road", "lamps on Xinhua Road")
    assert group.size == 0
    group = await registry.groups.add("Xinhua Road", [(sub, "sensor-01"), (sub, "sensor-02")])
    assert group.size == 2
    in_group = await registry.list_devices(DeviceFilter(group="Xinhua Road"))
    assert {d.device_name for d in in_group} == {"sensor-01", "sensor-02"}
    group = await registry.groups.remove("Xinhua Road", [(sub, "sensor-01")])
    assert group.size == 1
    with pytest.raises(RegistryError):
        await registry.groups.create("Xinhua Road")
    # deleting a device takes it out of its groups; deleting the gateway frees its children
    await registry.delete_device(sub, "sensor-02")
    assert (await registry.groups.get("Xinhua Road")).size == 0
    await registry.delete_device(gw, "gateway-01")
    assert (await registry.get_device(sub, "sensor-01")).gateway is None
    await registry.groups.delete("Xinhua Road")
    assert await registry.groups.list_groups() == []


async def test_a_product_with_devices_cannot_be_deleted(registry: SQLRegistry) -> None:
    pk = (await registry.create_product("Lamp")).product_key
    await registry.create_device(pk, "lamp-0001")
    with pytest.raises(RegistryError) as caught:
        await registry.delete_product(pk)
    assert caught.value.kind == "conflict"
    await registry.delete_device(pk, "lamp-0001")
    assert await registry.credentials(pk, "lamp-0001") is None
    await registry.delete_product(pk)
    assert registry.product_view(pk) is None
    with pytest.raises(RegistryError):
        await registry.get_product(pk)


async def test_shadows_are_saved_and_loaded(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = (await registry.create_product("Lamp")).product_key
    await registry.create_device(pk, "lamp-0001")
    shadow = Shadow(reported={"a": 1}, reported_times={"a": 5}, version=3)
    registry.shadows.save(pk, "lamp-0001", shadow)
    registry.shadows.save(pk, "lamp-0001", msgspec.structs.replace(shadow, version=4))
    registry = await reopen(registry, registry_db)
    try:
        loaded = await registry.shadows.load()
        assert loaded == {(pk, "lamp-0001"): msgspec.structs.replace(shadow, version=4)}
        await registry.delete_device(pk, "lamp-0001")
        assert await registry.shadows.load() == {}
    finally:
        await registry.close()


async def test_many_devices_in_one_batch(registry: SQLRegistry) -> None:
    pk = (await registry.create_product("Meter")).product_key
    names = [f"meter-{i:05d}" for i in range(1200)]
    secrets_by_name = await registry.create_devices(pk, names, secrets={"meter-00007": "s" * 32})
    assert set(secrets_by_name) == set(names) and secrets_by_name["meter-00007"] == "s" * 32
    credentials = await registry.credentials(pk, "meter-01199")
    assert credentials is not None
    assert credentials.device_secret == secrets_by_name["meter-01199"]
    assert await registry.count_devices(DeviceFilter(product_key=pk)) == 1200
    with pytest.raises(RegistryError) as caught:
        await registry.create_devices(pk, ["meter-99999", "meter-00001"])
    assert caught.value.kind == "conflict"
    assert await registry.credentials(pk, "meter-99999") is None  # all or none


async def test_a_device_online_for_less_than_a_batch_still_counts_as_activated(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = (await registry.create_product("Meter")).product_key
    await registry.create_device(pk, "meter-0001")
    registry.device_connected(pk, "meter-0001", "10.1.1.1:4000")
    registry.device_disconnected(pk, "meter-0001")  # within the same batch
    registry = await reopen(registry, registry_db)
    try:
        assert registry.activated(pk, "meter-0001") is True
        device = await registry.get_device(pk, "meter-0001")
        assert device.state is DeviceState.OFFLINE and device.last_ip == "10.1.1.1"
        assert device.first_online_at is not None
    finally:
        await registry.close()


async def test_latest_values_and_desired_values_are_saved_and_loaded(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = (await registry.create_product("Lamp")).product_key
    await registry.create_device(pk, "lamp-0001")
    await registry.create_device(pk, "lamp-0002")
    registry.properties.save({(pk, "lamp-0001"): {"Brightness": (40, 1000), "Geo": ({"x": 1}, 5)}})
    registry.properties.save({(pk, "lamp-0001"): {"Brightness": (50, 2000)}})  # an upsert
    registry.properties.save({(pk, "lamp-0002"): {"Brightness": (7, 3000)}})
    desired = {"Brightness": DesiredValue(25, 2, 1234)}
    registry.desired.save(pk, "lamp-0002", desired)
    registry = await reopen(registry, registry_db)
    try:
        assert await registry.properties.load() == {
            (pk, "lamp-0001"): {"Brightness": (50, 2000), "Geo": ({"x": 1}, 5)},
            (pk, "lamp-0002"): {"Brightness": (7, 3000)},
        }
        assert await registry.desired.load() == {(pk, "lamp-0002"): desired}
        await registry.delete_device(pk, "lamp-0002")
        assert (pk, "lamp-0002") not in await registry.properties.load()
        assert await registry.desired.load() == {}
    finally:
        await registry.close()
