"""Users and their logins: ``People``.

A login makes a session (a row of ``user_sessions``) and hands out two tokens: an access token
(``identity.access_tokens``: a JWT naming the user and the session, valid minutes) and a
refresh token (``<session id>.<secret>``, valid days; only the SHA-256 of its secret is kept).
A refresh hands out a new pair and forgets the old refresh token (rotation); a refresh token
presented again after it was rotated is a copy in someone else's hands (OAuth 2.0 Security
BCP, RFC 9700 section 4.14.2): the session is revoked, for the thief and the user alike.

A username's failed logins and lock (``identity.lockout``) are written through to the
registry (``login_lockouts``) and read back at start, so a restart neither lifts a lock nor
starts a fresh count; an address's stay in memory.

Users and live sessions are kept in memory, loaded at start and changed after each write
commits, so ``principal`` — asked on every request — reads no database. Disabling or deleting
a user, or changing their password, revokes their sessions at once: their access tokens name
a session that is no longer there.

A tenant that has an enabled admin keeps one: demoting, disabling or deleting its last enabled
admin is refused (``conflict``), whoever asks — the tenant would be left with nobody to manage
its users (the admin token could, but it is the platform operator's, not the town's). Deleting
them is allowed once they are the tenant's only user: nobody is locked out then, and a tenant
is wound up (deleted) only once it holds no user. The
changes of users are made one at a time (``_changing``), so two admins demoting each other at
once cannot both pass the check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from hongshan.errors import ConfigError, LoginLocked, LoginRefused
from hongshan.identity.access_tokens import AccessTokens
from hongshan.identity.lockout import Lockout, user_key
from hongshan.identity.password_hash import checked_hash, hash_in_pool, verify_password
from hongshan.identity.principals import DEFAULT_TENANT, Principal, Role
from hongshan.store.registry.lockouts import LockoutTable
from hongshan.store.registry.users import SessionRecord, SessionTable, UserRecord, UserTable
from hongshan.things.model import RegistryError

log = logging.getLogger("hongshan.people")

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes anything; a megabyte "password" is a denial of service
MAX_NAME_LENGTH = 64  # the column's
FIRST_ADMIN = "admin"
_REFUSED = "wrong username or password"


@dataclass(frozen=True, kw_only=True, slots=True)
class Login:
    """What a login or a refresh hands out."""

    user: UserRecord
    session_id: str
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token is valid


class _Unchanged(enum.Enum):
    UNCHANGED = 0


UNCHANGED = _Unchanged.UNCHANGED
"""``People.change``'s groups when they stay as they are (None is a change: to no limit)."""


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RegistryError(
            f"password: at least {MIN_PASSWORD_LENGTH} characters (a passphrase of a few words "
            "is easy to remember)",
            "invalid",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise RegistryError(f"password: at most {MAX_PASSWORD_LENGTH} characters", "invalid")


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable() or name != name.strip():
        raise RegistryError(
            f"name: 1 to {MAX_NAME_LENGTH} printable characters, no surrounding spaces", "invalid"
        )


def _enabled_admin(user: UserRecord) -> bool:
    return user.role is Role.ADMIN and not user.disabled


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class People:
    """Owns the users and their sessions, in memory and in the registry's tables; answers who
    an access token is. Never speaks HTTP: cookies, headers and problem answers are the API's.
    Scoping to a tenant (who may see whom) is the caller's; here a name is unique across
    tenants."""

    def __init__(
        self,
        users: UserTable,
        sessions: SessionTable,
        tokens: AccessTokens,
        lockout: Lockout,
        lockouts: LockoutTable,
        *,
        refresh_lifetime: float,
        clock: Callable[[], float],
    ) -> None:
        """``lockout`` counts on ``clock`` too (wall time: its user locks are kept in
        ``lockouts`` and read back after a restart)."""
        self._users_table = users
        self._sessions_table = sessions
        self._tokens = tokens
        self._lockout = lockout
        self._lockouts_table = lockouts
        self._refresh_lifetime = refresh_lifetime
        self._clock = clock
        self._users: dict[int, UserRecord] = {}
        self._by_name: dict[str, int] = {}
        self._sessions: dict[str, SessionRecord] = {}
        # compared against when the name is no user's, so that a wrong name takes as long
        # as a wrong password (no user enumeration by timing)
        self._decoy = ""
        self._changing = asyncio.Lock()  # (a check of the last admin and its write, together)

    @property
    def refresh_seconds(self) -> int:
        """How long a session lives (its refresh token's cookie)."""
        return int(self._refresh_lifetime)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def load(self) -> None:
        for user in await self._users_table.load():
            self._remember(user)
        for session in await self._sessions_table.load_live(self._now_ms()):
            self._sessions[session.id] = session
        window = self._lockout.policy.window
        self._lockout.restore(await self._lockouts_table.load(self._clock(), window))
        log.info("people: %d users, %d live sessions", len(self._users), len(self._sessions))

    async def first_admin(
        self, password: str | None, password_hash: str | None = None
    ) -> str | None:
        """With no user at all, make ``admin`` (an admin of the default tenant) with
        ``password``, or with ``password_hash`` (an argon2id hash made elsewhere: the
        password never reaches the platform, and nothing is hashed at start), or with a
        generated one, which is returned (to be said once); None when there were users
        already or the password was given."""
        if self._users:
            return None
        if password_hash is not None:
            try:
                hashed = checked_hash(password_hash)
            except ValueError as exc:
                raise ConfigError(
                    f"admin_password_hash (HONGSHAN_ADMIN_PASSWORD_HASH): {exc}"
                ) from None
            await self._keep(DEFAULT_TENANT, FIRST_ADMIN, hashed, Role.ADMIN, None)
            return None
        generated = None
        if password is None:
            password = generated = secrets.token_urlsafe(15)
        try:
            await self.add(DEFAULT_TENANT, FIRST_ADMIN, password, Role.ADMIN, None)
        except RegistryError as exc:
            raise ConfigError(f"admin_password (HONGSHAN_ADMIN_PASSWORD): {exc}") from None
        return generated

    # -- users ------------------------------------------------------------------------------

    def list_users(self, tenant: str | None = None) -> list[UserRecord]:
        """Every user (of ``tenant``, unless None), by name."""
        return sorted(
            (u for u in self._users.values() if tenant is None or u.tenant == tenant),
            key=lambda user: user.name,
        )

    def get(self, name: str) -> UserRecord:
        user_id = self._by_name.get(name)
        if user_id is None:
            raise RegistryError(f"no user {name}", "not_found")
        return self._users[user_id]

    async def add(
        self, tenant: str, name: str, password: str, role: Role, groups: frozenset[str] | None
    ) -> UserRecord:
        _check_name(name)
        check_password(password)
        if name in self._by_name:  # (before the hash: a conflict costs no argon2)
            raise RegistryError(f"a user is named {name} already", "conflict")
        return await self._keep(tenant, name, await hash_in_pool(password), role, groups)

    async def _keep(
        self,
        tenant: str,
        name: str,
        password_hash: str,
        role: Role,
        groups: frozenset[str] | None,
    ) -> UserRecord:
        """A new user with their password's hash, kept and remembered."""
        if name in self._by_name:
            raise RegistryError(f"a user is named {name} already", "conflict")
        user = await self._users_table.add(
            tenant=tenant,
            name=name,
            password_hash=password_hash,
            role=role,
            groups=groups,
            at=self._now_ms(),
        )
        self._remember(user)
        return user

    async def change(
        self,
        name: str,
        *,
        role: Role | None = None,
        groups: frozenset[str] | _Unchanged | None = UNCHANGED,
        disabled: bool | None = None,
    ) -> UserRecord:
        """Role, groups (None: not limited), disabled; disabling ends the user's sessions.
        ``RegistryError`` (conflict) for a change that leaves the tenant with no enabled
        admin."""
        async with self._changing:
            user = self.get(name)
            changed = dataclasses.replace(
                user,
                role=user.role if role is None else role,
                groups=user.groups if groups is UNCHANGED else groups,
                disabled=user.disabled if disabled is None else disabled,
                updated_at=self._now_ms(),
            )
            if not _enabled_admin(changed):
                self._not_the_last_admin(
                    user, "demoted" if changed.role is not user.role else "disabled"
                )
            await self._users_table.save(changed)
            self._remember(changed)
        if changed.disabled and not user.disabled:
            await self._end_sessions(user.id)
        return changed

    async def passwd(self, name: str, password: str, *, old: str | None = None) -> UserRecord:
        """A new password (``old`` checked when given); every session of the user ends."""
        user = self.get(name)
        check_password(password)
        if old is not None and not await verify_password(user.password_hash, old):
            raise RegistryError("oldPassword: that is not the current password", "invalid")
        now = self._now_ms()
        changed = dataclasses.replace(
            user,
            password_hash=await hash_in_pool(password),
            updated_at=now,
            password_changed_at=now,
        )
        await self._users_table.save(changed)
        self._remember(changed)
        await self._end_sessions(user.id)
        return changed

    async def delete(self, name: str) -> None:
        """``RegistryError`` (conflict) for the tenant's last enabled admin, unless they
        are its only user."""
        async with self._changing:
            user = self.get(name)
            if any(u.tenant == user.tenant and u.id != user.id for u in self._users.values()):
                self._not_the_last_admin(user, "deleted")
            await self._users_table.delete(user.id)
            self._users.pop(user.id, None)
            self._by_name.pop(user.name, None)
        for session_id in [s.id for s in self._sessions.values() if s.user_id == user.id]:
            del self._sessions[session_id]

    def _not_the_last_admin(self, user: UserRecord, change: str) -> None:
        """``RegistryError`` (conflict) when ``user`` is the only enabled admin of their
        tenant (and so may not be ``change``d)."""
        if not _enabled_admin(user):
            return
        others = [
            u
            for u in self._users.values()
            if u.tenant == user.tenant and u.id != user.id and _enabled_admin(u)
        ]
        if not others:
            raise RegistryError(
                f"{user.name} is the last enabled admin of tenant {user.tenant} and may not be "
                f"{change}: make another user admin first (the tenant would be left with "
                "nobody to manage its users)",
                "conflict",
            )

    def _remember(self, user: UserRecord) -> None:
        self._users[user.id] = user
        self._by_name[user.name] = user.id

    # -- logins -----------------------------------------------------------------------------

    async def login(self, name: str, password: str, *, address: str, agent: str) -> Login:
        """A new session; ``LoginLocked`` while the name or the address is locked out,
        ``LoginRefused`` for a wrong name or password, or a disabled user (all said alike)."""
        retry_after = self._lockout.retry_after(name, address)
        if retry_after is not None:
            raise LoginLocked(retry_after)
        user_id = self._by_name.get(name)
        user = None if user_id is None else self._users[user_id]
        if user is None and not self._decoy:  # (made once, when first needed: not at start)
            self._decoy = await hash_in_pool(secrets.token_urlsafe(16))
        hashed = self._decoy if user is None else user.password_hash
        right = await verify_password(hashed, password[:MAX_PASSWORD_LENGTH])
        if user is None or not right or user.disabled:
            self._lockout.failed(name, address)
            await self._keep_lock(name)
            raise LoginRefused(_REFUSED)
        if self._lockout.user_lock(name) is not None:
            self._lockout.succeeded(name)
            await self._lockouts_table.forget(user_key(name))
        now = self._now_ms()
        secret = secrets.token_urlsafe(32)
        session = SessionRecord(
            id=secrets.token_urlsafe(18),
            user_id=user.id,
            refresh_hash=_digest(secret),
            created_at=now,
            expires_at=now + int(self._refresh_lifetime * 1000),
            used_at=now,
            address=address,
            agent=agent,
        )
        await self._sessions_table.add(session)
        self._forget_expired(now)
        self._sessions[session.id] = session
        return self._handed_out(user, session, secret)

    async def _keep_lock(self, name: str) -> None:
        """The name's failures and lock, written through: a restart finds them (an
        address's are not kept)."""
        lock = self._lockout.user_lock(name)
        if lock is not None:
            window = self._lockout.policy.window
            await self._lockouts_table.keep(lock, now=self._clock(), window=window)

    async def refresh(self, refresh_token: str) -> Login:
        """A new pair for a session's current refresh token; its previous one, presented
        again, revokes the session (module docstring)."""
        session_id, _, secret = refresh_token.partition(".")
        session = self._sessions.get(session_id)
        now = self._now_ms()
        if session is None or session.expires_at <= now:
            raise LoginRefused("the refresh token is no session's (ended, or never): log in")
        if not hmac.compare_digest(session.refresh_hash, _digest(secret)):
            log.warning(
                "people: a refresh token of session %s… was used again after it was rotated; "
                "the session is revoked (the token may have been stolen)",
                session_id[:6],
            )
            del self._sessions[session_id]
            await self._sessions_table.revoke([session_id], now)
            raise LoginRefused("this refresh token was used already: the session is ended")
        user = self._users[session.user_id]
        new_secret = secrets.token_urlsafe(32)
        # in memory before the write's await: a second refresh with the same token, racing
        # this one, already finds it rotated
        rotated = dataclasses.replace(session, refresh_hash=_digest(new_secret), used_at=now)
        self._sessions[session_id] = rotated
        await self._sessions_table.rotate(rotated)
        return self._handed_out(user, rotated, new_secret)

    async def logout(self, access_token: str) -> None:
        """End the session the token names (nothing when it names none)."""
        claims = self._tokens.read(access_token)
        if claims is None or self._sessions.pop(claims.session_id, None) is None:
            return
        await self._sessions_table.revoke([claims.session_id], self._now_ms())

    def principal(self, access_token: str) -> Principal | None:
        """Who the access token is, read from memory (their role and groups now); None for a
        token that is not valid, expired, or names an ended session or a disabled user."""
        claims = self._tokens.read(access_token)
        if claims is None:
            return None
        session = self._sessions.get(claims.session_id)
        if session is None or session.user_id != claims.user_id:
            return None
        if session.expires_at <= self._now_ms():
            return None
        user = self._users.get(claims.user_id)
        if user is None or user.disabled:
            return None
        return Principal(
            kind="user",
            name=user.name,
            role=user.role,
            tenant=user.tenant,
            groups=user.groups,
            id=user.id,
        )

    def _handed_out(self, user: UserRecord, session: SessionRecord, secret: str) -> Login:
        return Login(
            user=user,
            session_id=session.id,
            access_token=self._tokens.issue(user.id, session.id),
            refresh_token=f"{session.id}.{secret}",
            expires_in=int(self._tokens.lifetime),
        )

    async def _end_sessions(self, user_id: int) -> None:
        ended = [s.id for s in self._sessions.values() if s.user_id == user_id]
        for session_id in ended:
            del self._sessions[session_id]
        await self._sessions_table.revoke(ended, self._now_ms())

    def _forget_expired(self, now: int) -> None:
        """Sessions past their lifetime are dropped from memory (their rows go at the next
        start: ``SessionTable.load_live``)."""
        for session_id in [s.id for s in self._sessions.values() if s.expires_at <= now]:
            del self._sessions[session_id]
