"""Products' alarm conditions kept in the registry on SQLite and PostgreSQL: one per product
and alarm type, changed and deleted (the tags their thresholds read are kept in memory:
tests/things/test_tag_directory.py)."""

from __future__ import annotations

import msgspec
import pytest

from hongshan.rules.alarm_conditions import AlarmConditionSpec
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError


def spec(pk: str, type: str = "LowSpO2", value: float = 90) -> AlarmConditionSpec:
    return msgspec.convert(
        {
            "productKey": pk,
            "type": type,
            "create": [
                {
                    "severity": "major",
                    "predicates": [{"property": "SpO2", "op": "<", "tag": "min", "value": value}],
                    "kind": "duration",
                    "forMs": 60000,
                }
            ],
        },
        AlarmConditionSpec,
    )


async def test_conditions_are_kept_one_per_product_and_type(registry: SQLRegistry) -> None:
    table = registry.alarm_conditions
    pk = (await registry.create_product("Oximeter")).product_key
    other = (await registry.create_product("Lamp")).product_key
    kept = await table.create(spec(pk))
    assert kept.spec == spec(pk) and kept.created_at == kept.updated_at > 0
    with pytest.raises(RegistryError, match="LowSpO2 already") as taken:
        await table.create(spec(pk))
    assert taken.value.kind == "conflict"
    await table.create(spec(other))  # (another product's type of the same name)
    second = await table.create(spec(pk, "HighPulse"))
    assert [c.id for c in await table.list_conditions(pk)] == [kept.id, second.id]
    assert len(await table.list_conditions()) == 3
    changed = spec(pk, value=88)
    changed.enabled = False
    updated = await table.update(kept.id, changed)
    assert updated.spec.create[0].predicates[0].value == 88 and not updated.spec.enabled
    with pytest.raises(RegistryError, match="HighPulse already"):
        await table.update(kept.id, spec(pk, "HighPulse"))
    await table.delete(kept.id)
    for missing in (kept.id, 0, 2**40):
        with pytest.raises(RegistryError, match="no alarm condition") as gone:
            await table.get(missing)
        assert gone.value.kind == "not_found"
    with pytest.raises(RegistryError, match="no alarm condition"):
        await table.delete(kept.id)
