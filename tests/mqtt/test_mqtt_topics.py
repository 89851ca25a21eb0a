"""Topic names, topic filters, shared subscriptions and matching (MQTT 5.0 sections 4.7, 4.8)."""

from __future__ import annotations

import pytest

from hongshan.errors import RemoteProtocolError
from hongshan.mqtt.topics import (
    parse_shared,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90


@pytest.mark.parametrize(
    "topic",
    [
        "a",
        "/",
        "//",
        "/finance",
        "sport/tennis/player1",
        "$SYS/broker/load",
        " ",
        "街灯/1",
        "a\u0001",
    ],
)
def test_valid_topic_names(topic: str) -> None:
    validate_topic_name(topic)


@pytest.mark.parametrize(
    "topic", ["", "+", "#", "a/+", "a/#", "sport+", "a#b", "a\x00b", "x" * 65_536, "é" * 32_768]
)
def test_invalid_topic_names(topic: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        validate_topic_name(topic)
    assert raised.value.reason_code == TOPIC_NAME_INVALID


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#",
        "+",
        "sport/#",
        "sport/tennis/#",
        "sport/+",
        "+/tennis/#",
        "sport/+/player1",
        "+/+",
        "/+",
        "+/",
        "//",
        "$SYS/#",
        "$share/g/a",  # syntactically an ordinary filter too
        "a/b",
    ],
)
def test_valid_topic_filters(topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


@pytest.mark.parametrize(
    "topic_filter",
    [
        "",
        "sport/tennis#",  # section 4.7.1.2
        "sport/tennis/#/ranking",
        "#/",
        "##",
        "sport+",  # section 4.7.1.3
        "+sport",
        "sport/+tennis",
        "++",
        "a/#b",
        "a\x00",
        "a" * 65_536,
    ],
)
def test_invalid_topic_filters(topic_filter: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        validate_topic_filter(topic_filter)
    assert raised.value.reason_code == TOPIC_FILTER_INVALID


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("$share/g/a/b", ("g", "a/b")),
        ("$share/consumer1/sport/tennis/+", ("consumer1", "sport/tennis/+")),
        ("$share/g/#", ("g", "#")),
        ("$share/g//", ("g", "/")),
        ("a/b", (None, "a/b")),
        ("$share", (None, "$share")),
        ("$SHARE/g/a", (None, "$SHARE/g/a")),  # the prefix is case-sensitive
        ("$shared/g/a", (None, "$shared/g/a")),
        ("#", (None, "#")),
    ],
)
def test_parse_shared(topic_filter: str, expected: tuple[str | None, str]) -> None:
    assert parse_shared(topic_filter) == expected


@pytest.mark.parametrize(
    "topic_filter",
    [
        "$share/",
        "$share//a",  # empty share name (MQTT-4.8.2-1)
        "$share/g",  # no filter after the share name
        "$share/g/",
        "$share/g+/a",  # MQTT-4.8.2-2
        "$share/+/a",
        "$share/#/a",
        "$share/#",
    ],
)
def test_parse_shared_invalid(topic_filter: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        parse_shared(topic_filter)
    assert raised.value.reason_code == TOPIC_FILTER_INVALID


MATCHES = [
    # section 4.7.1.2: the multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("sport/#", "sports", False),
    # section 4.7.1.3: the single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+", "sport", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/tennis/#", "sport/tennis/player1", True),
    ("+/tennis/#", "sport/tennis", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/+/+", "a/b", False),
    ("+/", "a/", True),
    ("+/", "a", False),
    # section 4.7.2: topics beginning with $ (MQTT-4.7.2-1)
    ("#", "$SYS", False),
    ("#", "$SYS/broker/clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("+/#", "$SYS/x", False),
    ("a/#", "a/$SYS", True),  # only the first character of the topic counts
    ("+/+", "a/$b", True),
    # plain filters
    ("sport/tennis", "sport/tennis", True),
    ("sport/tennis", "sport/Tennis", False),  # case-sensitive (section 4.7.3)
    ("sport/tennis", "sport/tennis/", False),
    ("sport/tennis ", "sport/tennis", False),  # spaces are characters
    ("/", "/", True),
    ("//", "/", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("街灯/+", "街灯/1", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHES)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected
