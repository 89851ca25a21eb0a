"""Rules in the registry: their text, actions, limit, whether they run, and their secret."""

from __future__ import annotations

from typing import Any

import msgspec
import sqlalchemy as sa

from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.identity.secret_box import SecretBox
from hongshan.rules.definition import ActionSpec, RuleSpec, StoredRule
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database, now_ms
from hongshan.store.registry.reach import owned, tenant_known
from hongshan.things.model import EVERYWHERE, Reach, RegistryError

_actions = msgspec.json.Decoder(list[ActionSpec])
_action = msgspec.json.Decoder(ActionSpec)


MAX_ID = 2**31 - 1  # (an INTEGER column's range on PostgreSQL)


def _context(rule_id: int) -> str:
    return f"rule:{rule_id}"


class RuleTable:
    """The ``rules`` table. Keeps a rule as its author wrote it (the text is checked before it
    gets here), its secret sealed; answers ``StoredRule``s with the secret open."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def create(self, spec: RuleSpec, secret: str, tenant: str = DEFAULT_TENANT) -> StoredRule:
        def insert() -> int:
            now = now_ms()
            with self._db.engine.begin() as db:
                tenant_known(db, tenant)
                try:
                    result = db.execute(
                        t.rules.insert().values(
                            **_columns(spec),
                            secret="",
                            created_at=now,
                            updated_at=now,
                            tenant=tenant,
                        )
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(
                        f"a rule is named {spec.name} already", "conflict"
                    ) from None
                inserted = result.inserted_primary_key
                assert inserted is not None  # (an INSERT of one row)
                rule_id = int(inserted[0])
                sealed = self._box.seal(secret, _context(rule_id))
                db.execute(t.rules.update().where(t.rules.c.id == rule_id).values(secret=sealed))
                return rule_id

        return await self.get(await self._db.run(insert))

    async def list_rules(self, reach: Reach = EVERYWHERE) -> list[StoredRule]:
        """The rules of ``reach``'s tenant (every one's for the admin token's)."""
        r = t.rules

        def query() -> list[Any]:
            select = sa.select(r).where(owned(reach, r.c.tenant)).order_by(r.c.id)
            with self._db.engine.connect() as db:
                return list(db.execute(select))

        return [self._rule(row) for row in await self._db.run(query)]

    async def get(self, rule_id: int) -> StoredRule:
        if not 0 < rule_id <= MAX_ID:
            raise RegistryError(f"no rule {rule_id}", "not_found")

        def query() -> Any:
            with self._db.engine.connect() as db:
                return db.execute(sa.select(t.rules).where(t.rules.c.id == rule_id)).first()

        row = await self._db.run(query)
        if row is None:
            raise RegistryError(f"no rule {rule_id}", "not_found")
        return self._rule(row)

    async def update(self, rule_id: int, spec: RuleSpec) -> StoredRule:
        await self._change(rule_id, _columns(spec), name=spec.name)
        return await self.get(rule_id)

    async def set_enabled(
        self, rule_id: int, enabled: bool, *, shadow: bool | None = None
    ) -> StoredRule:
        """Enable or disable a rule; ``shadow`` True or False also makes it a shadow rule or a
        live one (None: as it was)."""
        values: dict[str, Any] = {"enabled": enabled}
        if shadow is not None:
            values["shadow"] = shadow
        await self._change(rule_id, values)
        return await self.get(rule_id)

    async def delete(self, rule_id: int) -> None:
        if not 0 < rule_id <= MAX_ID:
            raise RegistryError(f"no rule {rule_id}", "not_found")

        def delete() -> None:
            with self._db.engine.begin() as db:
                result = db.execute(t.rules.delete().where(t.rules.c.id == rule_id))
                if result.rowcount == 0:
                    raise RegistryError(f"no rule {rule_id}", "not_found")

        await self._db.run(delete)

    async def _change(self, rule_id: int, values: dict[str, Any], name: str = "") -> None:
        if not 0 < rule_id <= MAX_ID:
            raise RegistryError(f"no rule {rule_id}", "not_found")

        def update() -> None:
            with self._db.engine.begin() as db:
                try:
                    result = db.execute(
                        t.rules.update()
                        .where(t.rules.c.id == rule_id)
                        .values(**values, updated_at=now_ms())
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(f"a rule is named {name} already", "conflict") from None
                if result.rowcount == 0:
                    raise RegistryError(f"no rule {rule_id}", "not_found")

        await self._db.run(update)

    def _rule(self, row: Any) -> StoredRule:
        return StoredRule(
            id=row.id,
            name=row.name,
            sql=row.sql,
            actions=_actions.decode(row.actions),
            error_action=None if row.error_action is None else _action.decode(row.error_action),
            enabled=row.enabled,
            max_per_second=row.max_per_second,
            secret=self._box.open(row.secret, _context(row.id)),
            created_at=row.created_at,
            updated_at=row.updated_at,
            shadow=row.shadow,
            tenant=row.tenant,
        )


def _columns(spec: RuleSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "sql": spec.sql,
        "actions": msgspec.json.encode(spec.actions).decode(),
        "error_action": (
            None if spec.error_action is None else msgspec.json.encode(spec.error_action).decode()
        ),
        "enabled": spec.enabled,
        "max_per_second": spec.max_per_second,
        "shadow": spec.shadow,
    }
