"""``ApiKeys``: the API keys of integrations, made, listed, revoked, and checked on each
request with no query."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hongshan.errors import HongshanError
from hongshan.identity.api_keys import StoredKey, issue, split
from hongshan.identity.principals import DEFAULT_TENANT, Principal, Role
from hongshan.things.model import RegistryError

DAY = 86_400_000  # ms
USED_EVERY = 60_000  # ms: a key's used_at is written at most once a minute
MAX_NAME = 64
MAX_GROUPS = 100
MAX_ID = 2**31 - 1  # (an INTEGER column's range on PostgreSQL)


class KeyRefused(HongshanError):
    """An API key that was revoked or has expired, sent with a request: 401, saying which."""

    http_status = 401


class BeyondOwnRights(HongshanError):
    """A key asked for with more than its maker may do (a higher role, other groups, another
    tenant): 403."""

    http_status = 403


class KeyStore(Protocol):
    """Where keys are kept (``store.registry.api_keys.KeyTable``)."""

    async def all(self) -> list[StoredKey]: ...

    async def add(self, key: StoredKey) -> StoredKey: ...

    async def revoke(self, key_id: int, at: int) -> StoredKey: ...

    def note_used(self, key_id: int, at: int) -> None: ...


@dataclass(frozen=True, kw_only=True)
class KeySpec:
    """A key asked for. ``groups`` None: those of its maker (none: not limited);
    ``expires_at`` (ms) or ``expires_in_days``, neither: never; ``tenant`` None: the maker's
    (the admin token's: the default tenant)."""

    name: str
    role: Role
    groups: frozenset[str] | None = None
    expires_at: int | None = None
    expires_in_days: float | None = None
    tenant: str | None = None


def _ms() -> int:
    return int(time.time() * 1000)


class ApiKeys:
    """Owns every key in memory — loaded at start, replaced by each change once the registry
    has kept it — so that a request's key is checked with two dict lookups and a hash, and no
    query. Never holds a key's secret: only ``create`` sees one, to hand it back once.

    A key's ``used_at`` is written at most once a minute (``USED_EVERY``), in the background:
    a busy integration is not a write per request."""

    def __init__(self, store: KeyStore, *, clock: Callable[[], int] = _ms) -> None:
        self._store = store
        self._clock = clock
        self._by_lookup: dict[str, StoredKey] = {}
        self._by_id: dict[int, StoredKey] = {}

    async def load(self) -> None:
        for key in await self._store.all():
            self._put(key)

    def principal_of(self, text: str) -> Principal | None:
        """Who the key ``text`` is; None: no key of ours (unknown, or a wrong secret).
        ``KeyRefused`` for one revoked or expired — said only to whoever proves it."""
        parts = split(text)
        if parts is None:
            return None
        lookup, secret = parts
        key = self._by_lookup.get(lookup)
        if key is None or not key.proven_by(secret):
            return None
        now = self._clock()
        refusal = key.refusal(now)
        if refusal is not None:
            raise KeyRefused(refusal)
        if key.used_at is None or now - key.used_at >= USED_EVERY:
            self._put(dataclasses.replace(key, used_at=now))
            self._store.note_used(key.id, now)
        return key.principal()

    async def create(self, by: Principal, spec: KeySpec) -> tuple[StoredKey, str]:
        """The key kept, and its text (to be shown once: it is kept nowhere)."""
        now = self._clock()
        issued = issue()
        key = StoredKey(
            id=0,
            tenant=_tenant(by, spec.tenant),
            name=_name(spec.name),
            lookup=issued.lookup,
            secret_hash=issued.secret_hash,
            role=_role(by, spec.role),
            groups=_groups(by, spec.groups),
            created_by=by.name,
            created_at=now,
            expires_at=_expiry(spec, now),
        )
        kept = await self._store.add(key)
        self._put(kept)
        return kept, issued.text

    def listed(self, by: Principal) -> list[StoredKey]:
        """The keys of ``by``'s tenant (the admin token's: all), oldest first."""
        return [key for key in self._by_id.values() if by.in_tenant(key.tenant)]

    def get(self, by: Principal, key_id: int) -> StoredKey:
        """The key; ``RegistryError`` (404) for none, and for another tenant's alike."""
        key = self._by_id.get(key_id) if 0 < key_id <= MAX_ID else None
        if key is None or not by.in_tenant(key.tenant):
            raise RegistryError(f"no API key {key_id}", "not_found")
        return key

    async def revoke(self, by: Principal, key_id: int) -> StoredKey:
        """The key revoked from now on (it is kept, marked; revoking again changes nothing)."""
        self.get(by, key_id)
        kept = await self._store.revoke(key_id, self._clock())
        self._put(kept)
        return kept

    def _put(self, key: StoredKey) -> None:
        self._by_lookup[key.lookup] = key
        self._by_id[key.id] = key


def _name(name: str) -> str:
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise RegistryError(f"name: an API key's name is 1 to {MAX_NAME} characters", "invalid")
    return name


def _tenant(by: Principal, asked: str | None) -> str:
    if by.tenant is None:
        return asked or DEFAULT_TENANT
    if asked is not None and asked != by.tenant:
        raise BeyondOwnRights(f"tenant: {by.name} makes keys of tenant {by.tenant!r} only")
    return by.tenant


def _role(by: Principal, asked: Role) -> Role:
    if not by.may(asked):
        raise BeyondOwnRights(
            f"role: {by.name} is {by.role.label} and cannot make a key that is {asked.label}"
        )
    return asked


def _groups(by: Principal, asked: frozenset[str] | None) -> frozenset[str] | None:
    if asked is None:
        return by.groups
    if len(asked) > MAX_GROUPS or any(not 0 < len(g) <= 64 for g in asked):
        raise RegistryError(f"groups: at most {MAX_GROUPS} names of 1 to 64 characters", "invalid")
    if by.groups is not None and not asked <= by.groups:
        others = ", ".join(sorted(asked - by.groups))
        raise BeyondOwnRights(f"groups: {by.name} is limited to other groups than {others}")
    return asked


def _expiry(spec: KeySpec, now: int) -> int | None:
    if spec.expires_at is not None and spec.expires_in_days is not None:
        raise RegistryError("give expiresAt or expiresInDays, not both", "invalid")
    if spec.expires_in_days is not None:
        if not 0 < spec.expires_in_days <= 36_500:
            raise RegistryError("expiresInDays: more than 0, at most 36500", "invalid")
        return now + int(spec.expires_in_days * DAY)
    if spec.expires_at is not None and spec.expires_at <= now:
        raise RegistryError("expiresAt: that time has passed", "invalid")
    return spec.expires_at
