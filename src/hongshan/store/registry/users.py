"""Users and their sessions in the registry (``users``, ``user_sessions``). Rows in, records
out: whether a password is right, a token valid or a user may log in is
``services.people``'s, which keeps both in memory and writes here after each change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hongshan.identity.principals import Role
from hongshan.store.registry import schema as t
from hongshan.store.registry.database import Database
from hongshan.store.registry.reach import group_limit_column, group_limit_of, tenant_known
from hongshan.things.model import RegistryError


@dataclass(frozen=True, kw_only=True, slots=True)
class UserRecord:
    id: int
    tenant: str
    name: str
    password_hash: str  # argon2id
    role: Role
    groups: frozenset[str] | None  # None: not limited to groups
    disabled: bool
    created_at: int
    updated_at: int
    password_changed_at: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionRecord:
    """A login: lives until ``expires_at`` (ms) unless revoked; ``refresh_hash`` is the
    SHA-256 (hex) of its current refresh token's secret."""

    id: str
    user_id: int
    refresh_hash: str
    created_at: int
    expires_at: int
    used_at: int
    address: str
    agent: str
    revoked_at: int | None = None


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        password_hash=row.password_hash,
        role=Role.named(row.role),
        groups=group_limit_of(row.groups),
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        password_changed_at=row.password_changed_at,
    )


class UserTable:
    """The ``users`` table. A name is unique across tenants (one login form); a user's tenant
    must exist (``tenants``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> list[UserRecord]:
        def query() -> list[Any]:
            with self._db.engine.connect() as db:
                return list(db.execute(sa.select(t.users).order_by(t.users.c.id)))

        return [_user(row) for row in await self._db.run(query)]

    async def add(
        self,
        *,
        tenant: str,
        name: str,
        password_hash: str,
        role: Role,
        groups: frozenset[str] | None,
        at: int,
    ) -> UserRecord:
        def insert() -> Any:
            with self._db.engine.begin() as db:
                tenant_known(db, tenant)
                try:
                    db.execute(
                        t.users.insert().values(
                            tenant=tenant,
                            name=name,
                            password_hash=password_hash,
                            role=role.label,
                            groups=group_limit_column(groups),
                            disabled=False,
                            created_at=at,
                            updated_at=at,
                            password_changed_at=at,
                        )
                    )
                except sa.exc.IntegrityError:
                    raise RegistryError(f"a user is named {name} already", "conflict") from None
                return db.execute(sa.select(t.users).where(t.users.c.name == name)).one()

        return _user(await self._db.run(insert))

    async def save(self, user: UserRecord) -> None:
        """Write what may change of a user: role, groups, disabled, password, their times."""

        def update() -> None:
            with self._db.engine.begin() as db:
                result = db.execute(
                    t.users.update()
                    .where(t.users.c.id == user.id)
                    .values(
                        password_hash=user.password_hash,
                        role=user.role.label,
                        groups=group_limit_column(user.groups),
                        disabled=user.disabled,
                        updated_at=user.updated_at,
                        password_changed_at=user.password_changed_at,
                    )
                )
                if result.rowcount == 0:
                    raise RegistryError(f"no user {user.name}", "not_found")

        await self._db.run(update)

    async def delete(self, user_id: int) -> None:
        """The user and their sessions."""

        def delete() -> None:
            with self._db.engine.begin() as db:
                s = t.user_sessions
                db.execute(s.delete().where(s.c.user_id == user_id))
                db.execute(t.users.delete().where(t.users.c.id == user_id))

        await self._db.run(delete)


class SessionTable:
    """The ``user_sessions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load_live(self, now: int) -> list[SessionRecord]:
        """The sessions neither revoked nor expired; the others are deleted (nothing reads
        them: a revoked session's refresh token is refused whether its row is there or not)."""

        def query() -> list[Any]:
            s = t.user_sessions
            ended = sa.or_(s.c.revoked_at.is_not(None), s.c.expires_at <= now)
            with self._db.engine.begin() as db:
                db.execute(s.delete().where(ended))
                return list(db.execute(sa.select(s)))

        return [
            SessionRecord(
                id=row.id,
                user_id=row.user_id,
                refresh_hash=row.refresh_hash,
                created_at=row.created_at,
                expires_at=row.expires_at,
                used_at=row.used_at,
                address=row.address,
                agent=row.agent,
            )
            for row in await self._db.run(query)
        ]

    async def add(self, session: SessionRecord) -> None:
        def insert() -> None:
            with self._db.engine.begin() as db:
                db.execute(
                    t.user_sessions.insert().values(
                        id=session.id,
                        user_id=session.user_id,
                        refresh_hash=session.refresh_hash,
                        created_at=session.created_at,
                        expires_at=session.expires_at,
                        used_at=session.used_at,
                        address=session.address[:64],
                        agent=session.agent[:256],
                    )
                )

        await self._db.run(insert)

    async def rotate(self, session: SessionRecord) -> None:
        """Keep the session's new refresh hash and when it was used."""

        def update() -> None:
            with self._db.engine.begin() as db:
                s = t.user_sessions
                db.execute(
                    s.update()
                    .where(s.c.id == session.id)
                    .values(refresh_hash=session.refresh_hash, used_at=session.used_at)
                )

        await self._db.run(update)

    async def revoke(self, session_ids: list[str], at: int) -> None:
        if not session_ids:
            return

        def update() -> None:
            with self._db.engine.begin() as db:
                s = t.user_sessions
                db.execute(
                    s.update()
                    .where(s.c.id.in_(session_ids), s.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                )

        await self._db.run(update)
