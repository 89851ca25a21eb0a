"""Against other implementations: packets built by gmqtt's client, and MQTT 5.0 properties
packed and unpacked by paho-mqtt, read by our decoder and read by theirs from our encoder."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from gmqtt import Message
from gmqtt import Subscription as GmqttSubscription
from gmqtt.mqtt.constants import MQTTCommands
from gmqtt.mqtt.package import (
    CommandWithMidPacket,
    DisconnectPacket,
    LoginPackageFactor,
    PublishPacket,
    SimpleCommandPacket,
    SubscribePacket,
    UnsubscribePacket,
)
from gmqtt.mqtt.utils import IdGenerator
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from hongshan.mqtt.codec import NEED_DATA, Decoder, encode, encode_properties, encode_varint
from hongshan.mqtt.packets import (
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    PingReq,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Subscribe,
    Subscription,
    Unsubscribe,
    Will,
)


def _protocol(level: int) -> Any:
    return SimpleNamespace(proto_name=b"MQTT", proto_ver=level, id_generator=IdGenerator())


def _decode(data: bytes, level: int, *, connected: bool = True) -> Packet:
    decoder = Decoder(server=True, protocol_level=level) if connected else Decoder(server=True)
    decoder.receive_data(bytes(data))
    packet = decoder.next_packet()
    assert packet is not NEED_DATA
    assert decoder.buffered == 0
    return packet


@pytest.mark.parametrize("level", [4, 5])
def test_gmqtt_connect(level: int) -> None:
    will = Message("lights/7/status", b"offline", qos=1, retain=True)
    properties = {"session_expiry_interval": 60, "receive_maximum": 10} if level == 5 else {}
    data = LoginPackageFactor.build_package(
        "lamp-7", "user", "pass", True, 30, _protocol(level), will, **properties
    )
    assert _decode(data, level, connected=False) == Connect(
        client_id="lamp-7",
        protocol_level=level,
        keep_alive=30,
        username="user",
        password=b"pass",
        will=Will(topic="lights/7/status", payload=b"offline", qos=1, retain=True),
        properties=Properties(session_expiry_interval=60, receive_maximum=10)
        if level == 5
        else Properties(),
    )


@pytest.mark.parametrize("level", [4, 5])
def test_gmqtt_publish(level: int) -> None:
    v5 = {
        "content_type": "application/json",
        "message_expiry_interval": 30,
        "user_property": [("a", "1"), ("b", "2")],
        "response_topic": "reply/7",
        "correlation_data": b"\x01\x02",
    }
    message = Message("lights/7/telemetry", b'{"lux": 12}', qos=1, **(v5 if level == 5 else {}))
    packet_id, data = PublishPacket.build_package(message, _protocol(level))
    expected_props = Properties(
        message_expiry_interval=30,
        content_type="application/json",
        response_topic="reply/7",
        correlation_data=b"\x01\x02",
        user_properties=(("a", "1"), ("b", "2")),
    )
    assert _decode(data, level) == Publish(
        topic="lights/7/telemetry",
        payload=b'{"lux": 12}',
        qos=1,
        packet_id=packet_id,
        properties=expected_props if level == 5 else Properties(),
    )


@pytest.mark.parametrize("level", [4, 5])
def test_gmqtt_subscribe_and_unsubscribe(level: int) -> None:
    subscriptions = [
        GmqttSubscription("lights/+/status", qos=1),
        GmqttSubscription("meters/#", qos=2, no_local=True, retain_as_published=True),
    ]
    if level == 5:
        subscriptions.append(GmqttSubscription("parking/1", retain_handling_options=2))
    packet_id, data = SubscribePacket.build_package(subscriptions, _protocol(level))
    ours = [
        Subscription(topic_filter="lights/+/status", qos=1),
        Subscription(topic_filter="meters/#", qos=2, no_local=True, retain_as_published=True)
        if level == 5
        else Subscription(topic_filter="meters/#", qos=2),
    ]
    if level == 5:
        ours.append(Subscription(topic_filter="parking/1", retain_handling=2))
    if level == 4:  # gmqtt writes the 5.0 option bits whatever the level: 3.1.1 refuses them
        data = bytearray(data)
        data[-1] = 2  # put the 3.1.1 requested-QoS byte back
    assert _decode(data, level) == Subscribe(packet_id=packet_id, subscriptions=tuple(ours))

    packet_id, data = UnsubscribePacket.build_package(["lights/+/status", "x"], _protocol(level))
    assert _decode(data, level) == Unsubscribe(
        packet_id=packet_id, topic_filters=("lights/+/status", "x")
    )


@pytest.mark.parametrize("level", [4, 5])
def test_gmqtt_acks_ping_disconnect(level: int) -> None:
    for command, cls in (
        (MQTTCommands.PUBACK, PubAck),
        (MQTTCommands.PUBREC, PubRec),
        (MQTTCommands.PUBREL | 0x02, PubRel),
        (MQTTCommands.PUBCOMP, PubComp),
    ):
        data = CommandWithMidPacket.build_package(command, 513, False, proto_ver=level)
        assert _decode(data, level) == cls(packet_id=513)
    assert _decode(SimpleCommandPacket.build_package(MQTTCommands.PINGREQ), level) == PingReq()
    data = DisconnectPacket.build_package(_protocol(level))
    assert _decode(data, level) == Disconnect()


# -- Properties against paho-mqtt -------------------------------------------------------------

PAHO_PUBLISH = {
    "PayloadFormatIndicator": 1,
    "MessageExpiryInterval": 4_000_000_000,
    "ContentType": "text/plain; charset=utf-8",
    "ResponseTopic": "a/b",
    "CorrelationData": b"\x00\xff",
    "SubscriptionIdentifier": 268_435_455,
    "TopicAlias": 3,
}
OURS_PUBLISH = Properties(
    payload_format_indicator=1,
    message_expiry_interval=4_000_000_000,
    content_type="text/plain; charset=utf-8",
    response_topic="a/b",
    correlation_data=b"\x00\xff",
    subscription_identifiers=(268_435_455,),
    topic_alias=3,
    user_properties=(("k", "v1"), ("k", "v2"), ("街", "灯")),
)
PAHO_CONNACK = {
    "SessionExpiryInterval": 7200,
    "ReceiveMaximum": 100,
    "MaximumQoS": 1,
    "RetainAvailable": 0,
    "MaximumPacketSize": 65_536,
    "AssignedClientIdentifier": "auto-1",
    "TopicAliasMaximum": 16,
    "ReasonString": "ok",
    "WildcardSubscriptionAvailable": 1,
    "SubscriptionIdentifierAvailable": 0,
    "SharedSubscriptionAvailable": 1,
    "ServerKeepAlive": 120,
    "ResponseInformation": "resp",
    "ServerReference": "b.example",
    "AuthenticationMethod": "SCRAM",
    "AuthenticationData": b"\x01",
}
OURS_CONNACK = Properties(
    session_expiry_interval=7200,
    receive_maximum=100,
    maximum_qos=1,
    retain_available=0,
    maximum_packet_size=65_536,
    assigned_client_identifier="auto-1",
    topic_alias_maximum=16,
    reason_string="ok",
    wildcard_subscription_available=1,
    subscription_identifier_available=0,
    shared_subscription_available=1,
    server_keep_alive=120,
    response_information="resp",
    server_reference="b.example",
    authentication_method="SCRAM",
    authentication_data=b"\x01",
    user_properties=(("k", "v1"), ("k", "v2"), ("街", "灯")),
)
CASES = [
    (PacketTypes.PUBLISH, PacketType.PUBLISH, PAHO_PUBLISH, OURS_PUBLISH),
    (PacketTypes.CONNACK, PacketType.CONNACK, PAHO_CONNACK, OURS_CONNACK),
]


def _paho(paho_type: int, values: dict[str, Any]) -> PahoProperties:
    props = PahoProperties(paho_type)
    for name, value in values.items():
        setattr(props, name, value)
    for pair in (("k", "v1"), ("k", "v2"), ("街", "灯")):
        props.UserProperty = pair  # paho appends user properties
    return props


@pytest.mark.parametrize(("paho_type", "packet_type", "paho_values", "ours"), CASES)
def test_paho_properties_read_by_us(
    paho_type: int, packet_type: PacketType, paho_values: dict[str, Any], ours: Properties
) -> None:
    block = bytes(_paho(paho_type, paho_values).pack())
    if packet_type == PacketType.PUBLISH:
        decoder = Decoder(server=False, protocol_level=5)
        decoder.receive_data(bytes((0x30,)) + encode_varint(3 + len(block)) + b"\x00\x01t" + block)
        assert decoder.next_packet() == Publish(topic="t", properties=ours)
    else:
        decoder = Decoder(server=False, protocol_level=5)
        decoder.receive_data(bytes((0x20,)) + encode_varint(2 + len(block)) + b"\x00\x00" + block)
        assert decoder.next_packet() == ConnAck(properties=ours)


@pytest.mark.parametrize(("paho_type", "packet_type", "paho_values", "ours"), CASES)
def test_our_properties_read_by_paho(
    paho_type: int, packet_type: PacketType, paho_values: dict[str, Any], ours: Properties
) -> None:
    body = encode_properties(ours, packet_type)
    theirs = PahoProperties(paho_type)
    _, consumed = theirs.unpack(encode_varint(len(body)) + body)
    assert consumed == len(encode_varint(len(body))) + len(body)
    assert theirs.json() == _paho(paho_type, paho_values).json()


def test_our_publish_read_by_paho_properties() -> None:
    """The property block inside an encoded PUBLISH is where paho expects it."""
    data = encode(Publish(topic="t", qos=1, packet_id=1, properties=OURS_PUBLISH), 5)
    header = 2 if data[1] < 0x80 else 3
    theirs = PahoProperties(PacketTypes.PUBLISH)
    theirs.unpack(data[header + 3 + 2 :])  # after the fixed header, topic, packet identifier
    assert theirs.json() == _paho(PacketTypes.PUBLISH, PAHO_PUBLISH).json()
