"""Property tests: every packet Hypothesis builds round-trips through encode and decode, and
random or mutated bytes give packets or ``RemoteProtocolError``, nothing else (h11's
fuzz/afl-server.py idea). Packets the decoder accepts from mutated input encode again and
decode to themselves."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hongshan.errors import RemoteProtocolError
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

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=60)
MANY = settings(FUZZ, max_examples=1000)

# -- Strategies -------------------------------------------------------------------------------

text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
topic_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00+#"), min_size=1, max_size=12
)
topic_filters = st.text(st.sampled_from("ab/+#$é"), min_size=1, max_size=10) | text
binary = st.binary(max_size=16)
u8_bool = st.integers(0, 1)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
packet_ids = st.integers(1, 0xFFFF)
subscription_id = st.integers(1, 268_435_455)
user_properties = st.lists(st.tuples(text, text), max_size=3).map(tuple)

# The value of each property (MQTT 5.0 section 2.2.2.2) ...
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "payload_format_indicator": u8_bool,
    "message_expiry_interval": u32,
    "content_type": text,
    "response_topic": topic_names,
    "correlation_data": binary,
    "session_expiry_interval": u32,
    "assigned_client_identifier": text,
    "server_keep_alive": u16,
    "authentication_method": text,
    "authentication_data": binary,
    "request_problem_information": u8_bool,
    "will_delay_interval": u32,
    "request_response_information": u8_bool,
    "response_information": text,
    "server_reference": text,
    "reason_string": text,
    "receive_maximum": st.integers(1, 0xFFFF),
    "topic_alias_maximum": u16,
    "topic_alias": st.integers(1, 0xFFFF),
    "maximum_qos": u8_bool,
    "retain_available": u8_bool,
    "user_properties": user_properties,
    "maximum_packet_size": st.integers(1, 0xFFFF_FFFF),
    "wildcard_subscription_available": u8_bool,
    "subscription_identifier_available": u8_bool,
    "shared_subscription_available": u8_bool,
}
ACK = ("reason_string", "user_properties")
PUBLISH = (
    "payload_format_indicator",
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "topic_alias",
    "user_properties",
)
# ... and which packets may carry it (table 2-4), written out again here on purpose.
ALLOWED: dict[str, tuple[str, ...]] = {
    "CONNECT": (
        "session_expiry_interval",
        "receive_maximum",
        "maximum_packet_size",
        "topic_alias_maximum",
        "request_response_information",
        "request_problem_information",
        "user_properties",
        "authentication_method",
        "authentication_data",
    ),
    "WILL": (*PUBLISH[:5], "will_delay_interval", "user_properties"),
    "CONNACK": (
        "session_expiry_interval",
        "receive_maximum",
        "maximum_qos",
        "retain_available",
        "maximum_packet_size",
        "assigned_client_identifier",
        "topic_alias_maximum",
        "reason_string",
        "user_properties",
        "wildcard_subscription_available",
        "subscription_identifier_available",
        "shared_subscription_available",
        "server_keep_alive",
        "response_information",
        "server_reference",
        "authentication_method",
        "authentication_data",
    ),
    "PUBLISH": PUBLISH,
    "ACK": ACK,
    "SUBSCRIBE": ("user_properties",),
    "UNSUBSCRIBE": ("user_properties",),
    "DISCONNECT": (
        "session_expiry_interval",
        "reason_string",
        "user_properties",
        "server_reference",
    ),
    "AUTH": ("authentication_method", "authentication_data", *ACK),
}


def properties(
    packet: str, *, without: tuple[str, ...] = (), **extra: st.SearchStrategy[Any]
) -> st.SearchStrategy[Properties]:
    optional = {name: VALUES[name] for name in ALLOWED[packet] if name not in without} | extra
    return st.fixed_dictionaries({}, optional=optional).map(lambda kw: Properties(**kw))


def no_props(level: int, strategy: st.SearchStrategy[Properties]) -> st.SearchStrategy[Properties]:
    return strategy if level == 5 else st.just(Properties())


PUBACK_CODES = (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
PUBREL_CODES = (0x00, 0x92)
SUBACK_CODES = (0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
UNSUBACK_CODES = (0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
CONNACK_CODES = (0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A)
CONNACK_CODES += (0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
DISCONNECT_CODES = (0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F)
DISCONNECT_CODES += (0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D)
DISCONNECT_CODES += (0x9E, 0x9F, 0xA0, 0xA1, 0xA2)


def codes(level: int, v5_codes: tuple[int, ...]) -> st.SearchStrategy[int]:
    return st.sampled_from(v5_codes) if level == 5 else st.just(0)


@st.composite
def publishes(draw: st.DrawFn, level: int, to_client: bool) -> Publish:
    several = st.lists(subscription_id, min_size=1, max_size=3).map(tuple)
    extra = {"subscription_identifiers": several} if to_client else {}  # MQTT-3.3.4-6
    props = draw(no_props(level, properties("PUBLISH", **extra)))
    topic = draw(topic_names | st.just("") if props.topic_alias else topic_names)
    qos = draw(st.integers(0, 2))
    return Publish(
        topic=topic,
        payload=draw(st.binary(max_size=300)),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,
        packet_id=draw(packet_ids) if qos else 0,
        properties=props,
    )


def acks(level: int) -> st.SearchStrategy[Packet]:
    ack_props = no_props(level, properties("ACK"))
    return st.one_of(
        *(
            st.builds(
                cls, packet_id=packet_ids, reason_code=codes(level, reason), properties=ack_props
            )
            for cls, reason in (
                (PubAck, PUBACK_CODES),
                (PubRec, PUBACK_CODES),
                (PubRel, PUBREL_CODES),
                (PubComp, PUBREL_CODES),
            )
        )
    )


@st.composite
def subscriptions(draw: st.DrawFn, level: int) -> Subscription:
    topic_filter = draw(topic_filters)
    if level != 5:
        return Subscription(topic_filter=topic_filter, qos=draw(st.integers(0, 2)))
    no_local = draw(st.booleans()) and not topic_filter.startswith("$share/")  # MQTT-3.8.3-4
    return Subscription(
        topic_filter=topic_filter,
        qos=draw(st.integers(0, 2)),
        no_local=no_local,
        retain_as_published=draw(st.booleans()),
        retain_handling=draw(st.integers(0, 2)),
    )


def to_server(level: int) -> st.SearchStrategy[Packet]:
    v5 = level == 5
    one_subscription_id = {"subscription_identifiers": st.tuples(subscription_id)}
    packets = [
        publishes(level, to_client=False),
        acks(level),
        st.builds(
            Subscribe,
            packet_id=packet_ids,
            subscriptions=st.lists(subscriptions(level), min_size=1, max_size=4).map(tuple),
            properties=no_props(level, properties("SUBSCRIBE", **one_subscription_id)),
        ),
        st.builds(
            Unsubscribe,
            packet_id=packet_ids,
            topic_filters=st.lists(topic_filters, min_size=1, max_size=4).map(tuple),
            properties=no_props(level, properties("UNSUBSCRIBE")),
        ),
        st.just(PingReq()),
        st.builds(
            Disconnect,
            reason_code=codes(level, DISCONNECT_CODES),
            properties=no_props(level, properties("DISCONNECT")),
        ),
    ]
    if v5:
        packets.append(auths())
    return st.one_of(packets)


def auths() -> st.SearchStrategy[Auth]:
    return st.builds(
        Auth, reason_code=st.sampled_from((0x00, 0x18, 0x19)), properties=properties("AUTH")
    )


@st.composite
def connacks(draw: st.DrawFn, level: int) -> ConnAck:
    code = draw(st.sampled_from(CONNACK_CODES) if level == 5 else st.integers(0, 5))
    return ConnAck(
        session_present=draw(st.booleans()) if code == 0 else False,
        reason_code=code,
        properties=draw(no_props(level, properties("CONNACK"))),
    )


def to_client(level: int) -> st.SearchStrategy[Packet]:
    v5 = level == 5
    packets = [
        connacks(level),
        publishes(level, to_client=True),
        acks(level),
        st.builds(
            SubAck,
            packet_id=packet_ids,
            reason_codes=st.lists(
                st.sampled_from(SUBACK_CODES if v5 else (0, 1, 2, 0x80)), min_size=1, max_size=4
            ).map(tuple),
            properties=no_props(level, properties("ACK")),
        ),
        st.builds(
            UnsubAck,
            packet_id=packet_ids,
            reason_codes=st.lists(st.sampled_from(UNSUBACK_CODES), min_size=1, max_size=4).map(
                tuple
            )
            if v5
            else st.just(()),
            properties=no_props(level, properties("ACK")),
        ),
        st.just(PingResp()),
    ]
    if v5:
        server_disconnect = properties("DISCONNECT", without=("session_expiry_interval",))
        packets.append(  # MQTT-3.14.2-2: no Session Expiry Interval from a server
            st.builds(
                Disconnect,
                reason_code=st.sampled_from(DISCONNECT_CODES),
                properties=server_disconnect,
            )
        )
        packets.append(auths())
    return st.one_of(packets)


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    v5 = level == 5
    props = draw(no_props(level, properties("CONNECT")))
    if props.authentication_data is not None and props.authentication_method is None:
        props = msgspec.structs.replace(props, authentication_method="m")  # section 3.1.2.11.10
    will = None
    if draw(st.booleans()):
        will = Will(
            topic=draw(topic_names),
            payload=draw(binary),
            qos=draw(st.integers(0, 2)),
            retain=draw(st.booleans()),
            properties=draw(no_props(level, properties("WILL"))),
        )
    username = draw(st.none() | text)
    password = draw(st.none() | binary) if username is not None or v5 else None
    return Connect(
        client_id=draw(text),
        protocol_level=level,
        protocol_name="MQIsdp" if level == 3 else "MQTT",
        clean_start=draw(st.booleans()),
        keep_alive=draw(u16),
        username=username,
        password=password,
        will=will,
        properties=props,
    )


levels = st.sampled_from((3, 4, 5))


@st.composite
def sides_and_packets(draw: st.DrawFn) -> tuple[int, bool, Packet]:
    """(level, server side?, a packet that side decodes): CONNECT excluded."""
    level = draw(levels)
    server = draw(st.booleans())
    packet = draw(to_server(level) if server else to_client(level))
    return level, server, packet


# -- Helpers ----------------------------------------------------------------------------------


def decode_all(decoder: Decoder, data: bytes) -> list[Packet]:
    decoder.receive_data(data)
    packets = []
    while (packet := decoder.next_packet()) is not NEED_DATA:
        packets.append(packet)
    return packets


def decode_or_reject(decoder: Decoder, data: bytes) -> list[Packet]:
    """Decode what can be decoded; a RemoteProtocolError is an acceptable end, any other
    exception fails the test."""
    packets: list[Packet] = []
    decoder.receive_data(data)
    try:
        while (packet := decoder.next_packet()) is not NEED_DATA:
            packets.append(packet)
    except RemoteProtocolError as error:
        assert 0x80 <= error.reason_code <= 0xFF
    return packets


def assert_reencodes(packets: list[Packet], level: int, server: bool) -> None:
    """Whatever the decoder accepted, encode accepts and reads back unchanged."""
    for packet in packets:
        if isinstance(packet, Connect):
            decoder = Decoder(server=True)
            level = packet.protocol_level
        else:
            decoder = Decoder(server=server, protocol_level=level)
        assert decode_all(decoder, encode(packet, level)) == [packet]


# -- Round trips ------------------------------------------------------------------------------


@FUZZ
@given(sides_and_packets())
def test_round_trip(case: tuple[int, bool, Packet]) -> None:
    level, server, packet = case
    data = encode(packet, level)
    decoder = Decoder(server=server, protocol_level=level)
    assert decode_all(decoder, data) == [packet]
    assert decoder.buffered == 0


@FUZZ
@given(levels.flatmap(connects))
def test_connect_round_trip(packet: Connect) -> None:
    decoder = Decoder(server=True)
    assert decode_all(decoder, encode(packet, packet.protocol_level)) == [packet]
    assert decoder.protocol_level == packet.protocol_level


@FEW
@given(levels, st.data())
def test_stream_of_packets_split_anywhere(level: int, data: st.DataObject) -> None:
    """A session's worth of packets, cut into random chunks, decodes to the same packets."""
    packets = [data.draw(connects(level)), *data.draw(st.lists(to_server(level), max_size=5))]
    stream = b"".join(encode(packet, level) for packet in packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = Decoder(server=True)
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += decode_all(decoder, stream[start:end])
    assert decoded == packets
    assert decoder.buffered == 0


# -- Random and mutated input -----------------------------------------------------------------


def _decoders(level: int) -> list[tuple[bool, Decoder]]:
    return [
        (True, Decoder(server=True)),
        (True, Decoder(server=True, protocol_level=level)),
        (False, Decoder(server=False, protocol_level=level)),
    ]


@MANY
@given(levels, st.binary(max_size=200))
def test_random_bytes(level: int, data: bytes) -> None:
    for server, decoder in _decoders(level):
        assert_reencodes(decode_or_reject(decoder, data), level, server)


@MANY
@given(levels, st.binary(min_size=1, max_size=64))
def test_random_bytes_after_connect(level: int, data: bytes) -> None:
    decoder = Decoder(server=True)
    connect = Connect(
        client_id="c", protocol_level=level, protocol_name="MQIsdp" if level == 3 else "MQTT"
    )
    decoder.receive_data(encode(connect, level))
    assert decoder.next_packet() == connect
    assert_reencodes(decode_or_reject(decoder, data), level, True)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, bool, bytes]:
    """A valid packet's bytes with a few bytes flipped, inserted, deleted or cut off."""
    level = draw(levels)
    server = draw(st.booleans())
    packet = draw(to_server(level) if server else to_client(level))
    data = bytearray(encode(packet, level))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate")))
        index = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and data:
            data[index] = draw(st.sampled_from((0x00, 0x7F, 0x80, 0xFF, 0x23, 0x2B)))
        elif action == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and data:
            del data[index]
        elif action == "truncate":
            del data[index:]
    return level, server, bytes(data)


@FUZZ
@given(mutated())
def test_mutated_packets(case: tuple[int, bool, bytes]) -> None:
    level, server, data = case
    for side in (server, not server):  # and fed to the wrong side, too
        packets = decode_or_reject(Decoder(server=side, protocol_level=level), data)
        assert_reencodes(packets, level, side)


@FUZZ
@given(levels.flatmap(connects), st.data())
def test_mutated_connect(packet: Connect, data: st.DataObject) -> None:
    raw = bytearray(encode(packet, packet.protocol_level))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
    packets = decode_or_reject(Decoder(server=True), bytes(raw))
    assert_reencodes(packets, packet.protocol_level, True)
