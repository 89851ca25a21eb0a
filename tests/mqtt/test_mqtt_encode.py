"""The encoder: exact bytes for known packets, the short forms, what lower levels leave out,
and LocalProtocolError for what MQTT cannot carry."""

from __future__ import annotations

from typing import Any, cast

import pytest

from hongshan.errors import LocalProtocolError
from hongshan.mqtt.codec import encode, encode_properties, encode_publish, encode_varint
from hongshan.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    Subscription,
    UnsubAck,
    Unsubscribe,
    Will,
)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "8001"),
        (16_383, "ff7f"),
        (16_384, "808001"),
        (2_097_151, "ffff7f"),
        (2_097_152, "80808001"),
        (268_435_455, "ffffff7f"),
    ],
)
def test_encode_varint(n: int, expected: str) -> None:
    """Section 1.5.5, table 1-1: the boundaries of each length."""
    assert encode_varint(n) == bytes.fromhex(expected)


@pytest.mark.parametrize("n", [-1, 268_435_456, 2**40])
def test_encode_varint_out_of_range(n: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_varint(n)


CONNECT_311 = "100d 0004 4d515454 04 02 003c 0001 63"
GOLDEN = [
    (Connect(client_id="c"), 4, CONNECT_311),
    (Connect(client_id="c", protocol_level=3), 3, "100f 0006 4d5149736470 03 02 003c 0001 63"),
    (Connect(client_id="c", protocol_level=5), 5, "100e 0004 4d515454 05 02 003c 00 0001 63"),
    (
        Connect(
            client_id="c",
            clean_start=False,
            keep_alive=10,
            username="u",
            password=b"p",
            will=Will(topic="w", payload=b"x", qos=1, retain=True),
        ),
        4,
        "1019 0004 4d515454 04 ec 000a 0001 63 0001 77 0001 78 0001 75 0001 70",
    ),
    (ConnAck(), 4, "2002 0000"),
    (ConnAck(session_present=True), 5, "2003 0100 00"),
    (ConnAck(reason_code=0x87), 4, "2002 0005"),  # 5.0 Not authorized -> 3.1.1 code 5
    (ConnAck(reason_code=0x84), 3, "2002 0001"),  # Unsupported version -> code 1
    (ConnAck(reason_code=0x86), 4, "2002 0004"),
    (ConnAck(reason_code=0x89), 4, "2002 0003"),
    (Publish(topic="a/b", payload=b"hi"), 4, "3007 0003 612f62 6869"),
    (Publish(topic="a/b", payload=b"hi"), 5, "3008 0003 612f62 00 6869"),
    (Publish(topic="a", qos=2, retain=True, dup=True, packet_id=10), 4, "3d05 0001 61 000a"),
    (Publish(topic="a", packet_id=10), 4, "3003 0001 61"),  # no packet id at QoS 0
    (
        Publish(topic="a", properties=Properties(message_expiry_interval=1)),
        4,
        "3003 0001 61",  # properties are left out below 5.0
    ),
    (
        Publish(
            topic="a",
            properties=Properties(message_expiry_interval=10, user_properties=(("a", "b"),)),
        ),
        5,
        "3010 0001 61 0c 020000000a 26000161000162",
    ),
    (PubAck(packet_id=7), 4, "4002 0007"),
    (PubAck(packet_id=7, reason_code=0x10), 4, "4002 0007"),  # 3.1.1 has no reason codes
    (PubAck(packet_id=7), 5, "4002 0007"),  # section 3.4.2.1 short form
    (PubAck(packet_id=7, reason_code=0x10), 5, "4003 0007 10"),
    (PubAck(packet_id=7, properties=Properties(reason_string="r")), 5, "4008 0007 00 04 1f000172"),
    (PubRec(packet_id=1), 5, "5002 0001"),
    (PubRel(packet_id=1), 4, "6202 0001"),
    (PubRel(packet_id=1, reason_code=0x92), 5, "6203 0001 92"),
    (PubComp(packet_id=258), 5, "7002 0102"),
    (
        Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a/#", qos=1),)),
        4,
        "8208 0001 0003 612f23 01",
    ),
    (
        Subscribe(
            packet_id=1,
            subscriptions=(
                Subscription(
                    topic_filter="a",
                    qos=1,
                    no_local=True,
                    retain_as_published=True,
                    retain_handling=2,
                ),
            ),
            properties=Properties(subscription_identifiers=(200,)),
        ),
        5,
        "820a 0001 03 0bc801 0001 61 2d",
    ),
    (
        Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a", no_local=True),)),
        4,
        "8206 0001 0001 61 00",  # the 5.0 options are left out below 5.0
    ),
    (SubAck(packet_id=1, reason_codes=(0, 1, 2, 0x80)), 4, "9006 0001 00010280"),
    (SubAck(packet_id=1, reason_codes=(0x87, 0x8F, 0xA2)), 4, "9005 0001 808080"),
    (SubAck(packet_id=1, reason_codes=(0x87, 0x8F)), 5, "9005 0001 00 878f"),
    (Unsubscribe(packet_id=2, topic_filters=("a", "b")), 4, "a208 0002 000161 000162"),
    (Unsubscribe(packet_id=2, topic_filters=("a",)), 5, "a206 0002 00 000161"),
    (UnsubAck(packet_id=3), 4, "b002 0003"),
    (UnsubAck(packet_id=3, reason_codes=(0x11,)), 3, "b002 0003"),
    (UnsubAck(packet_id=3, reason_codes=(0, 0x11)), 5, "b005 0003 00 0011"),
    (PingReq(), 4, "c000"),
    (PingResp(), 5, "d000"),
    (Disconnect(), 4, "e000"),
    (Disconnect(reason_code=0x04), 4, "e000"),
    (Disconnect(), 5, "e000"),
    (Disconnect(reason_code=0x04), 5, "e001 04"),
    (Disconnect(properties=Properties(reason_string="r")), 5, "e006 00 04 1f000172"),
    (Auth(), 5, "f000"),
    (Auth(reason_code=0x18), 5, "f002 18 00"),
]


@pytest.mark.parametrize(
    ("packet", "level", "expected"),
    [pytest.param(*case, id=f"v{case[1]}-{index}") for index, case in enumerate(GOLDEN)],
)
def test_golden_bytes(packet: Packet, level: int, expected: str) -> None:
    assert encode(packet, level) == bytes.fromhex(expected)


def test_connect_protocol_name_follows_the_level() -> None:
    """The name is written from the level; a wrong ``protocol_name`` field is not copied."""
    assert encode(
        Connect(client_id="c", protocol_level=3, protocol_name="MQTT"), 3
    ) == bytes.fromhex("100f 0006 4d5149736470 03 02 003c 0001 63")


def test_encode_properties() -> None:
    props = Properties(message_expiry_interval=10, user_properties=(("a", "b"), ("a", "c")))
    assert encode_properties(props, PacketType.PUBLISH) == bytes.fromhex(
        "020000000a 26000161000162 26000161000163"
    )
    assert encode_properties(Properties(), PacketType.CONNECT) == b""
    with pytest.raises(LocalProtocolError):
        encode_properties(props, PacketType.CONNACK)  # message expiry: PUBLISH and Will only


@pytest.mark.parametrize("level", [3, 4, 5])
@pytest.mark.parametrize(
    "packet",
    [
        Publish(topic="town/lights/1", payload=b"{}"),
        Publish(topic="t", payload=b"x" * 200, qos=1, packet_id=1, retain=True),
        Publish(topic="t/街", payload=b"", qos=2, packet_id=65535, dup=True),
        Publish(
            topic="t",
            qos=1,
            packet_id=2,
            properties=Properties(subscription_identifiers=(5, 6), content_type="x"),
        ),
    ],
)
def test_encode_publish_matches_encode(level: int, packet: Publish) -> None:
    props = encode_properties(packet.properties, PacketType.PUBLISH)
    fast = encode_publish(
        packet.topic.encode(),
        packet.payload,
        packet.qos,
        packet.retain,
        packet.dup,
        packet.packet_id,
        props,
        level,
    )
    assert fast == encode(packet, level)


@pytest.mark.parametrize(
    ("qos", "dup", "packet_id"),
    [(1, False, 0), (2, False, 65536), (3, False, 1), (-1, False, 1), (0, True, 0)],
)
def test_encode_publish_refuses(qos: int, dup: bool, packet_id: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_publish(b"t", b"", qos, False, dup, packet_id, b"", 4)


def test_encode_publish_refuses_a_long_topic() -> None:
    with pytest.raises(LocalProtocolError):
        encode_publish(b"t" * 65_536, b"", 0, False, False, 0, b"", 4)


def _c(level: int = 4, **fields: Any) -> Connect:
    return Connect(client_id="c", protocol_level=level, **fields)


REFUSED = [
    # PUBLISH
    (Publish(topic="a", qos=1), 4),
    (Publish(topic="a", qos=1, packet_id=65536), 4),
    (Publish(topic="a", qos=3, packet_id=1), 4),
    (Publish(topic="a", dup=True), 4),
    (Publish(topic="a/+"), 4),
    (Publish(topic="#"), 5),
    (Publish(topic=""), 4),
    (Publish(topic=""), 5),
    (Publish(topic="", properties=Properties(topic_alias=1)), 4),  # no aliases before 5.0
    (Publish(topic="a\x00"), 4),
    (Publish(topic="\ud800"), 4),
    (Publish(topic="é" * 32_768), 4),
    (Publish(topic="a", properties=Properties(session_expiry_interval=1)), 5),
    (Publish(topic="a", properties=Properties(topic_alias=0)), 5),
    (Publish(topic="a", properties=Properties(topic_alias=65536)), 5),
    (Publish(topic="a", properties=Properties(payload_format_indicator=2)), 5),
    (Publish(topic="a", properties=Properties(message_expiry_interval=2**32)), 5),
    (Publish(topic="a", properties=Properties(message_expiry_interval=-1)), 5),
    (Publish(topic="a", properties=Properties(subscription_identifiers=(0,))), 5),
    (Publish(topic="a", properties=Properties(subscription_identifiers=(268_435_456,))), 5),
    (Publish(topic="a", properties=Properties(response_topic="r/#")), 5),
    (Publish(topic="a", properties=Properties(correlation_data=b"x" * 65_536)), 5),
    (Publish(topic="a", properties=Properties(user_properties=(("k", "\x00"),))), 5),
    # acknowledgements
    (PubAck(packet_id=0), 4),
    (PubRec(packet_id=65536), 5),
    (PubAck(packet_id=1, reason_code=0x92), 5),
    (PubRel(packet_id=1, reason_code=0x10), 5),
    (PubComp(packet_id=1, properties=Properties(topic_alias=1)), 5),
    # SUBSCRIBE, UNSUBSCRIBE and their acks
    (Subscribe(packet_id=1, subscriptions=()), 4),
    (Subscribe(packet_id=0, subscriptions=(Subscription(topic_filter="a"),)), 4),
    (Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a", qos=3),)), 4),
    (Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a", retain_handling=3),)), 5),
    (
        Subscribe(
            packet_id=1, subscriptions=(Subscription(topic_filter="$share/g/a", no_local=True),)
        ),
        5,
    ),
    (Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a\x00"),)), 4),
    (
        Subscribe(
            packet_id=1,
            subscriptions=(Subscription(topic_filter="a"),),
            properties=Properties(subscription_identifiers=(1, 2)),
        ),
        5,
    ),
    (Unsubscribe(packet_id=1, topic_filters=()), 4),
    (SubAck(packet_id=1, reason_codes=()), 4),
    (SubAck(packet_id=1, reason_codes=(3,)), 4),
    (SubAck(packet_id=1, reason_codes=(0x05,)), 5),
    (UnsubAck(packet_id=1), 5),
    (UnsubAck(packet_id=1, reason_codes=(0x01,)), 5),
    # CONNECT, CONNACK
    (_c(5), 4),
    (_c(4), 5),
    (_c(keep_alive=65536), 4),
    (_c(will=Will(topic="w", payload=b"", qos=3)), 4),
    (_c(will=Will(topic="w/+", payload=b"")), 4),
    (_c(will=Will(topic="", payload=b"")), 4),
    (_c(5, will=Will(topic="w", payload=b"", properties=Properties(topic_alias=1))), 5),
    (_c(password=b"p"), 4),
    (_c(3, password=b"p"), 3),
    (_c(5, properties=Properties(authentication_data=b"x")), 5),
    (_c(5, properties=Properties(receive_maximum=0)), 5),
    (_c(5, properties=Properties(will_delay_interval=1)), 5),
    (Connect(client_id="c" * 65_536), 4),
    (ConnAck(reason_code=5), 5),
    (ConnAck(reason_code=6), 4),
    (ConnAck(reason_code=0x100), 4),
    (ConnAck(session_present=True, reason_code=0x80), 5),
    (ConnAck(session_present=True, reason_code=5), 4),
    (ConnAck(properties=Properties(maximum_qos=2)), 5),
    # DISCONNECT, AUTH
    (Disconnect(reason_code=0x01), 5),
    (Disconnect(properties=Properties(topic_alias=1)), 5),
    (Auth(), 4),
    (Auth(reason_code=0x87), 5),
    (Auth(properties=Properties(session_expiry_interval=1)), 5),
]


@pytest.mark.parametrize(
    ("packet", "level"),
    [pytest.param(*case, id=f"v{case[1]}-{index}") for index, case in enumerate(REFUSED)],
)
def test_refused(packet: Packet, level: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode(packet, level)


@pytest.mark.parametrize("level", [0, 2, 6])
def test_unknown_level(level: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode(PingReq(), level)


def test_not_a_packet() -> None:
    with pytest.raises(LocalProtocolError):
        encode(cast(Packet, Properties()), 4)
