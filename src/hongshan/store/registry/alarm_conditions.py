"""Products' alarm conditions in the registry (the tags their thresholds read are kept in
memory: ``things.tag_directory.TagDirectory``)."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.rules.alarm_conditions import AlarmConditionSpec, StoredAlarmCondition
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, now_ms
from hongshan.things.model import RegistryError

_spec = msgspec.json.Decoder(AlarmConditionSpec)

MAX_ID = 2**31 - 1  # (an INTEGER column's range on PostgreSQL)


def _not_found(condition_id: int) -> RegistryError:
    return RegistryError(f"no alarm condition {condition_id}", "not_found")


def _taken(spec: AlarmConditionSpec) -> RegistryError:
    return RegistryError(
        f"product {spec.product_key} has an alarm condition of type {spec.type} already",
        "conflict",
    )


class AlarmConditionTable:
    """The ``alarm_conditions`` table: each condition as written (checked before it gets
    here), one per product and alarm type."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, spec: AlarmConditionSpec) -> StoredAlarmCondition:
        def insert() -> int:
            now = now_ms()
            with self._db.engine.begin() as db:
                try:
                    result = db.execute(
                        t.alarm_conditions.insert().values(
                            **_columns(spec), created_at=now, updated_at=now
                        )
                    )
                except sa.exc.IntegrityError:
                    raise _taken(spec) from None
                inserted = result.inserted_primary_key
                assert inserted is not None  # (an INSERT of one row)
                return int(inserted[0])

        return await self.get(await self._db.run(insert))

    async def list_conditions(self, product_key: str | None = None) -> list[StoredAlarmCondition]:
        def query() -> list[Any]:
            c = t.alarm_conditions
            select = sa.select(c).order_by(c.c.id)
            if product_key is not None:
                select = select.where(c.c.product_key == product_key)
            with self._db.engine.connect() as db:
                return list(db.execute(select))

        return [_condition(row) for row in await self._db.run(query)]

    async def get(self, condition_id: int) -> StoredAlarmCondition:
        if not 0 < condition_id <= MAX_ID:
            raise _not_found(condition_id)

        def query() -> Any:
            c = t.alarm_conditions
            with self._db.engine.connect() as db:
                return db.execute(sa.select(c).where(c.c.id == condition_id)).first()

        row = await self._db.run(query)
        if row is None:
            raise _not_found(condition_id)
        return _condition(row)

    async def update(self, condition_id: int, spec: AlarmConditionSpec) -> StoredAlarmCondition:
        if not 0 < condition_id <= MAX_ID:
            raise _not_found(condition_id)

        def update() -> None:
            c = t.alarm_conditions
            with self._db.engine.begin() as db:
                try:
                    result = db.execute(
                        c.update()
                        .where(c.c.id == condition_id)
                        .values(**_columns(spec), updated_at=now_ms())
                    )
                except sa.exc.IntegrityError:
                    raise _taken(spec) from None
                if result.rowcount == 0:
                    raise _not_found(condition_id)

        await self._db.run(update)
        return await self.get(condition_id)

    async def delete(self, condition_id: int) -> None:
        if not 0 < condition_id <= MAX_ID:
            raise _not_found(condition_id)

        def delete() -> None:
            c = t.alarm_conditions
            with self._db.engine.begin() as db:
                if db.execute(c.delete().where(c.c.id == condition_id)).rowcount == 0:
                    raise _not_found(condition_id)

        await self._db.run(delete)


def _columns(spec: AlarmConditionSpec) -> dict[str, Any]:
    return {
        "product_key": spec.product_key,
        "type": spec.type,
        "spec": msgspec.json.encode(spec).decode(),
        "enabled": spec.enabled,
    }


def _condition(row: Any) -> StoredAlarmCondition:
    spec = _spec.decode(row.spec)
    spec.enabled = row.enabled
    return StoredAlarmCondition(
        id=row.id, spec=spec, created_at=row.created_at, updated_at=row.updated_at
    )
