"""Failed logins per username, kept (``login_lockouts``): ``identity.lockout``'s
``UserLock`` in rows, so that a restart finds each lock and each count it had. Whether a
login is locked is the ``Lockout``'s to say; this only keeps and reads back. Rows are keyed by
the SHA-256 of the name as typed, never the name."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from hongshan.identity.lockout import UserLock
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database

PRUNE_EVERY = 1000  # writes between two deletions of the rows nothing recent is in


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class LockoutTable:
    """The ``login_lockouts`` table. A row whose lock is over and whose last failure is past
    the window is stale: deleted at start (``load``) and every ``PRUNE_EVERY`` writes, so that
    a flood of made-up names does not grow it for ever."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writes = 0

    async def load(self, now: float, window: float) -> list[UserLock]:
        """Every row not stale at ``now`` (the clock's seconds); the stale ones deleted."""

        def query() -> list[Any]:
            with self._db.engine.begin() as db:
                db.execute(_stale(_ms(now), _ms(window)))
                return list(db.execute(sa.select(t.login_lockouts)))

        return [
            UserLock(
                key=row.name_hash,
                failures=tuple(at / 1000 for at in json.loads(row.failures)),
                locked_until=row.locked_until / 1000,
            )
            for row in await self._db.run(query)
        ]

    async def keep(self, lock: UserLock, *, now: float, window: float) -> None:
        """The username's state now (its row replaced)."""
        self._writes += 1
        prune = self._writes % PRUNE_EVERY == 0
        row = {
            "name_hash": lock.key,
            "failures": json.dumps([_ms(at) for at in lock.failures]),
            "locked_until": _ms(lock.locked_until),
            "updated_at": _ms(now),
        }

        def write() -> None:
            table = t.login_lockouts
            with self._db.engine.begin() as db:
                # (a delete and an insert: an upsert both SQLite and PostgreSQL take alike)
                db.execute(table.delete().where(table.c.name_hash == lock.key))
                db.execute(table.insert().values(**row))
                if prune:
                    db.execute(_stale(_ms(now), _ms(window)))

        await self._db.run(write)

    async def forget(self, key: str) -> None:
        """A username's row gone (a success)."""

        def delete() -> None:
            table = t.login_lockouts
            with self._db.engine.begin() as db:
                db.execute(table.delete().where(table.c.name_hash == key))

        await self._db.run(delete)


def _stale(now: int, window: int) -> Any:
    table = t.login_lockouts
    return table.delete().where(table.c.locked_until <= now, table.c.updated_at <= now - window)
