"""Rules in the registry, on SQLite and PostgreSQL: kept as written, their secret sealed, and
there again when the registry is opened again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from hongshan.identity.secret_box import SecretBox
from hongshan.rules.definition import (
    ForwardAction,
    RepublishAction,
    RuleSpec,
    SetAction,
    WebhookAction,
)
from hongshan.store.registry import schema
from hongshan.store.registry.engine import MIGRATIONS, create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError
from registry_databases import KEY, RegistryDatabase

SPEC = RuleSpec(
    name="lamps",
    sql='SELECT * FROM "town/in"',
    actions=[
        RepublishAction(topic="town/${a}", qos=1),
        WebhookAction(url="http://127.0.0.1:9/hook", retries=1),
        SetAction(product_key="a1B", device_name="lamp-0001"),
        ForwardAction(rule="next"),
    ],
    error_action=RepublishAction(topic="town/errors"),
    max_per_second=5.0,
)


async def test_rules_are_kept_as_written_and_opened_again(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    stored = await registry.rules.create(SPEC, "s3cret-of-the-rule")
    assert stored.id > 0 and stored.secret == "s3cret-of-the-rule"
    assert (stored.actions, stored.error_action) == (SPEC.actions, SPEC.error_action)
    assert stored.max_per_second == 5.0 and stored.enabled
    other = await registry.rules.create(RuleSpec(name="other", sql=SPEC.sql), "x" * 32)
    with pytest.raises(RegistryError) as taken:
        await registry.rules.create(SPEC, "again")
    assert taken.value.http_status == 409
    changed = await registry.rules.update(
        stored.id, RuleSpec(name="lamps2", sql='SELECT a FROM "b"', enabled=False)
    )
    assert (changed.name, changed.sql, changed.actions, changed.enabled) == (
        "lamps2",
        'SELECT a FROM "b"',
        [],
        False,
    )
    assert changed.secret == "s3cret-of-the-rule" and changed.created_at == stored.created_at
    assert (await registry.rules.set_enabled(stored.id, True)).enabled
    with pytest.raises(RegistryError) as renamed:
        await registry.rules.update(other.id, RuleSpec(name="lamps2", sql=SPEC.sql))
    assert renamed.value.http_status == 409
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    try:
        with engine.connect() as db:
            sealed = db.execute(sa.select(schema.rules.c.secret)).scalars().all()
    finally:
        engine.dispose()
    assert all("s3cret" not in value for value in sealed)
    await registry.close()
    reopened = await registry_db.open()
    try:
        assert [rule.name for rule in await reopened.rules.list_rules()] == ["lamps2", "other"]
        assert (await reopened.rules.get(stored.id)).secret == "s3cret-of-the-rule"
        await reopened.rules.delete(stored.id)
        for missing in (stored.id, 2**40, 0):
            with pytest.raises(RegistryError) as gone:
                await reopened.rules.get(missing)
            assert gone.value.http_status == 404
        with pytest.raises(RegistryError):
            await reopened.rules.delete(stored.id)
    finally:
        await reopened.close()


async def test_a_shadow_rule_is_kept_and_switched_live(registry: SQLRegistry) -> None:
    stored = await registry.rules.create(RuleSpec(name="quiet", sql=SPEC.sql, shadow=True), "k")
    assert stored.shadow
    live = await registry.rules.set_enabled(stored.id, True, shadow=False)
    assert not live.shadow and live.enabled
    kept = await registry.rules.set_enabled(stored.id, False)  # (no mode: as it was)
    assert not kept.shadow and not kept.enabled


async def test_revision_0008_on_rules_made_before_it(registry_db: RegistryDatabase) -> None:
    """A rule stored before shadow rules existed is a live one after the migration."""
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
            conn.execute(
                sa.text(
                    "INSERT INTO rules (name, sql, actions, enabled, max_per_second, secret, "
                    "created_at, updated_at) VALUES ('old', 'SELECT * FROM \"t\"', '[]', "
                    ":true, 1.0, :secret, 1, 1)"
                ),
                {"true": True, "secret": SecretBox(KEY).seal("k" * 32, "rule:1")},
            )
    finally:
        engine.dispose()
    registry = await registry_db.open()
    try:
        (old,) = await registry.rules.list_rules()
        assert old.name == "old" and old.shadow is False
    finally:
        await registry.close()
