"""API keys of integrations, pure: what a key looks like, how it is kept and checked.

A key is ``hsk_<lookup>_<secret>``: ``lookup`` (12 URL-safe characters) finds its row and is
no secret; ``secret`` (32 random bytes, URL-safe) proves it. Only the SHA-256 of the secret is
kept: a key is random, so a fast hash is as good as a slow one and costs a request nothing
(a password needs argon2 because people choose guessable ones). The lookup has a fixed length
because URL-safe text holds ``_`` itself: the key is cut by position, not by its underscores.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from hongshan.identity.principals import Principal, Role

PREFIX = "hsk_"
LOOKUP_LENGTH = 12
SECRET_BYTES = 32
_SECRET_AT = len(PREFIX) + LOOKUP_LENGTH + 1  # after "hsk_", the lookup and "_"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key as made: ``text`` is shown once, to whoever asked for it, and never kept."""

    text: str
    lookup: str
    secret_hash: str


def issue() -> IssuedKey:
    lookup = secrets.token_urlsafe(LOOKUP_LENGTH * 3 // 4)  # (12 characters: 9 bytes)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedKey(f"{PREFIX}{lookup}_{secret}", lookup, hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split(text: str) -> tuple[str, str] | None:
    """(lookup, secret) of a key's text; None when the text is no key's shape."""
    if not text.startswith(PREFIX) or len(text) <= _SECRET_AT or text[_SECRET_AT - 1] != "_":
        return None
    return text[len(PREFIX) : _SECRET_AT - 1], text[_SECRET_AT:]


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredKey:
    """A key as the registry keeps it (never its secret). ``groups`` None: not limited to
    groups. Times are ms since the epoch; ``expires_at`` None: never."""

    id: int
    tenant: str
    name: str
    lookup: str
    secret_hash: str
    role: Role
    groups: frozenset[str] | None
    created_by: str
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    used_at: int | None = None

    def proven_by(self, secret: str) -> bool:
        return hmac.compare_digest(hash_secret(secret).encode(), self.secret_hash.encode())

    def refusal(self, now: int) -> str | None:
        """Why the key opens nothing at ``now`` (revoked, expired); None: it is good."""
        if self.revoked_at is not None:
            return f"the API key {self.name!r} was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return f"the API key {self.name!r} has expired"
        return None

    def principal(self) -> Principal:
        return Principal(
            kind="key",
            name=self.name,
            role=self.role,
            tenant=self.tenant,
            groups=self.groups,
            id=self.id,
        )
