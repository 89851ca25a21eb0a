"""Product keys, secrets and device names in Alibaba's shapes."""

from __future__ import annotations

import re

import pytest

from hongshan.things.naming import (
    InvalidName,
    check_device_name,
    check_nickname,
    check_product_key,
    check_topic_class,
    new_device_secret,
    new_product_key,
    new_product_secret,
)


def test_generated_shapes() -> None:
    keys = {new_product_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(re.fullmatch(r"a1[A-Za-z0-9]{9}", key) for key in keys)
    assert re.fullmatch(r"[A-Za-z0-9]{16}", new_product_secret())
    assert re.fullmatch(r"[A-Za-z0-9]{32}", new_device_secret())


@pytest.mark.parametrize("name", ["lamp", "lamp-17", "SN_0012:ab@site.3", "a" * 32])
def test_good_device_names(name: str) -> None:
    assert check_device_name(name) == name


@pytest.mark.parametrize("name", ["abc", "a" * 33, "lamp 17", "灯-17", "lamp/17", "lamp#1", ""])
def test_bad_device_names(name: str) -> None:
    with pytest.raises(InvalidName, match="4 to 32"):
        check_device_name(name)


@pytest.mark.parametrize("nickname", ["路灯", "新华路路灯_17", "lamp_17", "a" * 64])
def test_good_nicknames(nickname: str) -> None:
    assert check_nickname(nickname) == nickname


@pytest.mark.parametrize("nickname", ["灯", "abc", "a" * 65, "lamp-17", "路" * 33])
def test_bad_nicknames(nickname: str) -> None:
    with pytest.raises(InvalidName, match="4 to 64"):
        check_nickname(nickname)


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("/${productKey}/${deviceName}/user/get", True),
        ("/${productKey}/${deviceName}/user/lamp/+/state", True),
        ("/${productKey}/${deviceName}/user/#", True),
        ("/${productKey}/+/user/get", False),  # another device's topics
        ("#", False),
        ("/${productKey}/${deviceName}/get", False),  # outside the user branch
        ("/${productKey}/${deviceName}/user/", False),
        ("/${productKey}/${deviceName}/user/a//b", False),
        ("/${productKey}/${deviceName}/user/#/x", False),
        ("/${productKey}/${deviceName}/user/a+b", False),
    ],
)
def test_topic_classes_stay_in_the_devices_user_branch(pattern: str, ok: bool) -> None:
    if ok:
        assert check_topic_class(pattern) == pattern
    else:
        with pytest.raises(InvalidName):
            check_topic_class(pattern)


@pytest.mark.parametrize("key", ["a1B&c", "a1/bc", "a1+bcd", "abc", "a" * 33])
def test_a_given_product_key_is_letters_and_digits(key: str) -> None:
    with pytest.raises(InvalidName):
        check_product_key(key)
