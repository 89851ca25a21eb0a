"""Regression tests for broker bugs found in review, one test per bug, each asserting what the
specification (or the documented setting) requires rather than what the old code did."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager

import pytest

from broker_peers import (
    CONNACK,
    DISCONNECT,
    MAXIMUM_PACKET_SIZE,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RECEIVE_MAXIMUM,
    SESSION_EXPIRY,
    TOPIC_ALIAS,
    TOPIC_ALIAS_MAXIMUM,
    V5,
    V311,
)
from hongshan.identity.passwords import set_password

VERSIONS = pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5.0"])
LASTING = {SESSION_EXPIRY: 3600}


def access_files(tmp_path, acl, *users):
    """A users file (each user's password is "<name>-pw") and an ACL file."""
    users_file = tmp_path / "users"
    for name in users:
        set_password(users_file, name, f"{name}-pw")
    acl_file = tmp_path / "acl"
    acl_file.write_text(acl)
    return {"password_file": str(users_file), "acl_file": str(acl_file)}


def publish_acked(client, topic, payloads, qos=1):
    """Publish at QoS 1 (or 2, up to PUBREC) and wait for each acknowledgement: once it is in,
    the server has routed the message."""
    for packet_id, payload in enumerate(payloads, 1):
        client.publish(topic, payload, qos=qos, packet_id=packet_id)
        assert client.expect(PUBACK if qos == 1 else PUBREC).packet_id == packet_id


@contextmanager
def store_write_locked(data_dir):
    """Hold the write lock of a running server's SQLite store: its commits wait meanwhile (it
    has a busy timeout), so a kill -9 inside lands before anything it sends now is durable."""
    db = sqlite3.connect(data_dir / "hongshan.db", isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
    finally:
        db.close()  # rolls back: the server's commits go through


def read_within(client, timeout):
    try:
        return client.read(timeout)
    except TimeoutError:
        return None


def kill_at_worst_moment(server, data_dir, client, send, expected):
    """``send()`` a packet, read the server's answer and kill -9 the server: at once if the
    answer comes while the store cannot commit (a crash before the state it reports is
    durable), else as soon as it comes."""
    with store_write_locked(data_dir):
        send()
        early = read_within(client, 0.5)
        if early is not None:
            server.kill()
    got = early or client.read()
    if early is None:
        server.kill()
    assert got.type == expected, got
    return got


@VERSIONS
def test_takeover_of_a_clean_session_by_clean_start_0_does_not_resume_it(server, raw, version):
    first = raw(server.port, version=version)
    first.connect("dev", clean=True)  # 5.0: no Session Expiry Interval, so 0
    assert first.subscribe(1, [("x/#", 1)]).codes == [1]
    second = raw(server.port, version=version)
    connack = second.connect("dev", clean=False, properties=LASTING if version == V5 else None)
    # 3.1.1 MQTT-3.1.2-6: a CleanSession=1 session "lasts as long as the Network Connection";
    # 5.0 3.1.2.11.2: with Session Expiry Interval 0 "the Session ends when the Network
    # Connection is closed". The takeover closed it (MQTT-3.1.4-2), so there is nothing to
    # resume: Session Present 0 (MQTT-3.2.2-3 in both) and no subscription.
    assert connack.reason == 0
    assert connack.session_present is False
    publisher = raw(server.port, version=version)
    publisher.connect("pub")
    publish_acked(publisher, "x/1", [b"not for the new session"])
    assert second.until_pong() == []
    assert server.call(lambda: dict(server.platform.broker.sessions["dev"].subscriptions)) == {}


@pytest.mark.slow
def test_disconnect_with_session_expiry_0_ends_the_session_across_a_restart(
    tmp_path, spawn_server, raw
):
    data_dir = tmp_path / "expiry0"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    client = raw(first.port)
    client.connect("dev", clean=True, properties=LASTING)
    assert client.subscribe(1, [("x/#", 1)]).codes == [1]
    # 5.0 3.14.2.2.2: a DISCONNECT may set the Session Expiry Interval (from non-zero to 0);
    # 3.1.2.11.2: with 0, the session ends when the Network Connection closes. Ended, it must
    # not come back from the store after a restart.
    client.disconnect(0, {SESSION_EXPIRY: 0})
    assert client.closed() == []
    assert first.terminate() == 0

    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    publisher = raw(second.port)
    publisher.connect("pub")
    publish_acked(publisher, "x/1", [b"m0", b"m1", b"m2"])  # would be queued for a live session
    again = raw(second.port)
    connack = again.connect("dev", clean=False, properties=LASTING)
    assert connack.session_present is False  # 5.0 MQTT-3.2.2-3: no session to resume
    assert again.until_pong() == []


def test_topic_alias_is_not_used_for_a_topic_whose_first_publish_was_dropped(server, raw):
    sub = raw(server.port)
    sub.connect("sub", properties={TOPIC_ALIAS_MAXIMUM: 10, MAXIMUM_PACKET_SIZE: 200})
    assert sub.subscribe(1, [("t/#", 0)]).codes == [0]
    pub = raw(server.port)
    pub.connect("pub")
    # MQTT-3.1.2-25: a PUBLISH larger than the client's Maximum Packet Size is discarded, so
    # the alias it would have set never reached the client ...
    publish_acked(pub, "t/a", [b"x" * 500])
    publish_acked(pub, "t/a", [b"small", b"again"])
    got = sub.until_pong()
    # ... and 3.3.2.3.4: a Topic Alias with an empty Topic Name refers to a mapping the
    # receiver was sent; the next PUBLISH for t/a must carry the Topic Name.
    assert [p.type for p in got] == [PUBLISH, PUBLISH]
    assert (got[0].topic, got[0].payload) == ("t/a", b"small")
    aliases: dict[int, str] = {}
    resolved = []
    for p in got:
        alias = p.properties.get(TOPIC_ALIAS)
        topic = p.topic
        if topic and alias is not None:
            aliases[alias] = topic
        elif not topic:
            assert alias in aliases, f"alias {alias} used before the client was told it"
            topic = aliases[alias]
        resolved.append((topic, p.payload))
    assert resolved == [("t/a", b"small"), ("t/a", b"again")]


def test_shared_subscription_is_authorized_by_its_topic_filter(tmp_path, make_server, raw):
    files = access_files(tmp_path, "user w1\ntopic readwrite town/#\n", "w1")
    server = make_server(allow_anonymous=False, **files)
    member = raw(server.port)
    assert member.connect("w1", username="w1", password="w1-pw").reason == 0
    # 5.0 4.8.2: in "$share/{ShareName}/{filter}" the filter is what selects the messages, so
    # it is what the ACL judges (as Mosquitto does): town/# is granted, so is its share.
    assert member.subscribe(1, [("town/#", 1)]).codes == [1]
    assert member.subscribe(2, [("$share/g/town/#", 1)]).codes == [1]
    assert member.subscribe(3, [("$share/g/village/#", 1)]).codes == [0x87]  # not authorized
    sharer = raw(server.port)
    assert sharer.connect("w2", username="w1", password="w1-pw").reason == 0
    assert sharer.subscribe(1, [("$share/g/town/#", 1)]).codes == [1]
    publisher = raw(server.port)
    assert publisher.connect("w3", username="w1", password="w1-pw").reason == 0
    publish_acked(publisher, "town/square", [b"a", b"b"])
    # Each message once to the plain subscription and once to the group (MQTT 4.8.2).
    shared = [p.payload for c in (member, sharer) for p in c.until_pong() if p.type == PUBLISH]
    assert sorted(shared) == [b"a", b"a", b"b", b"b"]


def test_outbound_window_is_capped_by_max_inflight_for_3_1_1(make_server, raw):
    window = 10
    server = make_server(max_inflight=window)
    sub = raw(server.port, version=V311)
    sub.connect("lazy", clean=True)
    assert sub.subscribe(1, [("t", 1)]).codes == [1]
    pub = raw(server.port, version=V311)
    pub.connect("pub")
    publish_acked(pub, "t", [b"%d" % i for i in range(4 * window)])
    # 3.1.1 has no Receive Maximum; max_inflight is the documented bound on unacknowledged
    # QoS 1/2 messages each way (5.0 MQTT-3.3.4-9 applies the same to a 5.0 client's window).
    # A client that never sends PUBACK holds at most that many; the rest wait in the queue.
    sent = sub.until_pong()
    assert [p.payload for p in sent] == [b"%d" % i for i in range(window)]
    inflight = server.call(lambda: len(server.platform.broker.sessions["lazy"].inflight))
    assert inflight == window
    for p in sent:
        sub.ack(PUBACK, p.packet_id)
    assert [p.payload for p in sub.until_pong()] == [b"%d" % i for i in range(window, 2 * window)]


@pytest.mark.slow
def test_inbound_qos2_packet_id_is_free_after_pubcomp_even_after_kill_9(
    tmp_path, spawn_server, raw
):
    data_dir = tmp_path / "pubcomp"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = raw(first.port)
    sub.connect("sub", properties=LASTING)
    assert sub.subscribe(1, [("t", 2)]).codes == [2]
    pub = raw(first.port)
    pub.connect("pub", properties=LASTING)
    pub.publish("t", b"first", qos=2, packet_id=5)
    assert pub.expect(PUBREC).packet_id == 5
    # MQTT-4.3.3-12 (5.0; 3.1.1 MQTT-4.3.3-2): after PUBCOMP the packet identifier is free for
    # a new message. Once PUBCOMP is out, no crash may bring the old exchange back.
    pubcomp = kill_at_worst_moment(first, data_dir, pub, lambda: pub.ack(PUBREL, 5), PUBCOMP)
    assert pubcomp.packet_id == 5

    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = raw(second.port)
    assert sub.connect("sub", clean=False, properties=LASTING).session_present
    pub = raw(second.port)
    assert pub.connect("pub", clean=False, properties=LASTING).session_present
    pub.publish("t", b"second", qos=2, packet_id=5)
    assert pub.expect(PUBREC).packet_id == 5
    pub.ack(PUBREL, 5)
    assert pub.expect(PUBCOMP).packet_id == 5
    # a new message, not a duplicate: delivered (besides any resend of "first", DUP=1)
    fresh = [p.payload for p in sub.until_pong() if p.type == PUBLISH and not p.dup]
    assert fresh == [b"second"]


def test_qos2_publishes_within_receive_maximum_are_not_refused(make_server, raw):
    server = make_server(max_inflight=100)
    client = raw(server.port)
    connack = client.connect("pub", properties=LASTING)  # persistent: PUBREC waits for the store
    assert connack.properties.get(RECEIVE_MAXIMUM) == 100
    count = 60
    client.send(
        b"".join(client.publish_bytes("t", b"x", qos=2, packet_id=i) for i in range(1, count + 1))
    )
    # 5.0 3.3.4 / 4.9: the server may disconnect (0x93) only when it receives more than its
    # Receive Maximum of unacknowledged QoS 1/2 PUBLISHes; a QoS 2 one counts once, until its
    # PUBCOMP, however its PUBREC is delayed. 60 < 100: every PUBLISH gets its PUBREC.
    recs = []
    while len(recs) < count:
        p = client.read()
        assert p.type == PUBREC, f"after {len(recs)} PUBRECs: {p}"
        recs.append(p.packet_id)
    assert recs == list(range(1, count + 1))
    for packet_id in recs:
        client.ack(PUBREL, packet_id)
    for packet_id in recs:
        assert client.expect(PUBCOMP).packet_id == packet_id
    client.ping()
    assert client.read().type == PINGRESP


@pytest.mark.slow
def test_outbound_qos2_publish_is_not_resent_after_pubrel_and_kill_9(tmp_path, spawn_server, raw):
    data_dir = tmp_path / "pubrel"
    first = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = raw(first.port)
    sub.connect("sub", properties=LASTING)
    assert sub.subscribe(1, [("t", 2)]).codes == [2]
    pub = raw(first.port)
    pub.connect("pub")
    pub.publish("t", b"once", qos=2, packet_id=1)
    message = sub.expect(PUBLISH)
    assert pub.expect(PUBREC).packet_id == 1  # the server has stored it for the subscriber
    # MQTT-4.3.3-5/-6 (5.0; 3.1.1 MQTT-4.3.3-1): once it has sent PUBREL the sender "MUST NOT
    # re-send the PUBLISH". A crash right after must not undo that.
    pubrel = kill_at_worst_moment(
        first, data_dir, sub, lambda: sub.ack(PUBREC, message.packet_id), PUBREL
    )
    assert pubrel.packet_id == message.packet_id

    second = spawn_server("--allow-anonymous", data_dir=data_dir)
    sub = raw(second.port)
    assert sub.connect("sub", clean=False, properties=LASTING).session_present
    # MQTT-4.4.0-1: on resuming the session the server resends the PUBREL, not the PUBLISH.
    resent = sub.until_pong()
    assert [(p.type, p.packet_id) for p in resent] == [(PUBREL, message.packet_id)]
    sub.ack(PUBCOMP, message.packet_id)
    assert sub.until_pong() == []


def test_restored_session_does_not_receive_topics_its_acl_denies(tmp_path, make_server, raw):
    acl = "topic readwrite town/#\ntopic deny town/secret\nuser admin\ntopic readwrite town/#\n"
    settings = access_files(tmp_path, acl, "admin")  # anonymous clients are allowed too

    def publish_while_away(port, tag):
        admin = raw(port)
        assert admin.connect("pub", username="admin", password="admin-pw").reason == 0
        publish_acked(admin, "town/secret", [b"password " + tag])
        publish_acked(admin, "town/news", [b"news " + tag])
        admin.disconnect()

    first = make_server(**settings)
    spy = raw(first.port)
    spy.connect("spy", properties=LASTING)
    assert spy.subscribe(1, [("town/#", 1)]).codes == [1]  # the deny rule covers only part
    spy.disconnect()
    assert spy.closed() == []
    publish_while_away(first.port, b"before")
    first.stop()

    second = make_server(**settings)
    publish_while_away(second.port, b"after")  # the session is restored, its client away
    spy = raw(second.port)
    connack = spy.connect("spy", clean=False, properties=LASTING)
    assert (connack.type, connack.session_present) == (CONNACK, True)
    # MQTT 5.0 / 3.1.1 section 5.4.2: the server restricts what a client may receive; the ACL's
    # deny rule holds for a session restored from disk as for a live one, and what it allows is
    # still delivered.
    got = [(p.type, p.topic, p.payload) for p in spy.until_pong()]
    assert got == [
        (PUBLISH, "town/news", b"news before"),
        (PUBLISH, "town/news", b"news after"),
    ]


def test_receive_maximum_exceeded_still_disconnects(make_server, raw):
    """The p9 fix must not have removed the limit itself: the 6th unreleased QoS 2 PUBLISH
    under Receive Maximum 5, from a persistent session, is refused (MQTT-3.3.4-7/-8)."""
    server = make_server(max_inflight=5)
    client = raw(server.port)
    client.connect("greedy", properties=LASTING)
    client.send(b"".join(client.publish_bytes("t", b"x", qos=2, packet_id=i) for i in range(1, 7)))
    got = client.closed()
    # (PUBRECs still waiting for the store may be lost with the connection: the client resends)
    assert [p.type for p in got[:-1]] == [PUBREC] * (len(got) - 1)
    assert (got[-1].type, got[-1].reason) == (DISCONNECT, 0x93)
