"""The admin token and the secret key: created whole, never empty, compared safely."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hongshan.api.token import load_or_create_token, token_matches
from hongshan.errors import ConfigError
from hongshan.identity.alibaba import verify_fields
from hongshan.identity.secret_box import load_or_create_key
from hongshan.private_file import create_private_file


def test_a_private_file_is_created_once_whole_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    assert create_private_file(path, "first\n") == "first\n"
    assert create_private_file(path, "second\n") == "first\n"  # the first one stays
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["admin.token"]  # no temporary left


def test_an_empty_token_opens_nothing(tmp_path: Path) -> None:
    assert not token_matches("", "Bearer ")
    assert not token_matches("", "Bearer")
    (tmp_path / "admin.token").write_text("")
    with pytest.raises(ConfigError):
        load_or_create_token(tmp_path)
    (tmp_path / "fresh").mkdir()
    assert len(load_or_create_token(tmp_path / "fresh")) >= 16


def test_tokens_and_signatures_with_odd_characters_are_refused_not_raised(
    tmp_path: Path,
) -> None:
    token = load_or_create_token(tmp_path)
    assert token_matches(token, f"Bearer {token}")
    assert not token_matches(token, "Bearer 令牌令牌令牌令牌令牌令牌")
    fields = {"clientId": "c", "deviceName": "d", "productKey": "p"}
    assert not verify_fields("secret", "hmacsha1", fields, "签名\ufffd")


def test_the_key_file_is_made_once(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "secret.key")
    assert load_or_create_key(tmp_path / "secret.key") == first and len(first) == 32
