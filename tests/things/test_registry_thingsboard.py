"""The registry's ThingsBoard groundwork on SQLite and PostgreSQL: products that speak a protocol
and may be schemaless, a thingsboard product's devices' access tokens and basic MQTT
credentials (sealed at rest, found in memory), the thing model grown from first-seen values,
and revision 0005 on a database made before it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry import schema
from hongshan.store.registry.engine import MIGRATIONS, create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import MqttBasic, Protocol, RegistryError
from hongshan.things.naming import InvalidName
from hongshan.things.tsl import BoolType, NumberType, TextType
from registry_databases import KEY, RegistryDatabase

BASIC = MqttBasic(client_id="lamp-7", username="east-lamps", password="s3cret!")


async def reopen(registry: SQLRegistry, db: RegistryDatabase) -> SQLRegistry:
    await registry.close()
    return await db.open()


async def thingsboard_product(registry: SQLRegistry, **options: bool) -> str:
    product = await registry.create_product("Air station", protocol=Protocol.THINGSBOARD, **options)
    return product.product_key


def everything_stored(db: RegistryDatabase) -> str:
    """Every row of every table, as text (what a dump of the database would give away)."""
    engine = create_engine(db.url, schema=db.schema)
    try:
        with engine.connect() as conn:
            return repr(
                [list(conn.execute(sa.select(table))) for table in schema.metadata.sorted_tables]
            )
    finally:
        engine.dispose()


def in_files(directory: Path, pattern: str, text: str) -> bool:
    files = list(directory.glob(pattern))
    assert files, pattern
    return any(text.encode() in path.read_bytes() for path in files)


async def test_a_product_keeps_its_protocol_and_schemaless_flag(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    alink = await registry.create_product("Streetlight")
    tb = await registry.create_product(
        "Air station", protocol=Protocol.THINGSBOARD, schemaless=True
    )
    assert (alink.protocol, alink.schemaless) == (Protocol.ALINK, False)
    assert (tb.protocol, tb.schemaless) == (Protocol.THINGSBOARD, True)
    registry = await reopen(registry, registry_db)
    try:
        shown = await registry.get_product(tb.product_key)
        assert (shown.protocol, shown.schemaless) == (Protocol.THINGSBOARD, True)
        view = registry.product_view(tb.product_key)
        assert view is not None and (view.protocol, view.schemaless) == ("thingsboard", True)
        listed = {p.product_key: p.protocol for p in await registry.list_products()}
        assert listed == {alink.product_key: "alink", tb.product_key: "thingsboard"}
        changed = await registry.update_product(tb.product_key, schemaless=False)
        assert changed.schemaless is False
        view = registry.product_view(tb.product_key)
        assert view is not None and not view.schemaless
    finally:
        await registry.close()


async def test_a_device_gets_a_token_sealed_at_rest_and_found_by_it(
    registry: SQLRegistry, registry_db: RegistryDatabase, tmp_path: Path
) -> None:
    pk = await thingsboard_product(registry)
    first = await registry.create_device(pk, "station-01")
    second = await registry.create_device(pk, "station-02")
    token = first.access_token
    assert token is not None and len(token) == 20 and token.isalnum()
    assert second.access_token not in (None, token)
    assert first.device_secret is not None  # (every device has one)
    assert registry.device_by_token(token) == (pk, "station-01")
    assert registry.device_by_token(token.lower() + "x") is None
    shown = await registry.get_device(pk, "station-01", with_secret=True)
    assert shown.access_token == token and shown.mqtt_basic is None
    assert (await registry.get_device(pk, "station-01")).access_token is None

    stored = everything_stored(registry_db)
    assert token not in stored and (second.access_token or "") not in stored
    if registry_db.schema is None:  # SQLite: not in its files either (WAL included)
        assert not in_files(tmp_path, "registry.db*", token)

    registry = await reopen(registry, registry_db)
    try:
        assert registry.device_by_token(token) == (pk, "station-01")
        await registry.delete_device(pk, "station-01")
        assert registry.device_by_token(token) is None
        assert registry.device_by_token(second.access_token or "") == (pk, "station-02")
    finally:
        await registry.close()


async def test_a_given_token_is_kept_checked_and_unique(registry: SQLRegistry) -> None:
    pk = await thingsboard_product(registry)
    kept = await registry.create_device(pk, "station-01", access_token="A1_moved-from.TB~")
    assert kept.access_token == "A1_moved-from.TB~"
    with pytest.raises(RegistryError) as taken:
        await registry.create_device(pk, "station-02", access_token="A1_moved-from.TB~")
    assert taken.value.kind == "conflict"
    assert not registry.device_known(pk, "station-02")  # nothing of it was made
    with pytest.raises(InvalidName):
        await registry.create_device(pk, "station-03", access_token="no spaces/slashes")
    alink = (await registry.create_product("Streetlight")).product_key
    lamp = await registry.create_device(alink, "lamp-0001")
    assert lamp.access_token is None
    with pytest.raises(RegistryError) as wrong:
        await registry.create_device(alink, "lamp-0002", access_token="A1b2C3d4E5f6G7h8I9j0")
    assert wrong.value.kind == "invalid"
    with pytest.raises(RegistryError):
        await registry.set_credentials(alink, "lamp-0001", new_access_token=True)


async def test_basic_credentials_replace_the_token_and_are_found_as_thingsboard_finds_them(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = await thingsboard_product(registry)
    token = (await registry.create_device(pk, "station-01")).access_token
    cut_off: list[tuple[str, str]] = []
    registry.on_device_disabled.append(lambda p, d: cut_off.append((p, d)))
    device = await registry.set_credentials(pk, "station-01", mqtt_basic=BASIC)
    assert device.mqtt_basic == BASIC and device.access_token is None
    assert cut_off == [(pk, "station-01")]  # its connection, made with the token, is cut
    assert token is not None and registry.device_by_token(token) is None
    assert "s3cret!" not in everything_stored(registry_db)

    # a username only, a client id only, and one with no password, on other devices
    await registry.create_device(pk, "station-02")
    await registry.set_credentials(
        pk, "station-02", mqtt_basic=MqttBasic(username="east-lamps", password="other")
    )
    await registry.create_device(pk, "station-03")
    await registry.set_credentials(pk, "station-03", mqtt_basic=MqttBasic(client_id="solo"))
    registry = await reopen(registry, registry_db)
    try:
        by = registry.device_by_basic
        assert by("lamp-7", "east-lamps", "s3cret!") == (pk, "station-01")
        assert by("lamp-7", "east-lamps", b"s3cret!") == (pk, "station-01")  # (MQTT's bytes)
        assert by("lamp-7", "east-lamps", "wrong") is None  # the pair matched: no fallback
        assert by("another", "east-lamps", "other") == (pk, "station-02")  # username alone
        assert by("another", "east-lamps", "s3cret!") is None
        assert by("solo", None, None) == (pk, "station-03")  # client id alone, any password
        assert by("solo", "nobody", "anything") == (pk, "station-03")
        assert by("", "", "") is None and by("lamp-7", None, None) is None
        shown = await registry.get_device(pk, "station-01", with_secret=True)
        assert shown.mqtt_basic == BASIC
        with pytest.raises(RegistryError) as taken:
            await registry.set_credentials(
                pk, "station-03", mqtt_basic=MqttBasic(username="east-lamps")
            )
        assert taken.value.kind == "conflict"
        with pytest.raises(InvalidName):
            await registry.set_credentials(pk, "station-03", mqtt_basic=MqttBasic(password="x"))
        with pytest.raises(RegistryError):  # one login at a time
            await registry.set_credentials(
                pk, "station-03", access_token="abc", mqtt_basic=MqttBasic(client_id="solo")
            )
        fresh = await registry.set_credentials(pk, "station-01", new_access_token=True)
        assert fresh.access_token is not None and fresh.mqtt_basic is None
        assert registry.device_by_token(fresh.access_token) == (pk, "station-01")
        assert registry.device_by_basic("lamp-7", "east-lamps", "s3cret!") is None
    finally:
        await registry.close()


async def test_a_batch_of_a_thingsboard_products_devices_gets_tokens(
    registry: SQLRegistry,
) -> None:
    pk = await thingsboard_product(registry)
    names = [f"station-{n:03}" for n in range(30)]
    await registry.create_devices(pk, names)
    tokens = await registry.access_tokens(pk, names)
    assert sorted(tokens) == names and len(set(tokens.values())) == 30
    assert all(registry.device_by_token(tokens[name]) == (pk, name) for name in names)


async def test_a_schemaless_products_model_grows_from_first_seen_values(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    pk = await thingsboard_product(registry, schemaless=True)
    seen = await registry.add_first_seen_properties(
        pk,
        {
            "temperature": 21.5,
            "count": 3,
            "uptime_ms": 1451649600512,
            "door_open": True,
            "mode": "auto",
            "config": {"interval": 5},
            "battery": None,
            "room.name": "A",
        },
    )
    assert seen.added == ("temperature", "count", "uptime_ms", "door_open", "mode", "config")
    assert set(seen.refused) == {"battery", "room.name"}
    # two devices' first keys at once: both kept
    await asyncio.gather(
        registry.add_first_seen_properties(pk, {"pm25": 12}),
        registry.add_first_seen_properties(pk, {"pm10": 30, "temperature": "warm"}),
    )
    assert (await registry.add_first_seen_properties(pk, {"pm25": 13})).added == ()
    registry = await reopen(registry, registry_db)
    try:
        model = await registry.thing_model(pk)
        assert model is not None
        kinds = {p.identifier: p.data_type for p in model.properties}
        assert (
            isinstance(kinds["temperature"], NumberType) and kinds["temperature"].type == "double"
        )
        assert isinstance(kinds["count"], NumberType) and kinds["count"].type == "int"
        assert isinstance(kinds["uptime_ms"], NumberType) and kinds["uptime_ms"].type == "double"
        assert isinstance(kinds["door_open"], BoolType)
        assert isinstance(kinds["mode"], TextType) and isinstance(kinds["config"], TextType)
        assert {"pm25", "pm10"} <= kinds.keys()
        assert all(p.access_mode == "r" for p in model.properties)
        view = registry.product_view(pk)
        assert view is not None and view.thing_model == model
        alink = (await registry.create_product("Streetlight")).product_key
        with pytest.raises(RegistryError) as not_schemaless:
            await registry.add_first_seen_properties(alink, {"x": 1})
        assert not_schemaless.value.kind == "invalid"
    finally:
        await registry.close()


async def test_revision_0005_on_a_registry_made_before_it(registry_db: RegistryDatabase) -> None:
    box = SecretBox(KEY)
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
            conn.execute(
                sa.text(
                    "INSERT INTO products (product_key, name, description, node_type, "
                    "data_format, dynamic_registration, product_secret, topic_classes, "
                    "created_at) VALUES ('a1OldProduct', 'Old lamp', '', 'device', 'alink', "
                    ":false, :secret, '[]', 1)"
                ),
                {"secret": box.seal("p" * 16, "product/a1OldProduct"), "false": False},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO devices (product_key, device_name, device_secret, state, "
                    "created_at) VALUES ('a1OldProduct', 'lamp-0001', :secret, 'inactive', 1)"
                ),
                {"secret": box.seal("d" * 32, "device/a1OldProduct/lamp-0001")},
            )
    finally:
        engine.dispose()
    registry = await SQLRegistry.open(registry_db.url, box, schema=registry_db.schema)
    try:
        old = await registry.get_product("a1OldProduct")
        assert (old.protocol, old.schemaless) == (Protocol.ALINK, False)
        credentials = await registry.credentials("a1OldProduct", "lamp-0001")
        assert credentials is not None and credentials.device_secret == "d" * 32
        pk = await thingsboard_product(registry)
        token = (await registry.create_device(pk, "station-01")).access_token
        assert token is not None and registry.device_by_token(token) == (pk, "station-01")
    finally:
        await registry.close()
