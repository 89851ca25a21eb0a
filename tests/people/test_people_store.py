"""``People`` on the registry's tables, SQLite and PostgreSQL, on a fake clock: users kept
across an open, sessions that expire, rotate and end, names taken and tenants missing."""

from __future__ import annotations

import secrets

import pytest

from hongshan.errors import ConfigError, LoginLocked, LoginRefused
from hongshan.identity.access_tokens import AccessTokens
from hongshan.identity.lockout import Lockout, LockoutPolicy
from hongshan.identity.password_hash import hash_password
from hongshan.identity.principals import Role
from hongshan.services.people.users import People
from hongshan.store.registry.store import SQLRegistry
from hongshan.things.model import RegistryError

PASSWORD = "a long password 1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def people_of(registry: SQLRegistry, clock: Clock) -> People:
    people = People(
        registry.users,
        registry.sessions,
        AccessTokens(secrets.token_bytes(32), 900, clock),
        Lockout(LockoutPolicy(), clock),
        registry.lockouts,
        refresh_lifetime=7 * 86400,
        clock=clock,
    )
    await people.load()
    return people


async def test_users_and_sessions_are_kept_and_read_back(registry: SQLRegistry) -> None:
    clock = Clock()
    people = await people_of(registry, clock)
    await people.add("default", "ana", PASSWORD, Role.OPERATOR, frozenset({"north"}))
    with pytest.raises(RegistryError) as taken:
        await people.add("default", "ana", PASSWORD, Role.VIEWER, None)
    assert taken.value.kind == "conflict"
    with pytest.raises(RegistryError) as no_tenant:
        await people.add("south", "bo", PASSWORD, Role.VIEWER, None)
    assert no_tenant.value.kind == "invalid"
    login = await people.login("ana", PASSWORD, address="10.0.0.1", agent="curl")
    again = await people_of(registry, clock)  # (as after a restart, with the same key)
    assert again.get("ana").groups == frozenset({"north"})
    renewed = await again.refresh(login.refresh_token)
    assert renewed.session_id == login.session_id
    with pytest.raises(LoginRefused):
        await again.refresh(login.refresh_token)  # spent: the session ends
    with pytest.raises(LoginRefused):
        await again.refresh(renewed.refresh_token)
    assert again.principal(renewed.access_token) is None


async def test_access_tokens_and_sessions_expire_on_the_clock(registry: SQLRegistry) -> None:
    clock = Clock()
    people = await people_of(registry, clock)
    await people.add("default", "ana", PASSWORD, Role.VIEWER, None)
    login = await people.login("ana", PASSWORD, address="", agent="")
    principal = people.principal(login.access_token)
    assert principal is not None and (principal.kind, principal.name) == ("user", "ana")
    clock.now += 899
    assert people.principal(login.access_token) is not None
    clock.now += 1
    assert people.principal(login.access_token) is None  # the access token expired
    renewed = await people.refresh(login.refresh_token)
    assert people.principal(renewed.access_token) is not None
    clock.now += 7 * 86400
    with pytest.raises(LoginRefused):
        await people.refresh(renewed.refresh_token)  # the session's lifetime is over
    assert await registry.sessions.load_live(int(clock.now * 1000)) == []


async def test_a_name_s_failures_and_lock_outlive_a_restart(registry: SQLRegistry) -> None:
    clock = Clock()
    people = await people_of(registry, clock)
    await people.add("default", "ana", PASSWORD, Role.VIEWER, None)
    for name in ("ana", "ghost"):  # a user's name and one that is no user's
        for _ in range(5):
            with pytest.raises(LoginRefused):
                await people.login(name, "wrong password!", address=name, agent="")
    await people.add("default", "bo", PASSWORD, Role.VIEWER, None)
    for _ in range(4):
        with pytest.raises(LoginRefused):
            await people.login("bo", "wrong password!", address="bo", agent="")
    clock.now += 60
    again = await people_of(registry, clock)  # (as after a restart)
    for name in ("ana", "ghost"):
        with pytest.raises(LoginLocked) as locked:
            await again.login(name, PASSWORD, address="elsewhere", agent="")
        assert locked.value.retry_after == 900 - 60
    with pytest.raises(LoginRefused):
        await again.login("bo", "wrong password!", address="bo", agent="")  # the fifth
    with pytest.raises(LoginLocked):
        await again.login("bo", PASSWORD, address="elsewhere", agent="")
    clock.now += 900
    later = await people_of(registry, clock)
    await later.login("ana", PASSWORD, address="elsewhere", agent="")
    await later.login("bo", PASSWORD, address="elsewhere", agent="")
    assert await registry.lockouts.load(clock.now, 900) == [], "successes and stale rows go"


async def test_the_first_admin_is_made_from_a_hash_given_and_a_bad_one_refused(
    registry: SQLRegistry,
) -> None:
    people = await people_of(registry, Clock())
    for bad, said in [
        (PASSWORD, "expected an argon2id hash"),
        ("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", "expected an argon2id hash"),
        ("$argon2id$v=19$m=8,t=1", "not a whole argon2id hash"),
    ]:
        with pytest.raises(ConfigError, match=rf"admin_password_hash .*{said}"):
            await people.first_admin(None, bad)
    assert people.list_users() == []  # (nothing made of a refused hash)

    assert await people.first_admin(None, hash_password(PASSWORD)) is None  # (nothing to say)
    admin = people.get("admin")
    assert (admin.role, admin.tenant) == (Role.ADMIN, "default")
    await people.login("admin", PASSWORD, address="", agent="")
    with pytest.raises(LoginRefused):
        await people.login("admin", PASSWORD + "!", address="", agent="")
    assert await people.first_admin(None, hash_password("another password")) is None
    await people.login("admin", PASSWORD, address="", agent="")  # (made once, not again)
