"""Tracked commands in the registry, on SQLite and PostgreSQL: kept before they are sent, each
step written after, listed by device, state, origin and batch, counted per batch, pruned past
their retention (never a queued one), and there again when the registry is opened again."""

from __future__ import annotations

import pytest

from hongshan.config import load_settings
from hongshan.errors import ConfigError
from hongshan.messages.commands import (
    TRANSITIONS,
    CommandBatch,
    CommandKind,
    CommandRecord,
    CommandState,
    Target,
    may_move,
)
from hongshan.store.registry.commands import CommandFilter
from hongshan.store.registry.store import SQLRegistry
from registry_databases import RegistryDatabase

S = CommandState


def record(dn: str, created: int = 1_000, origin: str = "api") -> CommandRecord:
    return CommandRecord(
        id=0,
        product_key="a1Lamps",
        device_name=dn,
        kind=CommandKind.SET,
        service="set",
        params={"LightSwitch": 1},
        origin=origin,
        state=S.QUEUED,
        wait=5.0,
        ttl=60.0,
        created_at=created,
        expires_at=created + 60_000,
    )


async def test_a_command_is_kept_and_each_step_written(
    registry: SQLRegistry, registry_db: RegistryDatabase
) -> None:
    table = registry.commands
    kept = record("lamp-1")
    await table.add([kept])
    assert kept.id > 0 and kept.batch is None
    assert await table.get(kept.id) == kept
    kept.state, kept.sent_at, kept.call_id = S.SENT, 2_000, "1234"
    table.changed(kept)
    kept.state, kept.finished_at, kept.code, kept.output = S.REPLIED, 2_500, 200, {"a": [1]}
    kept.outcome = "replied"
    table.changed(kept)  # (the newer row wins; both wait for one write)
    assert await table.get(kept.id) == kept
    await registry.close()
    again = await registry_db.open()
    try:
        assert await again.commands.get(kept.id) == kept
        assert await again.commands.get(kept.id + 1) is None
        assert await again.commands.get(2**70) is None
    finally:
        await again.close()


async def test_a_batch_is_kept_in_one_go_and_counted_by_state(registry: SQLRegistry) -> None:
    table = registry.commands
    records = [record(f"lamp-{n:03}", origin="rule:7") for n in range(300)]
    batch = CommandBatch(
        id=0,
        target=Target(group="street-1"),
        kind=CommandKind.SET,
        service="set",
        params={"LightSwitch": 1},
        origin="rule:7",
        wait=5.0,
        created_at=1_000,
        total=len(records),
    )
    await table.add(records, batch)
    assert batch.id > 0 and {r.batch for r in records} == {batch.id}
    assert len({r.id for r in records}) == 300
    assert [r.device_name for r in sorted(records, key=lambda r: r.id)][:2] == [
        "lamp-000",
        "lamp-001",
    ]
    for sent in records[:100]:
        sent.state = S.SENT
        table.changed(sent)
    records[0].state = S.REPLIED
    table.changed(records[0])
    shown = await table.batch(batch.id)
    assert shown is not None and shown.target == Target(group="street-1") and shown.total == 300
    assert shown.counts == {"queued": 200, "sent": 99, "replied": 1}
    page = await table.list_commands(CommandFilter(batch=batch.id, state=S.SENT, limit=10))
    assert len(page) == 10 and page[0].id > page[-1].id  # newest first
    assert await table.list_commands(CommandFilter(origin="api")) == []
    mine = await table.list_commands(CommandFilter(device_name="lamp-005", origin="rule:7"))
    assert [r.id for r in mine] == [records[5].id]
    assert await table.batch(batch.id + 1) is None


async def test_pruning_keeps_queued_commands_and_the_newest(registry: SQLRegistry) -> None:
    table = registry.commands
    old = [record(f"old-{n}", created=1_000) for n in range(3)]
    new = [record(f"new-{n}", created=9_000) for n in range(4)]
    await table.add(old + new)
    for finished in old[:2] + new:
        finished.state = S.FAILED
        table.changed(finished)
    assert await table.prune(before=5_000, keep_rows=1_000) == 2  # old-2 is queued: kept
    left = await table.list_commands(CommandFilter())
    assert {r.device_name for r in left} == {"old-2", "new-0", "new-1", "new-2", "new-3"}
    assert await table.prune(before=0, keep_rows=2) == 2  # past the newest two
    left = await table.list_commands(CommandFilter())
    assert {r.device_name for r in left} == {"old-2", "new-2", "new-3"}


def test_the_transition_table() -> None:
    assert may_move(S.QUEUED, S.SENT) and may_move(S.TIMED_OUT, S.REPLIED)
    assert may_move(S.SENT, S.QUEUED)  # the device went before the dialect sent it
    assert not may_move(S.REPLIED, S.TIMED_OUT) and not may_move(S.SENT, S.CANCELLED)
    assert {s for s, nexts in TRANSITIONS.items() if not nexts} == {
        S.REPLIED,
        S.FAILED,
        S.EXPIRED,
        S.CANCELLED,
    }
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        (Target(product_key="a1", device_name="d"), None),
        (Target(group="g"), None),
        (Target(product_key="a1"), None),
        (Target(tag="k:v"), None),
        (Target(tag="k:v", product_key="a1"), None),
        (Target(district="north"), None),
        (Target(), "give productKey"),
        (Target(device_name="d"), "needs its productKey"),
        (Target(group="g", tag="k:v"), "not group and tag"),
        (Target(group="g", product_key="a1"), "by its name alone"),
        (Target(tag="kv"), "key:value"),
        (Target(district=" "), "district is empty"),
    ],
)
def test_a_target_chooses_one_way(target: Target, problem: str | None) -> None:
    found = target.problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HONGSHAN_COMMAND_MAX_IN_FLIGHT": "0"}, "command_max_in_flight"),
        ({"HONGSHAN_COMMAND_RATE": "0"}, "command_rate"),
        ({"HONGSHAN_COMMAND_RETENTION_DAYS": "-1"}, "command_retention_days"),
        ({"HONGSHAN_COMMAND_RETENTION_ROWS": "0"}, "command_retention_rows"),
    ],
)
def test_the_command_settings_are_checked(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)
    settings = load_settings(environ={"HONGSHAN_COMMAND_RATE": "50"})
    assert (settings.command_rate, settings.command_max_in_flight) == (50.0, 200)
