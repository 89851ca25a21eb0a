"""The users file and password authentication."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import Result

from hongshan.broker.auth import Credentials
from hongshan.errors import AccessFileError
from hongshan.identity.password_hash import MAX_PENDING_VERIFICATIONS
from hongshan.identity.passwords import (
    PasswordFileAuthenticator,
    delete_user,
    read_entries,
    read_users,
    set_password,
)
from hongshan.mqtt.reason_codes import ReasonCode


def creds(username: str | None, password: bytes | None) -> Credentials:
    return Credentials(client_id="c", username=username, password=password, address="")


async def test_authenticate(tmp_path: Path) -> None:
    file = tmp_path / "users"
    set_password(file, "lamp", "s3cret")
    set_password(file, "meter", "other")
    assert file.stat().st_mode & 0o777 == 0o600
    auth = PasswordFileAuthenticator(read_users(file))
    assert (await auth.authenticate(creds("lamp", b"s3cret"))).reason_code == 0
    # the second time comes from the verified cache and must still check the password
    assert (await auth.authenticate(creds("lamp", b"s3cret"))).reason_code == 0
    bad = ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert (await auth.authenticate(creds("lamp", b"wrong"))).reason_code == bad
    assert (await auth.authenticate(creds("nobody", b"s3cret"))).reason_code == bad
    assert (await auth.authenticate(creds("lamp", None))).reason_code == bad
    assert (await auth.authenticate(creds(None, None))).reason_code == ReasonCode.NOT_AUTHORIZED


async def test_anonymous_needs_no_username_at_all(tmp_path: Path) -> None:
    auth = PasswordFileAuthenticator({}, allow_anonymous=True)
    assert (await auth.authenticate(creds(None, None))).reason_code == 0
    assert (await auth.authenticate(creds("x", b"y"))).reason_code != 0


def test_delete_and_bad_file(tmp_path: Path) -> None:
    file = tmp_path / "users"
    set_password(file, "a", "1")
    assert delete_user(file, "a")
    assert not delete_user(file, "a")
    file.write_text("a:plaintext\n")
    with pytest.raises(AccessFileError, match="users:1"):
        read_users(file)
    with pytest.raises(AccessFileError):
        set_password(file, "bad:name", "x")


async def test_a_user_may_have_a_tenant_kept_through_a_new_password(tmp_path: Path) -> None:
    file = tmp_path / "users"
    set_password(file, "platform", "p")
    set_password(file, "north-app", "1", tenant="north")
    set_password(file, "north-app", "2")  # a new password keeps the tenant
    entries = read_entries(file)
    assert entries["platform"].tenant is None
    assert entries["north-app"].tenant == "north"
    assert file.read_text().splitlines()[0].count(":") == 1  # the platform's line, as before
    assert file.read_text().splitlines()[1].endswith(":north")
    auth = PasswordFileAuthenticator(read_users(file))
    assert (await auth.authenticate(creds("north-app", b"2"))).reason_code == 0
    set_password(file, "north-app", "2", tenant=None)
    assert read_entries(file)["north-app"].tenant is None


@pytest.mark.parametrize("tenant", ["North", "", "a/b", "a:b", "-x", "x" * 65])
def test_a_tenant_that_is_no_tenant_id_is_refused(tmp_path: Path, tenant: str) -> None:
    file = tmp_path / "users"
    set_password(file, "a", "1")
    hashed = read_users(file)["a"]
    file.write_text(f"a:{hashed}:{tenant}\n")
    with pytest.raises(AccessFileError, match="users:1"):
        read_entries(file)
    if tenant:
        with pytest.raises(AccessFileError, match="tenant"):
            set_password(file, "b", "1", tenant=tenant)


async def test_a_burst_beyond_the_pool_is_told_the_server_is_busy(tmp_path: Path) -> None:
    file = tmp_path / "users"
    set_password(file, "lamp", "s3cret")
    auth = PasswordFileAuthenticator(read_users(file))
    burst = MAX_PENDING_VERIFICATIONS + 20
    verdicts = await asyncio.gather(
        *(auth.authenticate(creds("lamp", b"wrong-%d" % i)) for i in range(burst))
    )
    codes = [v.reason_code for v in verdicts]
    assert codes.count(ReasonCode.SERVER_BUSY) == 20
    assert codes.count(ReasonCode.BAD_USER_NAME_OR_PASSWORD) == MAX_PENDING_VERIFICATIONS


async def test_a_repeated_wrong_password_is_refused_without_hashing(tmp_path: Path) -> None:
    file = tmp_path / "users"
    set_password(file, "lamp", "s3cret")
    auth = PasswordFileAuthenticator(read_users(file))
    bad = ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert (await auth.authenticate(creds("lamp", b"guess"))).reason_code == bad
    auth._pending = MAX_PENDING_VERIFICATIONS  # a new verification would now be refused as busy
    assert (await auth.authenticate(creds("lamp", b"guess"))).reason_code == bad


def test_hongshan_passwd_gives_takes_and_keeps_a_tenant(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hongshan.cli import main

    file = str(tmp_path / "users")

    def passwd(*args: str) -> Result:
        return CliRunner().invoke(main, ["passwd", file, "app", "--password", "pw", *args])

    assert passwd("--tenant", "north").exit_code == 0
    assert read_entries(file)["app"].tenant == "north"
    assert passwd().exit_code == 0  # a new password: the tenant kept
    assert read_entries(file)["app"].tenant == "north"
    refused = passwd("--tenant", "North Town")
    assert refused.exit_code != 0 and "not a tenant's id" in refused.output
    assert read_entries(file)["app"].tenant == "north"
    assert passwd("--tenant", "").exit_code == 0  # the platform's again
    assert read_entries(file)["app"].tenant is None
