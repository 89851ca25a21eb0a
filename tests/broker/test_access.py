"""Authentication and the topic ACL: who may connect, subscribe and publish, and how a refusal
looks on the wire in 3.1.1 and 5.0."""

from __future__ import annotations

import pytest

from broker_peers import CONNACK, PUBACK, PUBREC, V5, V311, Will, mosquitto_pub, payloads
from hongshan.identity.passwords import set_password

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])

ACL = """\
user alice
topic readwrite alice/#
topic read public/#
topic deny alice/secret

user bob
topic readwrite public/#
topic read alice/status

pattern readwrite clients/%c/#
pattern read users/%u/#
"""

REFUSED = {V311: 0x80, V5: 0x87}  # SUBACK: 3.1.1 3.9.3 Failure; 5.0 3.9.3 Not authorized


@pytest.fixture(scope="module")
def access_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("access")
    users = directory / "users"
    for name in ("alice", "bob", "carol"):
        set_password(users, name, f"{name}-pw")
    acl = directory / "acl"
    acl.write_text(ACL)
    return users, acl


@pytest.fixture
def secured(make_server, access_files):
    users, acl = access_files
    return make_server(password_file=str(users), acl_file=str(acl), allow_anonymous=False)


def user(paho_client, server, name, version=V5, client_id=""):
    return paho_client(
        server.port, version=version, client_id=client_id, username=name, password=f"{name}-pw"
    ).connect()


@VERSIONS
@pytest.mark.parametrize(("name", "password"), [("alice", "wrong"), ("mallory", "alice-pw")])
def test_bad_credentials_are_refused(secured, raw, version, name, password):
    client = raw(secured.port, version=version)
    connack = client.connect("intruder", username=name, password=password)
    # 3.1.1 3.2.2.3: return code 4, bad user name or password; 5.0 3.2.2.2: 0x86.
    assert connack.reason == {V311: 4, V5: 0x86}[version]
    assert connack.session_present is False  # MQTT-3.2.2-4 (3.1.1) / MQTT-3.2.2-6 (5.0)
    # MQTT-3.2.2-5 (3.1.1) / MQTT-3.2.2-7 (5.0): after a refusing CONNACK, the server closes.
    assert client.closed() == []


@VERSIONS
def test_no_credentials_with_anonymous_off_are_refused(secured, raw, version):
    client = raw(secured.port, version=version)
    connack = client.connect("anonymous")
    # 3.1.1: 5, not authorized; 5.0: 0x87, Not authorized.
    assert (connack.type, connack.reason) == (CONNACK, {V311: 5, V5: 0x87}[version])
    assert client.closed() == []


def test_refusal_seen_by_real_clients(secured, paho_client):
    client = paho_client(secured.port, username="alice", password="nope")
    client.connect(wait=False)
    assert client.connected.wait(10)
    assert client.connack_reason == 0x86
    output = mosquitto_pub(
        secured.port, "x", "y", "-u", "alice", "-P", "nope", version="mqttv311", ok=False
    )
    assert "bad user name or password" in output.lower()


@VERSIONS
def test_good_credentials_are_accepted(secured, paho_client, version):
    client = user(paho_client, secured, "alice", version)
    assert client.connack_reason == 0
    output = mosquitto_pub(secured.port, "alice/x", "y", "-u", "alice", "-P", "alice-pw")
    assert "error" not in output.lower()


@VERSIONS
def test_denied_subscription_is_refused_in_the_suback(secured, paho_client, version):
    alice = user(paho_client, secured, "alice", version)
    codes = alice.subscribe([("alice/x", 1), ("secret/#", 1), ("public/#", 1), ("alice/secret", 1)])
    # One reason code per filter (MQTT-3.9.3-1): the refused ones fail, the others are granted.
    assert codes == [1, REFUSED[version], 1, REFUSED[version]]


@VERSIONS
def test_denied_publish_is_not_delivered(secured, paho_client, version):
    bob = user(paho_client, secured, "bob", version)
    bob.subscribe("public/#", 1)
    alice = user(paho_client, secured, "alice", version)  # may read public/#, not write it
    outcome = alice.publish("public/news", b"forged", qos=1)
    if version == V5:
        assert outcome == 0x87  # 5.0 3.4.2.1: PUBACK 0x87 Not authorized
    else:
        # MQTT-3.3.5-2 (3.1.1): no way to say no; the server acknowledges or disconnects.
        assert outcome in (0, None)
    bob.publish("public/sentinel", b"", qos=1)
    assert [m.topic for m in bob.until("public/sentinel")] == ["public/sentinel"]


def test_denied_publish_reason_codes_at_packet_level(secured, raw):
    alice = raw(secured.port)
    assert alice.connect("alice-raw", username="alice", password="alice-pw").reason == 0
    alice.publish("public/news", b"q1", qos=1, packet_id=1)
    puback = alice.expect(PUBACK)
    assert (puback.packet_id, puback.reason) == (1, 0x87)  # 5.0 3.4.2.1
    alice.publish("alice/secret", b"q2", qos=2, packet_id=2)  # a deny rule
    pubrec = alice.expect(PUBREC)
    # 5.0 3.5.2.1: PUBREC 0x87; with a reason >= 0x80 the QoS 2 flow ends there (4.3.3).
    assert (pubrec.packet_id, pubrec.reason) == (2, 0x87)
    assert alice.until_pong() == []


def test_acl_holds_for_wildcard_subscriptions(secured, paho_client):
    carol = user(paho_client, secured, "carol", client_id="carol-dev")
    alice = user(paho_client, secured, "alice")
    alice.subscribe([("#", 1), ("public/#", 1)])  # "#" may be refused or narrowed, not widened
    bob = user(paho_client, secured, "bob")
    assert carol.publish("clients/carol-dev/private", b"carol only", qos=1) == 0
    bob.publish("public/sentinel", b"", qos=1)
    received = alice.until("public/sentinel")
    assert not [m.topic for m in received if not m.topic.startswith("public/")]


@VERSIONS
def test_pattern_rules_substitute_client_id_and_username(secured, paho_client, version):
    carol = user(paho_client, secured, "carol", version, client_id="carol-dev")
    codes = carol.subscribe(
        [
            ("clients/carol-dev/#", 1),  # pattern readwrite clients/%c/#
            ("clients/other/#", 1),
            ("users/carol/#", 1),  # pattern read users/%u/#
            ("users/alice/#", 1),
        ]
    )
    assert codes == [1, REFUSED[version], 1, REFUSED[version]]
    assert carol.publish("clients/carol-dev/cmd", b"mine", qos=1) == 0
    assert payloads([carol.get()]) == [b"mine"]
    # The same user under another client id is another %c.
    other = user(paho_client, secured, "carol", version, client_id="carol-2")
    assert other.subscribe("clients/carol-dev/#", 1) == [REFUSED[version]]


def test_pattern_rules_refuse_publishes_outside_them(secured, paho_client):
    carol = user(paho_client, secured, "carol", client_id="carol-dev")
    assert carol.publish("users/carol/x", b"read only", qos=1) == 0x87
    assert carol.publish("clients/other/x", b"not mine", qos=1) == 0x87
    assert carol.publish("clients/carol-dev/x", b"mine", qos=1) == 0


def test_no_reason_strings_when_problem_information_is_not_requested(secured, raw):
    alice = raw(secured.port)
    request_problem_information = 0x17
    alice.connect(
        "alice-quiet",
        username="alice",
        password="alice-pw",
        properties={request_problem_information: 0},
    )
    alice.publish("public/news", b"q1", qos=1, packet_id=1)
    puback = alice.expect(PUBACK)
    assert puback.reason == 0x87
    # MQTT-3.1.2-29: with Request Problem Information 0, no Reason String (0x1F) or User
    # Property (0x26) on anything but PUBLISH, CONNACK and DISCONNECT.
    assert not {0x1F, 0x26} & set(puback.properties)


def test_will_to_a_forbidden_topic_is_not_published(secured, paho_client, raw):
    bob = user(paho_client, secured, "bob")
    bob.subscribe("public/#", 1)
    alice = raw(secured.port)
    connack = alice.connect(
        "alice-will",
        username="alice",
        password="alice-pw",
        will=Will("public/forged", b"forged will", qos=1),
    )
    # The will is a publish on alice's behalf: refused at CONNECT (0x87) or never published.
    if connack.reason == 0:
        alice.close()
    else:
        assert connack.reason == 0x87
    bob.publish("public/sentinel", b"", qos=1)
    assert [m.topic for m in bob.until("public/sentinel")] == ["public/sentinel"]
