"""Malformed and forbidden input, and the reason code the decoder raises for it.

The packets are written out byte by byte here, independently of the encoder."""

from __future__ import annotations

import tracemalloc

import pytest

from hongshan.errors import RemoteProtocolError
from hongshan.mqtt.codec import MAX_PACKET_SIZE, NEED_DATA, Decoder
from hongshan.mqtt.packets import Connect, Publish

MALFORMED = 0x81
PROTOCOL = 0x82
UNSUPPORTED = 0x84
TOPIC_NAME = 0x90
TOPIC_ALIAS = 0x94
TOO_LARGE = 0x95


def vbi(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pkt(first: int, body: bytes) -> bytes:
    return bytes((first,)) + vbi(len(body)) + body


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return vbi(len(body)) + body


def connect(level: int = 4, flags: int = 0x02, payload: bytes = s("c"), prop: bytes = b"") -> bytes:
    name = s("MQIsdp") if level == 3 else s("MQTT")
    if level == 5 and not prop:
        prop = b"\x00"
    return pkt(0x10, name + bytes((level, flags)) + u16(60) + prop + payload)


def bad(
    name: str,
    data: bytes,
    code: int,
    *,
    level: int = 4,
    server: bool = True,
    connected: bool = True,
) -> object:
    return pytest.param(data, code, level, server, connected, id=name)


CLIENT = {"server": False}
FRESH = {"connected": False}
V5 = {"level": 5}

CASES = [
    # -- fixed header
    bad("remaining-length-5-bytes", b"\x30\xff\xff\xff\xff\x01", MALFORMED),
    bad("remaining-length-4th-byte-continues", b"\x30\x80\x80\x80\x80", MALFORMED),
    bad("packet-type-0", b"\x00\x00", MALFORMED),
    bad("auth-before-5.0", b"\xf0\x00", MALFORMED),
    bad("auth-before-5.0-client", b"\xf0\x00", MALFORMED, **CLIENT),
    bad("qos-3", pkt(0x36, s("a") + u16(1)), MALFORMED),
    bad("qos-3-v5", pkt(0x36, s("a") + u16(1) + b"\x00"), MALFORMED, **V5),
    bad("dup-at-qos-0", pkt(0x38, s("a")), MALFORMED),
    bad("dup-at-qos-0-client", pkt(0x38, s("a")), MALFORMED, **CLIENT),
    bad("puback-flags", pkt(0x41, u16(1)), MALFORMED),
    bad("pubrel-flags-0", pkt(0x60, u16(1)), MALFORMED),
    bad("pubrel-flags-0-v5", pkt(0x60, u16(1)), MALFORMED, **V5),
    bad("subscribe-flags-0", pkt(0x80, u16(1) + s("a") + b"\x00"), MALFORMED),
    bad("unsubscribe-flags-0", pkt(0xA0, u16(1) + s("a")), MALFORMED),
    bad("pingreq-flags", b"\xc1\x00", MALFORMED),
    bad("disconnect-flags", b"\xe2\x00", MALFORMED),
    bad("connect-flags", b"\x11" + connect()[1:], MALFORMED, **FRESH),
    bad("connack-flags", b"\x21\x02\x00\x00", MALFORMED, **CLIENT),
    # -- state: MQTT-3.1.0-1, MQTT-3.1.0-2, and packets sent the wrong way
    bad("first-packet-pingreq", b"\xc0\x00", PROTOCOL, **FRESH),
    bad("first-packet-publish", pkt(0x30, s("a")), PROTOCOL, **FRESH),
    bad("second-connect", connect(), PROTOCOL),
    bad("second-connect-v5", connect(5), PROTOCOL, **V5),
    bad("connack-to-server", b"\x20\x02\x00\x00", PROTOCOL),
    bad("subscribe-to-client", pkt(0x82, u16(1) + s("a") + b"\x00"), PROTOCOL, **CLIENT),
    bad("connect-to-client", connect(), PROTOCOL, **CLIENT),
    bad("disconnect-to-client-v4", b"\xe0\x00", PROTOCOL, **CLIENT),
    bad("pingresp-to-server", b"\xd0\x00", PROTOCOL),
    # -- CONNECT
    bad("unknown-level", connect(6), UNSUPPORTED, **FRESH),
    bad("level-0", connect(0), UNSUPPORTED, **FRESH),
    bad(
        "mqtt-level-3", pkt(0x10, s("MQTT") + b"\x03\x02" + u16(60) + s("c")), UNSUPPORTED, **FRESH
    ),
    bad(
        "mqisdp-level-4",
        pkt(0x10, s("MQIsdp") + b"\x04\x02" + u16(9) + s("c")),
        UNSUPPORTED,
        **FRESH,
    ),
    bad("bridge-bit-level", connect(0x84), UNSUPPORTED, **FRESH),
    bad(
        "protocol-name-http",
        pkt(0x10, s("HTTP") + b"\x04\x02" + u16(9) + s("c")),
        UNSUPPORTED,
        **FRESH,
    ),
    bad("reserved-connect-flag", connect(flags=0x03), MALFORMED, **FRESH),
    bad("will-qos-3", connect(flags=0x1E, payload=s("c") + s("w") + s(b"x")), MALFORMED, **FRESH),
    bad("will-qos-without-will", connect(flags=0x0A), MALFORMED, **FRESH),
    bad("will-retain-without-will", connect(flags=0x22), MALFORMED, **FRESH),
    bad(
        "password-without-username",
        connect(flags=0x42, payload=s("c") + s(b"pw")),
        MALFORMED,
        **FRESH,
    ),
    bad(
        "password-without-username-v3",
        connect(3, flags=0x42, payload=s("c") + s(b"pw")),
        MALFORMED,
        **FRESH,
    ),
    bad(
        "will-topic-wildcard",
        connect(flags=0x06, payload=s("c") + s("a/#") + s(b"x")),
        TOPIC_NAME,
        **FRESH,
    ),
    bad(
        "will-topic-empty",
        connect(flags=0x06, payload=s("c") + s("") + s(b"x")),
        TOPIC_NAME,
        **FRESH,
    ),
    bad("will-missing", connect(flags=0x06), MALFORMED, **FRESH),
    bad("username-missing", connect(flags=0x82), MALFORMED, **FRESH),
    bad("client-id-bad-utf8", connect(payload=s(b"\xc3\x28")), MALFORMED, **FRESH),
    bad("client-id-nul", connect(payload=s("a\x00b")), MALFORMED, **FRESH),
    bad("client-id-truncated", connect(payload=u16(5) + b"abc"), MALFORMED, **FRESH),
    bad("connect-trailing-byte", connect(payload=s("c") + b"!"), MALFORMED, **FRESH),
    bad("connect-truncated-header", pkt(0x10, s("MQTT") + b"\x04\x02"), MALFORMED, **FRESH),
    bad("connect-empty", b"\x10\x00", MALFORMED, **FRESH),
    bad("connect-v5-topic-alias", connect(5, prop=props(b"\x23" + u16(1))), PROTOCOL, **FRESH),
    bad("connect-v5-will-delay", connect(5, prop=props(b"\x18" + bytes(4))), PROTOCOL, **FRESH),
    bad(
        "connect-v5-receive-maximum-0", connect(5, prop=props(b"\x21" + u16(0))), PROTOCOL, **FRESH
    ),
    bad(
        "connect-v5-max-packet-size-0",
        connect(5, prop=props(b"\x27" + bytes(4))),
        PROTOCOL,
        **FRESH,
    ),
    bad("connect-v5-request-problem-2", connect(5, prop=props(b"\x17\x02")), PROTOCOL, **FRESH),
    bad("connect-v5-request-response-2", connect(5, prop=props(b"\x19\x02")), PROTOCOL, **FRESH),
    bad(
        "connect-v5-auth-data-no-method",
        connect(5, prop=props(b"\x16" + s(b"x"))),
        PROTOCOL,
        **FRESH,
    ),
    bad(
        "connect-v5-session-expiry-twice",
        connect(5, prop=props(b"\x11" + bytes(4), b"\x11" + bytes(4))),
        PROTOCOL,
        **FRESH,
    ),
    bad(
        "will-v5-session-expiry",
        connect(5, flags=0x06, payload=s("c") + props(b"\x11" + bytes(4)) + s("w") + s(b"x")),
        PROTOCOL,
        **FRESH,
    ),
    bad(
        "will-v5-response-topic-wildcard",
        connect(5, flags=0x06, payload=s("c") + props(b"\x08" + s("r/+")) + s("w") + s(b"x")),
        PROTOCOL,
        **FRESH,
    ),
    # -- PUBLISH
    bad("empty-topic", pkt(0x30, s("")), TOPIC_NAME),
    bad("empty-topic-v5-no-alias", pkt(0x30, s("") + b"\x00"), PROTOCOL, **V5),
    bad("topic-plus", pkt(0x30, s("a/+")), TOPIC_NAME),
    bad("topic-hash", pkt(0x30, s("a/#")), TOPIC_NAME),
    bad("topic-wildcard-v5-client", pkt(0x30, s("#") + b"\x00"), TOPIC_NAME, **V5, **CLIENT),
    bad("topic-bad-utf8", pkt(0x30, s(b"a\xc3\x28")), MALFORMED),
    bad("topic-surrogate", pkt(0x30, s(b"\xed\xa0\x80")), MALFORMED),
    bad("topic-overlong", pkt(0x30, s(b"\xc0\xaf")), MALFORMED),
    bad("topic-beyond-4-byte-utf8", pkt(0x30, s(b"\xf4\x90\x80\x80")), MALFORMED),
    bad("topic-nul", pkt(0x30, s("a\x00b")), MALFORMED),
    bad("topic-nul-v5", pkt(0x30, s("a\x00b") + b"\x00"), MALFORMED, **V5),
    bad("topic-length-beyond-packet", pkt(0x30, u16(10) + b"abc"), MALFORMED),
    bad("publish-empty-body", b"\x30\x00", MALFORMED),
    bad("publish-one-byte", b"\x30\x01\x00", MALFORMED),
    bad("packet-id-0", pkt(0x32, s("a") + u16(0)), PROTOCOL),
    bad("packet-id-0-v5", pkt(0x34, s("a") + u16(0) + b"\x00"), PROTOCOL, **V5),
    bad("packet-id-missing", pkt(0x32, s("a") + b"\x01"), MALFORMED),
    bad("v5-property-length-missing", pkt(0x30, s("a")), MALFORMED, **V5),
    bad("v5-property-length-beyond-packet", pkt(0x30, s("a") + b"\x05\x01"), MALFORMED, **V5),
    bad(
        "v5-property-value-beyond-length",
        pkt(0x30, s("a") + b"\x02\x02\x00" + b"\x00" * 5),
        MALFORMED,
        **V5,
    ),
    bad("v5-unknown-property", pkt(0x30, s("a") + props(b"\x7f\x00")), MALFORMED, **V5),
    bad("v5-property-id-0", pkt(0x30, s("a") + props(b"\x00")), MALFORMED, **V5),
    bad("v5-property-id-multibyte", pkt(0x30, s("a") + props(b"\x81\x00\x00")), MALFORMED, **V5),
    bad(
        "v5-duplicate-expiry",
        pkt(0x30, s("a") + props(b"\x02" + bytes(4), b"\x02" + bytes(4))),
        PROTOCOL,
        **V5,
    ),
    bad(
        "v5-duplicate-content-type",
        pkt(0x30, s("a") + props(b"\x03" + s("x"), b"\x03" + s("x"))),
        PROTOCOL,
        **V5,
    ),
    bad(
        "v5-duplicate-topic-alias",
        pkt(0x30, s("a") + props(b"\x23" + u16(1), b"\x23" + u16(2))),
        PROTOCOL,
        **V5,
    ),
    bad(
        "v5-not-allowed-session-expiry",
        pkt(0x30, s("a") + props(b"\x11" + bytes(4))),
        PROTOCOL,
        **V5,
    ),
    bad(
        "v5-not-allowed-reason-string", pkt(0x30, s("a") + props(b"\x1f" + s("x"))), PROTOCOL, **V5
    ),
    bad("v5-topic-alias-0", pkt(0x30, s("a") + props(b"\x23" + u16(0))), TOPIC_ALIAS, **V5),
    bad("v5-payload-format-2", pkt(0x30, s("a") + props(b"\x01\x02")), PROTOCOL, **V5),
    bad(
        "v5-response-topic-wildcard", pkt(0x30, s("a") + props(b"\x08" + s("r/#"))), PROTOCOL, **V5
    ),
    bad("v5-response-topic-empty", pkt(0x30, s("a") + props(b"\x08" + s(""))), PROTOCOL, **V5),
    bad(
        "v5-user-property-bad-utf8",
        pkt(0x30, s("a") + props(b"\x26" + s("k") + s(b"\xff"))),
        MALFORMED,
        **V5,
    ),
    bad("v5-user-property-half", pkt(0x30, s("a") + props(b"\x26" + s("k"))), MALFORMED, **V5),
    bad("v5-subscription-id-from-client", pkt(0x30, s("a") + props(b"\x0b\x01")), PROTOCOL, **V5),
    bad("v5-subscription-id-0", pkt(0x30, s("a") + props(b"\x0b\x00")), PROTOCOL, **V5, **CLIENT),
    bad(
        "v5-subscription-id-5-bytes",
        pkt(0x30, s("a") + props(b"\x0b\xff\xff\xff\xff\x01")),
        MALFORMED,
        **V5,
        **CLIENT,
    ),
    # -- PUBACK, PUBREC, PUBREL, PUBCOMP
    bad("puback-packet-id-0", pkt(0x40, u16(0)), PROTOCOL),
    bad("puback-short", pkt(0x40, b"\x01"), MALFORMED),
    bad("puback-trailing-v4", pkt(0x40, u16(1) + b"\x00"), MALFORMED),
    bad("pubrec-trailing-v4", pkt(0x50, u16(1) + b"\x00\x00"), MALFORMED, **CLIENT),
    bad("puback-v5-reason-01", pkt(0x40, u16(1) + b"\x01"), PROTOCOL, **V5),
    bad("pubrel-v5-reason-10", pkt(0x62, u16(1) + b"\x10"), PROTOCOL, **V5),
    bad("puback-v5-trailing", pkt(0x40, u16(1) + b"\x00\x00\xff"), MALFORMED, **V5),
    bad(
        "puback-v5-topic-alias",
        pkt(0x40, u16(1) + b"\x00" + props(b"\x23" + u16(1))),
        PROTOCOL,
        **V5,
    ),
    bad("pubcomp-v5-props-beyond", pkt(0x70, u16(1) + b"\x00\x09"), MALFORMED, **V5),
    # -- SUBSCRIBE, UNSUBSCRIBE
    bad("subscribe-no-filters", pkt(0x82, u16(1)), PROTOCOL),
    bad("subscribe-no-filters-v5", pkt(0x82, u16(1) + b"\x00"), PROTOCOL, **V5),
    bad("subscribe-packet-id-0", pkt(0x82, u16(0) + s("a") + b"\x00"), PROTOCOL),
    bad("subscribe-no-options", pkt(0x82, u16(1) + s("a")), MALFORMED),
    bad("subscribe-qos-3", pkt(0x82, u16(1) + s("a") + b"\x03"), MALFORMED),
    bad("subscribe-reserved-bits-v4", pkt(0x82, u16(1) + s("a") + b"\x04"), MALFORMED),
    bad("subscribe-qos-3-v5", pkt(0x82, u16(1) + b"\x00" + s("a") + b"\x03"), PROTOCOL, **V5),
    bad(
        "subscribe-reserved-bits-v5",
        pkt(0x82, u16(1) + b"\x00" + s("a") + b"\x40"),
        MALFORMED,
        **V5,
    ),
    bad(
        "subscribe-retain-handling-3",
        pkt(0x82, u16(1) + b"\x00" + s("a") + b"\x30"),
        PROTOCOL,
        **V5,
    ),
    bad(
        "subscribe-shared-no-local",
        pkt(0x82, u16(1) + b"\x00" + s("$share/g/a") + b"\x04"),
        PROTOCOL,
        **V5,
    ),
    bad("subscribe-filter-bad-utf8", pkt(0x82, u16(1) + s(b"\xff") + b"\x00"), MALFORMED),
    bad(
        "subscribe-two-subscription-ids",
        pkt(0x82, u16(1) + props(b"\x0b\x01", b"\x0b\x02") + s("a") + b"\x00"),
        PROTOCOL,
        **V5,
    ),
    bad(
        "subscribe-subscription-id-0",
        pkt(0x82, u16(1) + props(b"\x0b\x00") + s("a") + b"\x00"),
        PROTOCOL,
        **V5,
    ),
    bad(
        "subscribe-reason-string",
        pkt(0x82, u16(1) + props(b"\x1f" + s("x")) + s("a") + b"\x00"),
        PROTOCOL,
        **V5,
    ),
    bad("unsubscribe-no-filters", pkt(0xA2, u16(1)), PROTOCOL),
    bad("unsubscribe-no-filters-v5", pkt(0xA2, u16(1) + b"\x00"), PROTOCOL, **V5),
    bad("unsubscribe-packet-id-0", pkt(0xA2, u16(0) + s("a")), PROTOCOL),
    bad("unsubscribe-truncated-filter", pkt(0xA2, u16(1) + s("a") + b"\x00"), MALFORMED),
    # -- PINGREQ, DISCONNECT, AUTH
    bad("pingreq-body", b"\xc0\x01\x00", MALFORMED),
    bad("disconnect-body-v4", b"\xe0\x01\x00", MALFORMED),
    bad("disconnect-v5-reason-01", b"\xe0\x01\x01", PROTOCOL, **V5),
    bad("disconnect-v5-trailing", b"\xe0\x03\x00\x00\x00", MALFORMED, **V5),
    bad("disconnect-v5-topic-alias", pkt(0xE0, b"\x00" + props(b"\x23" + u16(1))), PROTOCOL, **V5),
    bad(
        "disconnect-v5-session-expiry-from-server",
        pkt(0xE0, b"\x00" + props(b"\x11" + bytes(4))),
        PROTOCOL,
        **V5,
        **CLIENT,
    ),
    bad("auth-v5-reason-00-with-garbage", b"\xf0\x02\x00\x05", MALFORMED, **V5),
    bad("auth-v5-reason-87", b"\xf0\x01\x87", PROTOCOL, **V5),
    bad("auth-v5-flags", b"\xf1\x00", MALFORMED, **V5),
    # -- server to client
    bad("connack-short", b"\x20\x01\x00", MALFORMED, **CLIENT),
    bad("connack-trailing-v4", b"\x20\x03\x00\x00\x00", MALFORMED, **CLIENT),
    bad("connack-reserved-ack-flags", b"\x20\x02\x02\x00", MALFORMED, **CLIENT),
    bad("connack-return-code-6", b"\x20\x02\x00\x06", PROTOCOL, **CLIENT),
    bad("connack-session-present-refused", b"\x20\x02\x01\x05", PROTOCOL, **CLIENT),
    bad("connack-v5-no-properties", b"\x20\x02\x00\x00", MALFORMED, **V5, **CLIENT),
    bad("connack-v5-reason-05", b"\x20\x03\x00\x05\x00", PROTOCOL, **V5, **CLIENT),
    bad(
        "connack-v5-maximum-qos-2",
        pkt(0x20, b"\x00\x00" + props(b"\x24\x02")),
        PROTOCOL,
        **V5,
        **CLIENT,
    ),
    bad(
        "connack-v5-retain-available-2",
        pkt(0x20, b"\x00\x00" + props(b"\x25\x02")),
        PROTOCOL,
        **V5,
        **CLIENT,
    ),
    bad(
        "connack-v5-receive-maximum-0",
        pkt(0x20, b"\x00\x00" + props(b"\x21" + u16(0))),
        PROTOCOL,
        **V5,
        **CLIENT,
    ),
    bad(
        "connack-v5-will-delay",
        pkt(0x20, b"\x00\x00" + props(b"\x18" + bytes(4))),
        PROTOCOL,
        **V5,
        **CLIENT,
    ),
    bad(
        "connack-v5-u32-truncated",
        pkt(0x20, b"\x00\x00" + props(b"\x11\x00\x00")),
        MALFORMED,
        **V5,
        **CLIENT,
    ),
    bad("suback-no-codes", pkt(0x90, u16(1)), PROTOCOL, **CLIENT),
    bad("suback-code-3", pkt(0x90, u16(1) + b"\x03"), PROTOCOL, **CLIENT),
    bad("suback-v5-code-03", pkt(0x90, u16(1) + b"\x00\x03"), PROTOCOL, **V5, **CLIENT),
    bad("unsuback-v4-payload", pkt(0xB0, u16(1) + b"\x00"), MALFORMED, **CLIENT),
    bad("unsuback-v5-no-codes", pkt(0xB0, u16(1) + b"\x00"), PROTOCOL, **V5, **CLIENT),
    bad("unsuback-v5-code-01", pkt(0xB0, u16(1) + b"\x00\x01"), PROTOCOL, **V5, **CLIENT),
    bad("pingresp-body", b"\xd0\x01\x00", MALFORMED, **CLIENT),
]


def _decoder(level: int, server: bool, connected: bool) -> Decoder:
    if server and not connected:
        return Decoder(server=True)
    return Decoder(server=server, protocol_level=level)


@pytest.mark.parametrize(("data", "code", "level", "server", "connected"), CASES)
def test_malformed(data: bytes, code: int, level: int, server: bool, connected: bool) -> None:
    decoder = _decoder(level, server, connected)
    decoder.receive_data(data)
    with pytest.raises(RemoteProtocolError) as raised:
        decoder.next_packet()
    assert raised.value.reason_code == code, str(raised.value)
    # the decoder stays put: asking again gives the same answer
    with pytest.raises(RemoteProtocolError) as again:
        decoder.next_packet()
    assert again.value.reason_code == code


@pytest.mark.parametrize(("data", "code", "level", "server", "connected"), CASES)
def test_malformed_byte_by_byte(
    data: bytes, code: int, level: int, server: bool, connected: bool
) -> None:
    """Fed a byte at a time, the error comes no later than the packet's last byte."""
    decoder = _decoder(level, server, connected)
    with pytest.raises(RemoteProtocolError) as raised:
        for index in range(len(data)):
            decoder.receive_data(data[index : index + 1])
            assert decoder.next_packet() is NEED_DATA
    assert raised.value.reason_code == code


def test_packet_too_large_buffers_nothing_beyond_the_header() -> None:
    decoder = Decoder(server=True, protocol_level=4, max_packet_size=1024)
    decoder.receive_data(b"\x30\xff\xff\xff\x7f")  # claims 268,435,455 bytes
    with pytest.raises(RemoteProtocolError) as raised:
        decoder.next_packet()
    assert raised.value.reason_code == TOO_LARGE
    assert decoder.buffered == 5


def test_packet_too_large_is_raised_before_the_body_arrives() -> None:
    decoder = Decoder(server=True, protocol_level=5, max_packet_size=100)
    decoder.receive_data(b"\x30\x63\x00\x01a")  # 2 + 99 bytes: one too many
    with pytest.raises(RemoteProtocolError) as raised:
        decoder.next_packet()
    assert raised.value.reason_code == TOO_LARGE
    # exactly the maximum is fine
    decoder = Decoder(server=True, protocol_level=4, max_packet_size=100)
    data = pkt(0x30, s("a") + b"x" * 95)
    assert len(data) == 100
    decoder.receive_data(data)
    assert decoder.next_packet() == Publish(topic="a", payload=b"x" * 95)


def test_max_packet_size_can_be_lowered_after_connect() -> None:
    decoder = Decoder(server=True)
    decoder.receive_data(connect(5))
    assert isinstance(decoder.next_packet(), Connect)
    decoder.max_packet_size = 10
    decoder.receive_data(pkt(0x30, s("a") + b"\x00" + b"x" * 6))
    with pytest.raises(RemoteProtocolError) as raised:
        decoder.next_packet()
    assert raised.value.reason_code == TOO_LARGE


def test_a_claimed_length_allocates_nothing() -> None:
    """A peer claiming the largest packet and sending a few bytes costs a few bytes."""
    decoder = Decoder(server=True, protocol_level=4)
    assert decoder.max_packet_size == MAX_PACKET_SIZE
    tracemalloc.start()
    try:
        decoder.receive_data(b"\x30\xff\xff\xff\x7f\x00\x01a")
        for _ in range(100):
            decoder.receive_data(b"x" * 10)
            assert decoder.next_packet() is NEED_DATA
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert decoder.buffered == 8 + 1000


def test_unsupported_level_still_reports_the_level_when_known() -> None:
    decoder = Decoder(server=True)
    decoder.receive_data(connect(6))
    with pytest.raises(RemoteProtocolError):
        decoder.next_packet()
    assert decoder.protocol_level is None


def test_a_malformed_v5_connect_tells_the_level_to_answer_in() -> None:
    """The server answers a bad CONNECT with a CONNACK in the client's own version."""
    decoder = Decoder(server=True)
    decoder.receive_data(connect(5, prop=props(b"\x23" + u16(1))))
    with pytest.raises(RemoteProtocolError):
        decoder.next_packet()
    assert decoder.protocol_level == 5


def test_password_without_username_is_fine_in_5() -> None:
    decoder = Decoder(server=True)
    decoder.receive_data(connect(5, flags=0x42, payload=s("c") + s(b"pw")))
    packet = decoder.next_packet()
    assert isinstance(packet, Connect)
    assert packet.username is None
    assert packet.password == b"pw"


@pytest.mark.parametrize(
    "text",
    ["\u0001", "\u001f", "\u007f", "\u009f", "\ufffe", "\uffff", "\U0010ffff", "\ufeffbom"],
)
def test_allowed_code_points_are_accepted(text: str) -> None:
    """MQTT-1.5.4-3 and section 1.5.4: control characters and non-characters are not
    rejected, and a leading BOM is kept, not stripped."""
    decoder = Decoder(server=True, protocol_level=4)
    decoder.receive_data(pkt(0x30, s(text) + b"p"))
    assert decoder.next_packet() == Publish(topic=text, payload=b"p")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # non-minimal Remaining Length is read, not refused
        (b"\x30\x83\x00" + s("a"), Publish(topic="a")),
        # a PUBACK at level 5 may leave out the reason code and the property length
        (pkt(0x40, u16(7)), None),
    ],
)
def test_lenient_forms(data: bytes, expected: Publish | None) -> None:
    decoder = Decoder(server=True, protocol_level=5 if expected is None else 4)
    decoder.receive_data(data)
    packet = decoder.next_packet()
    if expected is not None:
        assert packet == expected
    assert decoder.buffered == 0
