"""API keys in the registry (``api_keys``): their lookup and the SHA-256 of their secret,
never the secret (``identity.api_keys``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from hongshan.identity.api_keys import StoredKey
from hongshan.identity.principals import Role
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database
from hongshan.store.registry.reach import group_limit_column, group_limit_of
from hongshan.things.model import RegistryError


class KeyTable:
    """The ``api_keys`` table. Answers whole rows; what is checked per request is the copy
    ``services.people.keys.ApiKeys`` keeps in memory from ``all``. A revoked key stays (its
    name and times are worth keeping for the audit log's readers)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[StoredKey]:
        def query() -> list[Any]:
            with self._db.engine.connect() as db:
                return list(db.execute(sa.select(t.api_keys).order_by(t.api_keys.c.id)))

        return [_key(row) for row in await self._db.run(query)]

    async def add(self, key: StoredKey) -> StoredKey:
        """``key`` kept (its ``id`` is the row's: the one given is ignored); as kept."""

        def insert() -> StoredKey:
            with self._db.engine.begin() as db:
                try:
                    result = db.execute(t.api_keys.insert().values(**_columns(key)))
                except sa.exc.IntegrityError:  # (the tenant's foreign key; a lookup drawn
                    # twice in 72 random bits is not worth a message of its own)
                    raise RegistryError(f"no tenant {key.tenant!r}", "invalid") from None
                inserted = result.inserted_primary_key
                assert inserted is not None  # (an INSERT of one row)
                row = db.execute(sa.select(t.api_keys).where(t.api_keys.c.id == inserted[0])).one()
                return _key(row)

        return await self._db.run(insert)

    async def revoke(self, key_id: int, at: int) -> StoredKey:
        """The key marked revoked at ``at`` (a key revoked already keeps its first time)."""

        def update() -> StoredKey:
            k = t.api_keys
            with self._db.engine.begin() as db:
                db.execute(
                    k.update()
                    .where(k.c.id == key_id, k.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                )
                row = db.execute(sa.select(k).where(k.c.id == key_id)).first()
                if row is None:
                    raise RegistryError(f"no API key {key_id}", "not_found")
                return _key(row)

        return await self._db.run(update)

    def note_used(self, key_id: int, at: int) -> None:
        """``used_at`` set, in the background (nobody waits for it; a failure is the
        database's ``problem``)."""

        def update() -> None:
            k = t.api_keys
            with self._db.engine.begin() as db:
                db.execute(k.update().where(k.c.id == key_id).values(used_at=at))

        self._db.in_background(update)


def _columns(key: StoredKey) -> dict[str, Any]:
    return {
        "tenant": key.tenant,
        "name": key.name,
        "lookup": key.lookup,
        "secret_hash": key.secret_hash,
        "role": key.role.label,
        "groups": group_limit_column(key.groups),
        "created_by": key.created_by,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "used_at": key.used_at,
    }


def _key(row: Any) -> StoredKey:
    return StoredKey(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        lookup=row.lookup,
        secret_hash=row.secret_hash,
        role=Role.named(row.role),
        groups=group_limit_of(row.groups),
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        used_at=row.used_at,
    )
