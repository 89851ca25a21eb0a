"""API keys and the audit log in the registry, on SQLite and PostgreSQL: keys kept hashed,
their use written at most once a minute, records found and pruned; on a clock of the test's."""

from __future__ import annotations

import pytest

from hongshan.identity.principals import SYSTEM, Principal, Role
from hongshan.services.people.audit import AuditLog
from hongshan.services.people.keys import ApiKeys, BeyondOwnRights, KeyRefused, KeySpec
from hongshan.store.registry.audit import AuditEntry, AuditFilter
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError
from registry_databases import RegistryDatabase

T0 = 1_800_000_000_000
DAY = 86_400_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def entry(at: int, actor: str = "ana", status: int = 201, **more: object) -> AuditEntry:
    fields: dict[str, object] = {
        "at": at, "actor": actor, "actor_kind": "user", "address": "10.0.0.1",
        "action": "POST /api/groups", "target": "/api/groups", "status": status,
        "tenant": "default", **more,
    }  # fmt: skip
    return AuditEntry(**fields)  # type: ignore[arg-type]


async def used_at(registry: SQLRegistry, registry_db: RegistryDatabase) -> int | None:
    """The key's ``used_at`` as a restart finds it (closing waits for background writes)."""
    await registry.close()
    reopened = await registry_db.open()
    try:
        [kept] = await reopened.api_keys.all()
        return kept.used_at
    finally:
        await reopened.close()


async def test_keys_are_kept_and_their_use_written_once_a_minute(
    registry_db: RegistryDatabase,
) -> None:
    clock = Clock()
    opened = await registry_db.open()
    keys = ApiKeys(opened.api_keys, clock=clock)
    key, text = await keys.create(SYSTEM, KeySpec(name="meter-export", role=Role.VIEWER))
    assert key.used_at is None and key.tenant == "default"
    found = keys.principal_of(text)
    assert found is not None and (found.kind, found.name, found.id) == (
        "key",
        "meter-export",
        key.id,
    )
    clock.now += 30_000
    keys.principal_of(text)  # (within the minute: nothing written)
    assert await used_at(opened, registry_db) == T0
    opened = await registry_db.open()
    keys = ApiKeys(opened.api_keys, clock=clock)  # (as after a restart)
    await keys.load()
    clock.now += 31_000
    keys.principal_of(text)
    assert await used_at(opened, registry_db) == T0 + 61_000


async def test_a_revoked_key_is_refused_and_kept(registry: SQLRegistry) -> None:
    clock = Clock()
    keys = ApiKeys(registry.api_keys, clock=clock)
    key, text = await keys.create(SYSTEM, KeySpec(name="meter-export", role=Role.VIEWER))
    assert keys.principal_of(text[:-1] + ("x" if text[-1] != "x" else "y")) is None
    clock.now += 5
    await keys.revoke(SYSTEM, key.id)
    with pytest.raises(KeyRefused, match="revoked"):
        keys.principal_of(text)
    [kept] = await registry.api_keys.all()
    assert kept.revoked_at == T0 + 5 and kept.name == "meter-export"


async def test_a_key_expires_and_is_never_above_its_maker(registry: SQLRegistry) -> None:
    clock = Clock()
    keys = ApiKeys(registry.api_keys, clock=clock)
    _, text = await keys.create(SYSTEM, KeySpec(name="pilot", role=Role.VIEWER, expires_in_days=1))
    assert keys.principal_of(text) is not None
    clock.now += DAY
    with pytest.raises(KeyRefused, match="expired"):
        keys.principal_of(text)
    operator = Principal(kind="user", name="bo", role=Role.OPERATOR, tenant="default")
    with pytest.raises(BeyondOwnRights, match="operator"):
        await keys.create(operator, KeySpec(name="mine", role=Role.ADMIN))
    made, _ = await keys.create(operator, KeySpec(name="mine", role=Role.OPERATOR))
    assert made.created_by == "bo"
    with pytest.raises(RegistryError, match="tenant"):
        await keys.create(SYSTEM, KeySpec(name="x", role=Role.VIEWER, tenant="nowhere"))
    with pytest.raises(RegistryError, match="name"):
        await keys.create(SYSTEM, KeySpec(name=" ", role=Role.VIEWER))


async def test_records_are_found_newest_first_filtered_and_pruned(registry: SQLRegistry) -> None:
    table = registry.audit
    await table.add(
        [
            entry(T0, actor_kind="anonymous", actor="anonymous", status=401, tenant=None),
            entry(T0 + 1),
            entry(T0 + 1, actor="bo", status=403),
            entry(T0 + 2, detail={"keyId": 7}, target="/api/" + "x" * 600),
        ]
    )
    found, total = await table.find(AuditFilter())
    assert total == 4 and [e.at for e in found] == [T0 + 2, T0 + 1, T0 + 1, T0]
    assert found[0].detail == {"keyId": 7} and len(found[0].target) == 512
    assert found[3].actor_kind == "anonymous" and found[3].tenant is None
    assert [e.actor for e in (await table.find(AuditFilter(tenant="default")))[0]] == [
        "ana", "bo", "ana",
    ]  # fmt: skip
    assert (await table.find(AuditFilter(status=403)))[1] == 1
    assert (await table.find(AuditFilter(since=T0 + 1, until=T0 + 1)))[1] == 2
    after = (found[1].at, found[1].id)  # (a page of a CSV export goes on after the last row)
    rest, _ = await table.find(AuditFilter(after=after))
    assert [e.id for e in rest] == [found[2].id, found[3].id]
    clock = Clock()
    log = AuditLog(table, keep_days=1, clock=clock)
    log.start()
    every = [e.id async for e in log.every(AuditFilter(limit=1), page=2)]  # (pages of 2)
    assert every == [e.id for e in found]
    assert [e.actor async for e in log.every(AuditFilter(actor="bo"), page=1)] == ["bo"]
    clock.now = T0 + DAY + 2  # (kept a day: what is older than T0 + 2 goes)
    assert await log.prune() == 3
    assert [e.at for e in (await log.find(AuditFilter()))[0]] == [T0 + 2]
    await log.stop()
