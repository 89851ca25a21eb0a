"""Every packet type at levels 3, 4 and 5, encoded and decoded back: fed whole, byte by byte,
and followed by the first bytes of the next packet (h11's tests/test_io.py style)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hongshan.mqtt.codec import NEED_DATA, Decoder, encode
from hongshan.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
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

USER = (("zone", "north"), ("zone", "south"), ("", ""), ("街区", "红山 🌄"))
TEXT = "streetlight/\u0001ctl\u007f\u009f\ufeff\uffff/街灯"  # allowed code points (1.5.4)


def _to_server(level: int) -> list[Packet]:
    v5 = level == 5
    props = Properties
    rich_publish = props(
        payload_format_indicator=1,
        message_expiry_interval=0xFFFF_FFFF,
        content_type="application/json",
        response_topic="reply/to/me",
        correlation_data=b"\x00\x01corr",
        topic_alias=7,
        user_properties=USER,
    )
    return [
        Publish(topic="town/lights/42", payload=b'{"on":true}'),
        Publish(topic=TEXT, payload=b"", qos=1, packet_id=1, retain=True),
        Publish(topic="a", payload=bytes(range(256)) * 80, qos=2, dup=True, packet_id=65535),
        Publish(topic="/", qos=1, packet_id=9, properties=rich_publish if v5 else props()),
        *([Publish(topic="", payload=b"x", properties=props(topic_alias=65535))] if v5 else []),
        PubAck(packet_id=1),
        PubRec(packet_id=2),
        PubRel(packet_id=3),
        PubComp(packet_id=65535),
        *(
            [
                PubAck(packet_id=4, reason_code=0x10),
                PubAck(
                    packet_id=5,
                    reason_code=0x80,
                    properties=props(reason_string="no", user_properties=USER),
                ),
                PubAck(packet_id=6, properties=props(user_properties=USER[:1])),
                PubRec(packet_id=7, reason_code=0x97, properties=props(reason_string="quota")),
                PubRel(packet_id=8, reason_code=0x92),
                PubComp(packet_id=9, reason_code=0x92, properties=props(reason_string="?")),
            ]
            if v5
            else []
        ),
        Subscribe(
            packet_id=10,
            subscriptions=(
                Subscription(topic_filter="town/+/status", qos=1),
                Subscription(topic_filter="#", qos=2),
                Subscription(topic_filter="$SYS/broker/#"),
                Subscription(topic_filter="a//b"),
            ),
        ),
        *(
            [
                Subscribe(
                    packet_id=11,
                    subscriptions=(
                        Subscription(
                            topic_filter="town/#",
                            qos=2,
                            no_local=True,
                            retain_as_published=True,
                            retain_handling=2,
                        ),
                        Subscription(topic_filter="$share/g/town/+", qos=1, retain_handling=1),
                        # filter syntax is the broker's to judge (SUBACK 0x8F), not the codec's
                        Subscription(topic_filter="bad/#/filter"),
                    ),
                    properties=props(subscription_identifiers=(268_435_455,), user_properties=USER),
                )
            ]
            if v5
            else []
        ),
        Unsubscribe(packet_id=12, topic_filters=("town/+/status", "#", TEXT)),
        *(
            [
                Unsubscribe(
                    packet_id=13, topic_filters=("a",), properties=props(user_properties=USER)
                )
            ]
            if v5
            else []
        ),
        PingReq(),
        Disconnect(),
        *(
            [
                Disconnect(reason_code=0x04),
                Disconnect(
                    reason_code=0x80,
                    properties=props(
                        session_expiry_interval=3600,
                        reason_string="bye",
                        user_properties=USER,
                    ),
                ),
                Auth(),
                Auth(reason_code=0x19),
                Auth(
                    reason_code=0x18,
                    properties=props(
                        authentication_method="SCRAM-SHA-256",
                        authentication_data=b"\x00nonce",
                        reason_string="continue",
                        user_properties=USER,
                    ),
                ),
            ]
            if v5
            else []
        ),
    ]


def _to_client(level: int) -> list[Packet]:
    v5 = level == 5
    props = Properties
    return [
        ConnAck(),
        ConnAck(session_present=True),
        ConnAck(reason_code=0x87 if v5 else 5),
        Publish(topic="cmd/街灯/7", payload=b"\xff\x00", qos=1, packet_id=77),
        PubAck(packet_id=1),
        PubRec(packet_id=2),
        PubRel(packet_id=3),
        PubComp(packet_id=4),
        SubAck(packet_id=5, reason_codes=(0, 1, 2, 0x80)),
        UnsubAck(packet_id=6, reason_codes=(0,) if v5 else ()),
        PingResp(),
        *(
            [
                ConnAck(
                    session_present=True,
                    properties=props(
                        session_expiry_interval=0,
                        assigned_client_identifier="auto-3F2A",
                        server_keep_alive=30,
                        authentication_method="SCRAM-SHA-256",
                        authentication_data=b"",
                        response_information="resp/",
                        server_reference="other.example:1883",
                        reason_string="welcome",
                        receive_maximum=1,
                        topic_alias_maximum=0,
                        maximum_qos=1,
                        retain_available=0,
                        user_properties=USER,
                        maximum_packet_size=1,
                        wildcard_subscription_available=1,
                        subscription_identifier_available=0,
                        shared_subscription_available=1,
                    ),
                ),
                ConnAck(reason_code=0x9F, properties=props(reason_string="slow down")),
                Publish(
                    topic="cmd/7",
                    qos=2,
                    packet_id=8,
                    properties=props(subscription_identifiers=(1, 268_435_455, 1)),
                ),
                SubAck(
                    packet_id=9,
                    reason_codes=(0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2),
                    properties=props(reason_string="mixed", user_properties=USER),
                ),
                UnsubAck(packet_id=10, reason_codes=(0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)),
                Disconnect(reason_code=0x8E, properties=props(server_reference="x")),
                Auth(reason_code=0x18, properties=props(authentication_method="m")),
            ]
            if v5
            else []
        ),
    ]


def _connects(level: int) -> list[Connect]:
    name = "MQIsdp" if level == 3 else "MQTT"
    plain = Connect(client_id="lamp-42", protocol_level=level, protocol_name=name)
    v5_props = Properties(
        session_expiry_interval=0xFFFF_FFFF,
        receive_maximum=20,
        maximum_packet_size=1_048_576,
        topic_alias_maximum=10,
        request_response_information=1,
        request_problem_information=0,
        user_properties=USER,
        authentication_method="SCRAM-SHA-1",
        authentication_data=b"\x01\x02",
    )
    will_props = Properties(
        will_delay_interval=60,
        payload_format_indicator=0,
        message_expiry_interval=10,
        content_type="text/plain",
        response_topic="r",
        correlation_data=b"c",
        user_properties=USER,
    )
    v5 = level == 5
    return [
        plain,
        Connect(
            client_id="",
            protocol_level=level,
            protocol_name=name,
            clean_start=False,
            keep_alive=0,
            username="ü",
            password=b"\x00secret\xff",
            will=Will(topic="town/lights/42/status", payload=b"offline", qos=2, retain=True),
        ),
        Connect(
            client_id=TEXT,
            protocol_level=level,
            protocol_name=name,
            keep_alive=65535,
            username="",
            will=Will(topic="w", payload=b"", qos=1, properties=will_props if v5 else Properties()),
            properties=v5_props if v5 else Properties(),
        ),
        *([Connect(client_id="p", protocol_level=5, password=b"token-only")] if v5 else []),
    ]


LEVELS = (3, 4, 5)
CASES = [
    pytest.param(server, level, packet, id=f"v{level}-{type(packet).__name__}-{index}")
    for level in LEVELS
    for server, packets in ((True, _to_server(level)), (False, _to_client(level)))
    for index, packet in enumerate(packets)
]
CONNECT_CASES = [
    pytest.param(level, packet, id=f"v{level}-Connect-{index}")
    for level in LEVELS
    for index, packet in enumerate(_connects(level))
]
NEXT = b"\x30\x0a\x00"  # the first bytes of a following PUBLISH


def _decode_whole(decoder: Decoder, data: bytes) -> list[Packet]:
    decoder.receive_data(data)
    packets = []
    while (packet := decoder.next_packet()) is not NEED_DATA:
        packets.append(packet)
    return packets


def _decode_bytewise(decoder: Decoder, data: bytes) -> list[Packet]:
    packets = []
    for index in range(len(data)):
        decoder.receive_data(data[index : index + 1])
        while (packet := decoder.next_packet()) is not NEED_DATA:
            packets.append(packet)
    return packets


def _check_feeds(
    make: Callable[[], Decoder], data: bytes, expected: Packet, *, twice: bool = True
) -> None:
    # whole
    decoder = make()
    assert _decode_whole(decoder, data) == [expected]
    assert decoder.buffered == 0
    # byte by byte (skip the 20 kB payload: it would take a while and proves nothing new)
    if len(data) < 4096:
        decoder = make()
        assert _decode_bytewise(decoder, data) == [expected]
        assert decoder.buffered == 0
    # followed by the start of the next packet
    decoder = make()
    assert _decode_whole(decoder, data + NEXT) == [expected]
    assert decoder.buffered == len(NEXT)
    assert decoder.next_packet() is NEED_DATA
    # in two chunks, split in the middle
    decoder = make()
    half = len(data) // 2
    assert _decode_whole(decoder, data[:half]) == []
    again = data if twice else b""
    assert _decode_whole(decoder, data[half:] + again) == [expected] * (2 if twice else 1)


@pytest.mark.parametrize(("server", "level", "packet"), CASES)
def test_round_trip(server: bool, level: int, packet: Packet) -> None:
    data = encode(packet, level)
    _check_feeds(lambda: Decoder(server=server, protocol_level=level), data, packet)


@pytest.mark.parametrize(("level", "packet"), CONNECT_CASES)
def test_connect_round_trip(level: int, packet: Connect) -> None:
    data = encode(packet, level)

    def make() -> Decoder:
        decoder = Decoder(server=True)
        assert decoder.protocol_level is None
        return decoder

    _check_feeds(make, data, packet, twice=False)
    decoder = make()
    assert _decode_whole(decoder, data) == [packet]
    assert decoder.protocol_level == level


@pytest.mark.parametrize("level", LEVELS)
def test_session_in_one_buffer(level: int) -> None:
    """A CONNECT and a session's packets arriving together, decoded in order."""
    client_packets = [_connects(level)[0], *_to_server(level)]
    data = b"".join(encode(packet, level) for packet in client_packets)
    assert _decode_whole(Decoder(server=True), data) == client_packets
    assert _decode_bytewise(Decoder(server=True), data) == client_packets
    server_packets = _to_client(level)
    data = b"".join(encode(packet, level) for packet in server_packets)
    assert _decode_whole(Decoder(server=False, protocol_level=level), data) == server_packets


@pytest.mark.parametrize("size", [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_remaining_length_boundaries(size: int) -> None:
    """Payloads whose Remaining Length needs 1, 2, 3 and 4 bytes (section 1.5.5)."""
    packet = Publish(topic="t", payload=b"p" * max(0, size - 3))
    data = encode(packet, 4)
    decoder = Decoder(server=True, protocol_level=4)
    for start in range(0, len(data), 65_536):
        decoder.receive_data(data[start : start + 65_536])
    assert decoder.next_packet() == packet
    assert decoder.buffered == 0


def test_receive_data_accepts_bytearray_and_memoryview() -> None:
    data = encode(Publish(topic="t", payload=b"x"), 4)
    decoder = Decoder(server=True, protocol_level=4)
    chunk = bytearray(data[:3])
    decoder.receive_data(chunk)
    chunk[:] = b"\xff\xff\xff"  # the decoder kept a copy, not the caller's buffer
    decoder.receive_data(memoryview(data)[3:])
    assert decoder.next_packet() == Publish(topic="t", payload=b"x")
    decoder.receive_data(bytearray(data))
    assert decoder.next_packet() == Publish(topic="t", payload=b"x")
    decoder.receive_data(b"")
    assert decoder.next_packet() is NEED_DATA


def test_client_decoder_needs_a_level() -> None:
    with pytest.raises(ValueError, match="protocol_level"):
        Decoder(server=False)
    with pytest.raises(ValueError, match="protocol level"):
        Decoder(server=False, protocol_level=6)


def test_client_decoder_level_can_change() -> None:
    decoder = Decoder(server=False, protocol_level=4)
    decoder.protocol_level = 5
    decoder.receive_data(encode(Auth(), 5))
    assert decoder.next_packet() == Auth()


def test_need_data_is_a_singleton() -> None:
    assert repr(NEED_DATA) == str(NEED_DATA) == "NEED_DATA"
    assert Decoder(server=True).next_packet() is NEED_DATA
