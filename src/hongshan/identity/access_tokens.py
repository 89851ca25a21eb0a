"""A user's access token: a JWT (HS256) naming the user (``sub``) and the session (``sid``),
valid ``lifetime`` seconds. Its key is ``DATA_DIR/session.key`` (0600, made on the first
start); a new key ends every session's access tokens at once (their refresh tokens still work).

The token carries no role and no groups: those are read from memory on each request
(``services.people``), so that a change of role, a disabled user or an ended session applies at
once rather than when the token expires. Its expiry is checked against the injected clock,
not PyJWT's, so that tests can move time.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from hongshan.errors import ConfigError
from hongshan.private_file import create_private_file

KEY_FILE = "session.key"
_ALGORITHM = "HS256"
_KEY_LENGTH = 32  # bytes: HS256's block of key (RFC 7518 section 3.2 asks at least the hash's)


def load_or_create_session_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = create_private_file(path, secrets.token_hex(_KEY_LENGTH) + "\n").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < _KEY_LENGTH:
        raise ConfigError(f"{path}: not a key of {_KEY_LENGTH} hex bytes; delete the file")
    return key


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    session_id: str


class AccessTokens:
    def __init__(self, key: bytes, lifetime: float, clock: Callable[[], float]) -> None:
        self._key = key
        self.lifetime = lifetime
        self._clock = clock

    def issue(self, user_id: int, session_id: str) -> str:
        now = self._clock()
        claims: dict[str, object] = {
            "sub": str(user_id),
            "sid": session_id,
            "iat": int(now),
            "exp": now + self.lifetime,  # (a NumericDate may have a fraction: RFC 7519 2)
        }
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM)

    def read(self, token: str) -> TokenClaims | None:
        """The claims of a token this key signed and that has not expired; None otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        exp, sub, sid = claims.get("exp"), claims.get("sub"), claims.get("sid")
        if not isinstance(exp, int | float) or exp <= self._clock():
            return None
        if not isinstance(sub, str) or not sub.isdigit() or not isinstance(sid, str):
            return None
        return TokenClaims(int(sub), sid)
