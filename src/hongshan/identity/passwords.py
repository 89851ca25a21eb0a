"""The users file: one ``username:hash`` line per user, the hash argon2id (``hongshan passwd``),
or ``username:hash:tenant`` for a user of one tenant (a town's integration account), held to
that tenant's topics (``identity.tenant_topics``); a user without one is the platform's.

Argon2 (``identity.password_hash``) is deliberately slow (tens of milliseconds), and a town's
devices reconnect all at once after a power cut. A password that has been verified once is
remembered as a keyed BLAKE2b digest (with a per-process random key), so a reconnect costs
microseconds while a stolen memory dump still reveals no password.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

import msgspec

from hongshan.broker.auth import Credentials, Verdict
from hongshan.errors import AccessFileError
from hongshan.identity.password_hash import (
    MAX_PENDING_VERIFICATIONS,
    hash_password,
    verify_password,
)
from hongshan.mqtt.reason_codes import ReasonCode

_REFUSED_REMEMBERED = 4096


# a tenant's id, as the API makes them (POST /api/tenants)
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class UserEntry(msgspec.Struct, frozen=True):
    """One line of the users file: the password's hash, and the user's tenant (None: the
    platform's, not held to any tenant's topics)."""

    hashed: str
    tenant: str | None = None


def read_entries(path: str | os.PathLike[str]) -> dict[str, UserEntry]:
    """Every user of the users file, by name."""
    users: dict[str, UserEntry] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessFileError(f"cannot read users file {path}: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition(":")
        hashed, has_tenant, tenant = rest.partition(":")  # (an argon2 hash holds no ':')
        if not sep or not name or not hashed.startswith("$argon2"):
            raise AccessFileError(
                f"{path}:{number}: expected 'username:$argon2id$...' or "
                "'username:$argon2id$...:tenant'"
            )
        if has_tenant and not _TENANT.fullmatch(tenant):
            raise AccessFileError(
                f"{path}:{number}: {tenant!r} is not a tenant's id (lower-case letters, "
                "digits, '-' and '_', at most 64, starting with a letter or digit)"
            )
        users[name] = UserEntry(hashed, tenant or None)
    return users


def read_users(path: str | os.PathLike[str]) -> dict[str, str]:
    """Every user's password hash, by name."""
    return {name: entry.hashed for name, entry in read_entries(path).items()}


class Keep(enum.Enum):
    """``set_password``'s tenant when none is said: the user's own, as it was."""

    TENANT = "the tenant it had"


KEEP = Keep.TENANT


def set_password(
    path: str | os.PathLike[str],
    username: str,
    password: str,
    *,
    tenant: str | Keep | None = KEEP,
) -> None:
    """Add or replace a user in the users file (created, mode 0600, if missing). ``tenant``:
    the user's tenant, None for the platform's; by default a user keeps the one it had (a new
    user: none)."""
    if not username or ":" in username:
        raise AccessFileError("a username must be non-empty and contain no ':'")
    if isinstance(tenant, str) and not _TENANT.fullmatch(tenant):
        raise AccessFileError(
            f"{tenant!r} is not a tenant's id (lower-case letters, digits, '-' and '_')"
        )
    file = Path(path)
    users = read_entries(file) if file.exists() else {}
    if isinstance(tenant, Keep):
        known = users.get(username)
        tenant = None if known is None else known.tenant
    users[username] = UserEntry(hash_password(password), tenant)
    _write_users(file, users)


def delete_user(path: str | os.PathLike[str], username: str) -> bool:
    file = Path(path)
    users = read_entries(file)
    if users.pop(username, None) is None:
        return False
    _write_users(file, users)
    return True


def _write_users(file: Path, users: dict[str, UserEntry]) -> None:
    """Replace the users file atomically, readable by its owner only."""
    text = "".join(
        f"{name}:{entry.hashed}\n"
        if entry.tenant is None
        else f"{name}:{entry.hashed}:{entry.tenant}\n"
        for name, entry in users.items()
    )
    temporary = file.with_name(file.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, file)


class PasswordFileAuthenticator:
    """Authenticates CONNECTs against a users file; ``allow_anonymous`` admits clients that send
    no username at all (never a wrong password)."""

    def __init__(self, users: dict[str, str], *, allow_anonymous: bool = False) -> None:
        self._users = users
        self._allow_anonymous = allow_anonymous
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}  # username -> (hash, digest)
        # (username, digest) of recent wrong passwords: a client retrying one in a loop costs
        # a dict lookup, not an argon2 verification
        self._refused: set[tuple[str, bytes]] = set()
        self._pending = 0

    def _digest(self, password: bytes) -> bytes:
        return hashlib.blake2b(password, key=self._key, digest_size=32).digest()

    async def authenticate(self, credentials: Credentials) -> Verdict:
        username, password = credentials.username, credentials.password
        if username is None:
            if self._allow_anonymous and password is None:
                return Verdict()
            return Verdict(reason_code=ReasonCode.NOT_AUTHORIZED)
        hashed = self._users.get(username)
        if hashed is None or password is None:
            return Verdict(reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        digest = self._digest(password)
        known = self._verified.get(username)
        if known is not None and known[0] == hashed and hmac.compare_digest(known[1], digest):
            return Verdict(username=username)
        if (username, digest) in self._refused:
            return Verdict(reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        if self._pending >= MAX_PENDING_VERIFICATIONS:
            # More work queued than the pool can do within a connect timeout: say so at once
            # (0x89, 3.1.1: server unavailable) rather than keep the client waiting.
            return Verdict(reason_code=ReasonCode.SERVER_BUSY)
        self._pending += 1
        try:
            ok = await verify_password(hashed, password)
        finally:
            self._pending -= 1
        if not ok:
            if len(self._refused) >= _REFUSED_REMEMBERED:
                self._refused.clear()
            self._refused.add((username, digest))
            return Verdict(reason_code=ReasonCode.BAD_USER_NAME_OR_PASSWORD)
        self._verified[username] = (hashed, digest)
        return Verdict(username=username)
