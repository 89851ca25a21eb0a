"""Names and secrets in Alibaba Cloud IoT's shapes, so that a device's triple made here looks like
one made there (and firmware that checks lengths accepts it).

- ProductKey: 11 characters, ``a1`` followed by 9 letters and digits (``a14Xib5kdYd``).
- ProductSecret: 16 letters and digits. DeviceSecret: 32 letters and digits.
- DeviceName: 4 to 32 characters of letters, digits and ``- _ @ . :``, unique within its product.
- Nickname: 4 to 64 characters of Chinese characters, letters, digits and underscores (a Chinese
  character counts as two).
- Access token (ThingsBoard's, the MQTT username of a ``thingsboard`` product's device): 20
  letters and digits when generated, as ThingsBoard makes them; one given may be 1 to 128
  characters that a URL path carries as they are (letters, digits and ``- . _ ~``), since
  ThingsBoard's HTTP device API puts the token in the path.
- Basic MQTT credentials (ThingsBoard's): a client id and a username of 1 to 128 characters
  without spaces or control characters, a password of up to 128 characters.
- Product name: 4 to 30 characters of Chinese, Japanese, letters, digits and ``_ - @ ( )``;
  group name: 4 to 30 of Chinese, Japanese, letters, digits and ``_`` (a Chinese or Japanese
  character counts as two).

(Alibaba Cloud IoT Platform documentation: "Create a product", "Create a device", and the
RegisterDevice API's parameter rules.)
"""

from __future__ import annotations

import re
import secrets
import string

from hongshan.errors import HongshanError

_ALNUM = string.ascii_letters + string.digits
_DEVICE_NAME = re.compile(r"[A-Za-z0-9\-_@.:]{4,32}")
_NICKNAME_CHARS = re.compile(r"[\u4e00-\u9fa5A-Za-z0-9_]+")
_WIDE = "\u4e00-\u9fa5\u3040-\u30ff"  # Chinese characters, hiragana and katakana: two each
_PRODUCT_NAME_CHARS = re.compile(f"[{_WIDE}A-Za-z0-9_\\-@()]+")
_GROUP_NAME_CHARS = re.compile(f"[{_WIDE}A-Za-z0-9_]+")
_ACCESS_TOKEN = re.compile(r"[A-Za-z0-9\-._~]{1,128}")  # RFC 3986's unreserved characters
_LOGIN = re.compile(r"[^\x00-\x20\x7f]{1,128}")  # a client id or a username


class InvalidName(HongshanError):
    """A name that breaks Alibaba's rules; the message says which rule."""

    http_status = 400


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_product_key() -> str:
    return "a1" + _random(9)


def new_product_secret() -> str:
    return _random(16)


def new_device_secret() -> str:
    return _random(32)


def new_access_token() -> str:
    return _random(20)


def new_device_name() -> str:
    """A generated name, as Alibaba's batch creation makes when none is given (20 characters)."""
    return _random(20)


_PRODUCT_KEY = re.compile(r"[A-Za-z0-9]{4,32}")
TOPIC_CLASS_PREFIX = "/${productKey}/${deviceName}/user/"


def check_product_key(product_key: str) -> str:
    """A key given for a product moved from Alibaba Cloud: letters and digits (it is a topic
    level and part of a client id, where '&', '/', '+' and '#' would mean something else)."""
    if not _PRODUCT_KEY.fullmatch(product_key):
        raise InvalidName(f"product key {product_key!r}: 4 to 32 letters and digits")
    return product_key


def check_topic_class(pattern: str) -> str:
    """A product's custom topic class lives under the device's own ``user`` branch, as on
    Alibaba Cloud; a class outside it would open one device's topics to another."""
    rest = pattern[len(TOPIC_CLASS_PREFIX) :]
    levels = rest.split("/")
    if (
        not pattern.startswith(TOPIC_CLASS_PREFIX)
        or not rest
        or any(level == "" for level in levels)
        or any(("+" in level or "#" in level) and level not in ("+", "#") for level in levels)
        or "#" in levels[:-1]
        or "$" in rest
    ):
        raise InvalidName(
            f"topic class {pattern!r}: must be {TOPIC_CLASS_PREFIX}… with non-empty levels "
            "('+' a whole level, '#' only the last)"
        )
    return pattern


def check_device_name(name: str) -> str:
    if not _DEVICE_NAME.fullmatch(name):
        raise InvalidName(
            f"device name {name!r}: 4 to 32 characters of letters, digits and - _ @ . :"
        )
    return name


def check_nickname(nickname: str) -> str:
    width = sum(2 if "\u4e00" <= ch <= "\u9fa5" else 1 for ch in nickname)
    if not _NICKNAME_CHARS.fullmatch(nickname) or not 4 <= width <= 64:
        raise InvalidName(
            f"nickname {nickname!r}: 4 to 64 characters of Chinese characters, letters, digits"
            " and underscores (a Chinese character counts as two)"
        )
    return nickname


def _width(text: str) -> int:
    return sum(2 if "\u4e00" <= ch <= "\u9fa5" or "\u3040" <= ch <= "\u30ff" else 1 for ch in text)


def check_product_name(name: str) -> str:
    if not _PRODUCT_NAME_CHARS.fullmatch(name) or not 4 <= _width(name) <= 30:
        raise InvalidName(
            f"product name {name[:40]!r}: 4 to 30 characters of Chinese, Japanese, letters, "
            "digits and _ - @ ( ) (a Chinese or Japanese character counts as two)"
        )
    return name


def check_group_name(name: str) -> str:
    """A group's name is also a level of its URL (``/api/groups/{name}``): no ``/`` or ``..``."""
    if not _GROUP_NAME_CHARS.fullmatch(name) or not 4 <= _width(name) <= 30:
        raise InvalidName(
            f"group name {name[:40]!r}: 4 to 30 characters of Chinese, Japanese, letters, "
            "digits and underscores (a Chinese or Japanese character counts as two)"
        )
    return name


def check_access_token(token: str) -> str:
    if not _ACCESS_TOKEN.fullmatch(token):
        raise InvalidName(
            "access token: 1 to 128 characters of letters, digits and - . _ ~ (it goes in URLs)"
        )
    return token


def check_mqtt_login(client_id: str, username: str, password: str) -> None:
    """Basic MQTT credentials ("" for a field left out): a client id or a username, or both."""
    if not client_id and not username:
        raise InvalidName("basic MQTT credentials: give a client id, a username, or both")
    for field, value in (("client id", client_id), ("username", username)):
        if value and not _LOGIN.fullmatch(value):
            raise InvalidName(
                f"basic MQTT credentials: the {field} is 1 to 128 characters without spaces "
                "or control characters"
            )
    if len(password) > 128 or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in password):
        raise InvalidName("basic MQTT credentials: a password is up to 128 printable characters")
