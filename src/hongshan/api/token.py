"""The admin API token: written to ``DATA_DIR/admin.token`` (mode 0600) on the first start and
read from there by the CLI on the same machine; requests carry it as ``Authorization: Bearer``.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from hongshan.errors import ConfigError
from hongshan.private_file import create_private_file

TOKEN_FILE = "admin.token"
MIN_TOKEN_LENGTH = 16


def load_or_create_token(data_dir: Path) -> str:
    path = data_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = create_private_file(path, secrets.token_urlsafe(32) + "\n").strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{path}: the admin token is empty or too short; delete the file")
    return token


def read_token(data_dir: Path) -> str | None:
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def token_matches(expected: str, authorization: str | None) -> bool:
    if not authorization or len(expected) < MIN_TOKEN_LENGTH:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )
