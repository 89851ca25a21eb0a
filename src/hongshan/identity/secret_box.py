"""Device and product secrets encrypted at rest, with a key kept apart from the database.

A stolen database file (or a PostgreSQL dump) without the key gives away no secret. Each secret
is sealed with AES-256-GCM under a random 96-bit nonce, and with *what it is the secret of*
(``device/{pk}/{dn}``) as associated data, so that a sealed value copied onto another row fails
to open instead of letting one device log in as another.

A secret that must also be *found by its value* (a ThingsBoard access token: the MQTT username
is all a CONNECT carries) is kept beside its sealed copy as a ``digest``: HMAC-SHA256 under a
key derived from the same key, so the column indexes the secret without giving it away, and a
stolen database does not even allow guessing weak tokens offline.

The key comes from ``HONGSHAN_SECRET_KEY`` (32 bytes, URL-safe base64) when it is set — for a
cluster, where every process needs the same key — or else from a key file (``secret.key`` in the
data directory by default), created on first start with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hongshan.errors import ConfigError, HongshanError
from hongshan.private_file import create_private_file

KEY_ENV = "HONGSHAN_SECRET_KEY"
_PREFIX = "v1:"  # the sealing scheme, so that a later one can be told apart


class SecretUnreadable(HongshanError):
    """A sealed secret that this key cannot open (wrong key, or a value moved between rows)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the secret key must be 32 bytes")
        self._aead = AESGCM(key)
        # a key of its own for digests, derived so that no value is both an AES and an HMAC key
        self._mac_key = hmac.digest(key, b"hongshan secret-box digest v1", hashlib.sha256)

    def seal(self, secret: str, context: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), context.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise SecretUnreadable(f"unknown sealing scheme for {context}")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SecretUnreadable(f"cannot open the secret of {context}: wrong key?") from exc

    def digest(self, secret: str, context: str) -> str:
        """What finds ``secret`` in an index (64 hex digits): the same for the same secret and
        ``context`` (what kind of secret it is, e.g. ``access-token``), under this key only."""
        message = context.encode() + b"\0" + secret.encode()
        return hmac.digest(self._mac_key, message, hashlib.sha256).hex()


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip())
    except ValueError as exc:
        raise ConfigError(f"{where}: not URL-safe base64") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: the key must be 32 bytes, this one is {len(key)}")
    return key


def load_or_create_key(key_file: Path) -> bytes:
    """The key from ``HONGSHAN_SECRET_KEY``, else from ``key_file`` (created if missing)."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return _decode_key(from_env, KEY_ENV)
    try:
        return _decode_key(key_file.read_text(), str(key_file))
    except FileNotFoundError:
        pass
    fresh = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii") + "\n"
    return _decode_key(create_private_file(key_file, fresh), str(key_file))
