"""Migration 0015 (names unique per tenant) and the registry's groups by tenant, on SQLite
and PostgreSQL: a registry made before
it keeps every row through it — groups with their members and tags, scenes with their waits,
routes with their owed deliveries (SQLite copies the tables, and the copy's drop cascades) —
and two tenants may then share a name that one tenant still may not use twice."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hongshan.identity.secret_box import SecretBox
from hongshan.store.registry.engine import MIGRATIONS, create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError
from registry_databases import RegistryDatabase

KEY = secrets.token_bytes(32)

SCENE = (
    "INSERT INTO scenes (name, spec, enabled, secret, token, created_at, updated_at, tenant) "
    "VALUES ('dusk', '{}', :false, '', '', 1, 1, :tenant)"
)
ROUTE = (
    "INSERT INTO alarm_routes (name, kind, target, min_severity, types, changes, retries, "
    "backoff, secret, sent, failed, created_at, tenant) VALUES ('duty', 'webhook', "
    "'http://127.0.0.1:9/', 'MINOR', '[]', '[]', 1, 1.0, '', 0, 0, 1, :tenant)"
)
RULE = (
    "INSERT INTO rules (name, sql, actions, enabled, max_per_second, secret, created_at, "
    "updated_at, tenant) VALUES ('lamps', 'SELECT * FROM \"t\"', '[]', :false, 1.0, '', 1, 1, "
    ":tenant)"
)


def _migrate(registry_db: RegistryDatabase, revision: str, *, down: bool = False) -> None:
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as db:
            config.attributes["connection"] = db
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def _count(db: sa.Connection, table: str) -> int:
    return int(db.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


async def test_every_row_is_kept_and_names_are_the_tenants(registry_db: RegistryDatabase) -> None:
    registry = await SQLRegistry.open(registry_db.url, SecretBox(KEY), schema=registry_db.schema)
    try:
        product = await registry.create_product("Lamp")
        lamp = await registry.create_device(product.product_key, "lamp-1")
        await registry.groups.create("north")
        await registry.groups.add("north", [(product.product_key, lamp.device_name)])
        await registry.groups.change_tags("north", {"max": "30"}, ())
    finally:
        await registry.close()
    _migrate(registry_db, "0014", down=True)  # (0015's downgrade: names unique again)
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        with engine.begin() as db:
            db.execute(sa.text(SCENE), {"false": False, "tenant": "default"})
            db.execute(sa.text(ROUTE), {"tenant": "default"})
            db.execute(sa.text(RULE), {"false": False, "tenant": "default"})
            db.execute(
                sa.text(
                    "INSERT INTO scene_waits (scene_id, due, step, data) VALUES "
                    "((SELECT id FROM scenes), 5, 1, '{}')"
                )
            )
            db.execute(
                sa.text(
                    "INSERT INTO alarm_deliveries (route_id, change, payload, "
                    "created_at) VALUES ((SELECT id FROM alarm_routes), 'raised', "
                    "'{}', 1)"
                )
            )
            db.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('south', 'South', 1)")
            )
            with pytest.raises(sa.exc.IntegrityError), db.begin_nested():
                db.execute(sa.text(SCENE), {"false": False, "tenant": "south"})
    finally:
        engine.dispose()

    _migrate(registry_db, "head")

    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        with engine.begin() as db:
            for table in ("group_members", "group_tags", "scene_waits", "alarm_deliveries"):
                assert _count(db, table) == 1, table
            db.execute(sa.text(SCENE), {"false": False, "tenant": "south"})
            db.execute(sa.text(ROUTE), {"tenant": "south"})
            db.execute(sa.text(RULE), {"false": False, "tenant": "south"})
            db.execute(
                sa.text(
                    "INSERT INTO device_groups (name, description, created_at, "
                    "tenant) VALUES ('north', '', 1, 'south')"
                )
            )
            for insert, values in (
                (SCENE, {"false": False}),
                (ROUTE, {}),
                (RULE, {"false": False}),
            ):
                with pytest.raises(sa.exc.IntegrityError), db.begin_nested():
                    db.execute(sa.text(insert), {**values, "tenant": "south"})
            for table in ("device_groups", "scenes", "alarm_routes", "rules"):
                assert _count(db, table) == 2, table
    finally:
        engine.dispose()


async def test_two_tenants_groups_of_one_name_in_the_registry(
    registry_db: RegistryDatabase,
) -> None:
    """The registry's groups by tenant and name: each tenant's ``north`` is its own (members,
    tags, deletion), a tenant's device joins only its tenant's group, and a name is one
    tenant's once."""
    registry = await SQLRegistry.open(registry_db.url, SecretBox(KEY), schema=registry_db.schema)
    try:
        await registry.tenants.create("south", "South")
        lamps = {}
        for tenant in ("default", "south"):
            product = await registry.create_product("Lamp", tenant=tenant)
            device = await registry.create_device(product.product_key, "lamp-1")
            lamps[tenant] = (product.product_key, device.device_name)
            await registry.groups.create("north", tenant=tenant)
            await registry.groups.add("north", [lamps[tenant]], tenant)
        with pytest.raises(RegistryError) as twice:
            await registry.groups.create("north", tenant="south")
        assert twice.value.kind == "conflict"
        with pytest.raises(RegistryError) as foreign:
            await registry.groups.add("north", [lamps["default"]], "south")
        assert foreign.value.kind == "invalid"
        await registry.groups.change_tags("north", {"max": "2"}, (), "south")
        assert (await registry.groups.get("north")).tags == {}
        assert await registry.groups.members("north", "south") == [lamps["south"]]
        assert registry.groups.tenants_named("north") == ["default", "south"]
        await registry.groups.delete("north", "south")
        assert await registry.groups.members("north") == [lamps["default"]]
        assert registry.groups.tenants_named("north") == ["default"]
    finally:
        await registry.close()
