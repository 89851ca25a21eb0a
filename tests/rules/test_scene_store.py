"""Scenes in the registry, on SQLite and PostgreSQL: kept as written, their keys sealed, their
waiting runs kept until dropped, and all there again when the registry is opened again."""

from __future__ import annotations

import msgspec
import pytest
import sqlalchemy as sa

from hongshan.rules.scene import SceneSpec
from hongshan.store.registry import schema
from hongshan.store.registry.engine import create_engine
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError
from registry_databases import RegistryDatabase

SPEC = msgspec.convert(
    {
        "name": "lamps",
        "triggers": [{"type": "cron", "expr": "0 1 * * *"}, {"type": "webhook"}],
        "conditions": {"all": [{"type": "timeWindow", "window": "16:00-02:00"}]},
        "actions": [
            {"type": "delay", "seconds": 60},
            {"type": "set", "productKey": "a1B", "deviceName": "l-1", "values": {"On": 1}},
        ],
        "mode": "queued",
        "max": 3,
    },
    SceneSpec,
)


async def test_scenes_and_their_waits_are_kept_and_opened_again(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    stored = await registry.scenes.create(SPEC, "the-secret", "the-token")
    assert (stored.spec, stored.secret, stored.token) == (SPEC, "the-secret", "the-token")
    with pytest.raises(RegistryError) as taken:
        await registry.scenes.create(SPEC, "a", "b")
    assert taken.value.http_status == 409
    disabled = await registry.scenes.set_enabled(stored.id, False)
    assert not disabled.spec.enabled
    renamed = msgspec.structs.replace(SPEC, name="lamps2", mode="single")
    changed = await registry.scenes.update(stored.id, renamed)
    assert changed.spec == renamed and changed.token == "the-token"
    wait = await registry.scenes.add_wait(stored.id, 5_000, 1, {"trigger": "cron"})
    await registry.scenes.add_wait(stored.id, 4_000, 1, {"n": 2})
    assert [(w.due, w.data) for w in await registry.scenes.waits()] == [
        (4_000, {"n": 2}),
        (5_000, {"trigger": "cron"}),
    ]
    await registry.scenes.drop_wait(wait)
    # the keys are sealed, never kept in the clear
    engine = create_engine(registry_db.url, schema=registry_db.schema)
    with engine.connect() as db:
        row = db.execute(sa.select(schema.scenes)).one()
    engine.dispose()
    assert "the-secret" not in row.secret and "the-token" not in row.token
    again = await registry_db.open()
    try:
        assert [scene.spec for scene in await again.scenes.list_scenes()] == [renamed]
        assert [w.data for w in await again.scenes.waits()] == [{"n": 2}]
    finally:
        await again.close()
    await registry.scenes.delete(stored.id)
    assert await registry.scenes.waits() == []
    for missing in (stored.id, 0, 2**40):
        with pytest.raises(RegistryError) as gone:
            await registry.scenes.get(missing)
        assert gone.value.http_status == 404


async def test_a_groups_members_are_listed(registry: SQLRegistry) -> None:
    with pytest.raises(RegistryError):
        await registry.groups.members("nowhere")
    await registry.groups.create("north")
    assert await registry.groups.members("north") == []
