"""The registry's ThingsBoard groundwork on SQLite and PostgreSQL: products that speak a protocol
and may be schemaless, and revision 0005 on a database made before it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry.engine import MIGRATIONS, create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import Protocol
from registry_databases import RegistryDatabase

KEY = secrets.token_bytes(32)


@pytest.fixture
async def registry(registry_db: RegistryDatabase) -> AsyncIterator[SQLRegistry]:
    opened = await SQLRegistry.open(registry_db.url, SecretBox(KEY), schema=registry_db.schema)
    yield opened
    await opened.close()


async def reopen(registry: SQLRegistry, db: RegistryDatabase) -> SQLRegistry:
    await registry.close()
    return await SQLRegistry.open(db.url, SecretBox(KEY), schema=db.schema)


async def thingsboard_product(registry: SQLRegistry, **options: bool) -> str:
    product = await registry.create_product("Air station", protocol=Protocol.THINGSBOARD, **options)
    return product.product_key


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
        assert (await registry.get_product(pk)).protocol is Protocol.THINGSBOARD
    finally:
        await registry.close()
