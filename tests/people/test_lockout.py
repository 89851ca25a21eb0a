"""Failed logins lock a name, then an address, out for a while (``identity.lockout`` on a
fake clock; and over real HTTP: 429 with Retry-After, the same for a name that is no user's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from people_api import ADMIN_PASSWORD, base_url

from broker_peers import eventually
from hongshan.identity.lockout import Lockout, LockoutPolicy

POLICY = LockoutPolicy(per_user=5, per_address=20, window=900, lock=900)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_within_the_window_lock_the_name_for_the_lock_time() -> None:
    clock = Clock()
    lockout = Lockout(POLICY, clock)
    for _ in range(4):
        lockout.failed("ana", "10.0.0.1")
    assert lockout.retry_after("ana", "10.0.0.2") is None
    lockout.failed("ana", "10.0.0.2")
    assert lockout.retry_after("ana", "10.0.0.3") == 900
    assert lockout.retry_after("bo", "10.0.0.1") is None  # the addresses are not locked
    clock.now += 600
    assert lockout.retry_after("ana", "10.0.0.3") == 300
    clock.now += 300
    assert lockout.retry_after("ana", "10.0.0.3") is None


def test_failures_older_than_the_window_and_a_success_are_forgotten() -> None:
    clock = Clock()
    lockout = Lockout(POLICY, clock)
    for _ in range(4):
        lockout.failed("ana", "10.0.0.1")
    clock.now += 901
    lockout.failed("ana", "10.0.0.1")
    assert lockout.retry_after("ana", "10.0.0.1") is None
    for _ in range(3):
        lockout.failed("ana", "10.0.0.1")
    lockout.succeeded("ana")
    lockout.failed("ana", "10.0.0.1")
    assert lockout.retry_after("ana", "10.0.0.1") is None


def test_twenty_failures_from_one_address_lock_the_address() -> None:
    clock = Clock()
    lockout = Lockout(POLICY, clock)
    for number in range(20):
        lockout.failed(f"name-{number}", "10.0.0.9")
    assert lockout.retry_after("anyone", "10.0.0.9") == 900
    assert lockout.retry_after("anyone", "10.0.0.8") is None


def test_a_name_s_count_and_lock_handed_back_are_kept_until_their_time() -> None:
    clock = Clock()
    before = Lockout(POLICY, clock)
    for _ in range(4):
        before.failed("ana", "10.0.0.1")
    for _ in range(5):
        before.failed("bo", "10.0.0.2")
    kept = [before.user_lock("ana"), before.user_lock("bo")]
    assert before.user_lock("cy") is None
    assert all(lock is not None and "ana" not in lock.key for lock in kept), "no name is kept"
    clock.now += 100
    after = Lockout(POLICY, clock)  # (as after a restart)
    after.restore(lock for lock in kept if lock is not None)
    assert after.retry_after("bo", "10.0.0.9") == 800, "the lock goes on where it was"
    assert after.retry_after("ana", "10.0.0.9") is None
    after.failed("ana", "10.0.0.9")  # the fifth, counted with the four kept
    assert after.retry_after("ana", "10.0.0.9") == 900
    clock.now += 800
    assert after.retry_after("bo", "10.0.0.9") is None
    late = Lockout(POLICY, clock)  # failures past the window and a lock over are dropped
    late.restore(lock for lock in kept if lock is not None)
    late.failed("ana", "10.0.0.9")
    assert late.retry_after("ana", "10.0.0.9") is None
    assert late.user_lock("bo") is None


@pytest.fixture
def server(make_server: Any) -> Any:
    return make_server(admin_password=ADMIN_PASSWORD)


def attempt(server: Any, name: str, password: str) -> httpx.Response:
    return httpx.post(
        base_url(server) + "/api/auth/login", json={"username": name, "password": password}
    )


def test_a_locked_name_is_answered_429_alike_whether_it_is_a_user_or_not(server: Any) -> None:
    for name in ("admin", "nobody"):
        for _ in range(5):
            assert attempt(server, name, "wrong password!").status_code == 401
    admin, nobody = attempt(server, "admin", ADMIN_PASSWORD), attempt(server, "nobody", "x" * 10)
    for locked in (admin, nobody):
        assert locked.status_code == 429, locked.text
        assert locked.headers["content-type"].startswith("application/problem+json")
        assert 890 <= int(locked.headers["retry-after"]) <= 900
    assert admin.json()["detail"] == nobody.json()["detail"]


def test_an_address_with_too_many_failures_is_locked_for_every_name(make_server: Any) -> None:
    server = make_server(admin_password=ADMIN_PASSWORD, login_max_failures_per_address=8)
    for number in range(8):
        assert attempt(server, f"guess-{number}", "wrong password!").status_code == 401
    locked = attempt(server, "admin", ADMIN_PASSWORD)  # the right password, from there
    assert locked.status_code == 429 and "retry-after" in locked.headers


def test_a_locked_name_stays_locked_across_a_restart_until_its_time(make_server: Any) -> None:
    lock_minutes = 0.1  # six seconds: waited for below
    server = make_server(admin_password=ADMIN_PASSWORD, login_lockout_minutes=lock_minutes)
    for name in ("admin", "nobody"):
        for _ in range(5):
            assert attempt(server, name, "wrong password!").status_code == 401
    assert attempt(server, "admin", ADMIN_PASSWORD).status_code == 429
    server.stop()
    again = make_server(login_lockout_minutes=lock_minutes)  # (the same data directory)
    admin, nobody = attempt(again, "admin", ADMIN_PASSWORD), attempt(again, "nobody", "x" * 10)
    for locked in (admin, nobody):  # a user's name and one that is not, alike
        assert locked.status_code == 429, locked.text
        assert 1 <= int(locked.headers["retry-after"]) <= 6
    eventually(
        lambda: attempt(again, "admin", ADMIN_PASSWORD).status_code == 200,
        timeout=30,
        what="the lock over",
    )
