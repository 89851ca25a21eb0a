"""Issue 12, the hardening battery: memory a peer can make the server hold, and connections it
can hold open before CONNECT."""

from __future__ import annotations

import logging
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from broker_peers import (
    DISCONNECT,
    PINGRESP,
    PUBACK,
    PUBREC,
    SESSION_EXPIRY,
    TIMEOUT,
    V5,
    V311,
    RawClient,
    Will,
    connect_packet,
)
from hongshan.broker.message import Delivery, Message
from hongshan.broker.session import Session, SessionLimits, message_weight
from hongshan.broker.stats import Stats
from hongshan.config import load_settings
from hongshan.errors import ConfigError
from hongshan.failure_log import FailureLog
from hongshan.mqtt.memo import TopicMemo, topic_weight
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.mqtt.trie import SubscriptionTrie


@pytest.fixture
def raw() -> Iterator[Callable[..., RawClient]]:
    """``raw(port, version=4|5)``: an open TCP connection, nothing sent yet (as in the broker
    tests' conftest; a conftest of this folder's own would be shared by the whole battery)."""
    made: list[RawClient] = []

    def make(port: int, version: int = V5) -> RawClient:
        made.append(RawClient(port, version=version))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_topic_memo_is_bounded_by_its_keys_bytes() -> None:
    """Issue 12 case 1: the trie's match memo kept up to 65,536 topic names whole, so a device
    publishing to ever new 60 KB topics grew the server by hundreds of MB for good. A memo is
    now bounded by its keys' bytes as well as by their count."""
    memo: TopicMemo[int] = TopicMemo(max_entries=1000, max_bytes=64 * 1024)
    for i in range(500):
        memo.remember(f"{i:05d}/" + "x" * 4000, i)  # 4 KB each: 16 fit in 64 KB
        assert memo.key_bytes <= 64 * 1024
        assert memo.key_bytes == sum(topic_weight(topic) for topic in memo)
    assert 0 < len(memo) <= 16
    assert memo[f"{499:05d}/" + "x" * 4000] == 499  # the newest is remembered
    memo.remember("far/" + "y" * (64 * 1024 // 8), 1)  # an eighth of the budget: never kept
    assert "far/" + "y" * (64 * 1024 // 8) not in memo
    memo.remember("街/" * 2000, 2)  # non-ASCII counts four bytes a character
    assert memo.key_bytes == sum(topic_weight(topic) for topic in memo)
    assert not memo.has_room("far/" + "y" * (64 * 1024 // 8))  # (outgoing topic aliases)
    for i in range(2000):  # and by entries, with short topics
        memo.remember(f"t/{i}", i)
        assert len(memo) <= 1000


def test_subscription_trie_memo_stays_within_its_budget() -> None:
    """Issue 12 case 1: routing 6,000 messages to distinct 60 KB topics kept every topic
    name in the trie's memo (360 MB); it now keeps a few MB of them (``MEMO_BYTES``), and
    still answers correctly."""
    trie: SubscriptionTrie[str, int] = SubscriptionTrie()
    trie.subscribe("/sys/+/+/x/#", "app", 1)
    long_level = "z" * 60_000
    for i in range(600):
        found = trie.matches(f"/sys/pk/dn/x/{i}{long_level}")
        assert found == [{"app": 1}]
    kept = sum(len(topic) for topic in trie._memo)  # the bound itself is what is tested
    assert kept <= 16 * 1024 * 1024  # it was 36 MB


# -- topic length and levels: max_topic_length, max_topic_levels ---------------------------

TOO_LONG = "long/" + "x" * 300  # over max_topic_length=256 below
TOO_DEEP = "/".join(["d"] * 9)  # over max_topic_levels=8 below


@pytest.fixture
def limited(make_server):
    return make_server(max_topic_length=256, max_topic_levels=8)


@pytest.mark.parametrize("topic", [TOO_LONG, TOO_DEEP, "街/" + "街" * 90])
def test_v5_publish_over_topic_limits_is_refused_in_its_ack(limited, paho_client, raw, topic):
    """Issue 12 case 1: topic names were bounded only by the spec's 65,535 bytes, each one a
    memory cost (aliases, memos). A 5.0 QoS 1/2 PUBLISH over max_topic_length (UTF-8 bytes)
    or max_topic_levels gets 0x90 in its PUBACK/PUBREC; nothing is delivered, the connection
    goes on."""
    watcher = paho_client(limited.port).connect()
    watcher.subscribe("#", 2)
    client = paho_client(limited.port).connect()
    assert client.publish(topic, b"no", qos=1) == ReasonCode.TOPIC_NAME_INVALID
    assert client.publish("ok/t", b"yes", qos=1) == 0
    # (paho sends PUBREL even after a refusing PUBREC: QoS 2 is checked from raw bytes)
    qos2 = raw(limited.port, version=V5)
    assert qos2.connect("qos2").reason == 0
    qos2.publish(topic, b"no", qos=2, packet_id=7)
    pubrec = qos2.expect(PUBREC)
    assert (pubrec.packet_id, pubrec.reason) == (7, ReasonCode.TOPIC_NAME_INVALID)
    qos2.publish("ok/t", b"again", qos=2, packet_id=8)
    assert qos2.expect(PUBREC).reason == 0
    assert [m.payload for m in watcher.until("ok/t")] == [b"yes"]


def test_v5_qos0_publish_over_topic_limits_is_disconnected_with_0x90(limited, raw):
    """Issue 12 case 1: a QoS 0 PUBLISH has no acknowledgement to refuse it in: DISCONNECT
    0x90, as EMQX does."""
    client = raw(limited.port, version=V5)
    assert client.connect("deep").reason == 0
    client.publish(TOO_DEEP, b"no")
    got = client.closed()
    assert [(p.type, p.reason) for p in got] == [(DISCONNECT, ReasonCode.TOPIC_NAME_INVALID)]


@pytest.mark.parametrize("qos", [0, 1])
def test_v311_publish_over_topic_limits_closes_the_connection(limited, raw, qos):
    """Issue 12 case 1: 3.1.1 has no reason codes; acknowledging would say it was taken."""
    client = raw(limited.port, version=V311)
    assert client.connect("long311").reason == 0
    client.publish(TOO_LONG, b"no", qos=qos, packet_id=1 if qos else None)
    assert client.closed() == []


@pytest.mark.parametrize(("version", "refused"), [(V5, 0x8F), (V311, 0x80)])
def test_subscribe_over_topic_limits_is_refused_in_suback(limited, paho_client, version, refused):
    """Issue 12 case 1: a filter over either limit: SUBACK 0x8F (5.0) / 0x80 (3.1.1); the
    others in the same SUBSCRIBE are granted."""
    client = paho_client(limited.port, version=version).connect()
    deep_filter = "/".join(["+"] * 9)
    codes = client.subscribe([(deep_filter, 1), ("long/" + "+/" * 150 + "#", 1), ("ok/#", 1)])
    assert codes == [refused, refused, 1]
    shared = client.subscribe("$share/g/" + "/".join(["a"] * 8), 1)  # the prefix is not counted
    assert shared == [1]


def test_will_topic_over_limits_is_refused_at_connect(limited, raw):
    """Issue 12 case 1: a will over either limit: 5.0 CONNACK 0x90; 3.1.1 has no return code
    for it and closes without a CONNACK (MQTT-3.2.2-6)."""
    v5 = raw(limited.port, version=V5)
    connack = v5.connect("will5", will=Will(TOO_LONG, b"bye"))
    assert connack is not None and connack.reason == ReasonCode.TOPIC_NAME_INVALID
    v311 = raw(limited.port, version=V311)
    v311.connect("will311", will=Will(TOO_DEEP, b"bye"), wait=False)
    assert v311.closed() == []


def test_topic_limits_are_validated():
    """Issue 12 case 1: the new settings are checked like the others."""
    for bad in ({"max_topic_length": 0}, {"max_topic_length": 65536}, {"max_topic_levels": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_settings(environ={}, flags=bad)


# -- a device publishing to ever new long topics, against a server process -----------------


@pytest.mark.slow
def test_ever_new_long_topics_do_not_grow_the_server(spawn_server):
    """Issue 12 case 1: one device publishing 6,000 QoS 0 messages to
    ``/sys/{pk}/{dn}/x/<i><60 KB>`` took the server from 125 MB to 476 MB, kept after it left:
    every topic was remembered whole (the trie's match memo, the Alink topic parser, the
    automatic subscriptions' owners). Here 3,000 such topics (180 MB of names; the length
    limit raised to let them in) grow its RSS by less than 64 MB."""
    server = spawn_server("--allow-anonymous", "--max-topic-length", "65535")
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    client = RawClient(server.port, version=V311)
    try:
        assert client.connect("flood").reason == 0

        def flood(first: int, count: int) -> None:
            long_level = "z" * 60_000
            for i in range(first, first + count):
                # 'thing' goes through every memo ('x' misses the automatic subscriptions')
                kind = "thing" if i % 2 else "x"
                client.publish(f"/sys/a1Flood/dn/{kind}/{i}{long_level}", b"{}")
            client.ping()  # answered once everything before it was handled
            assert client.expect(PINGRESP).type == PINGRESP

        flood(0, 100)  # the first publishes' one-off allocations are not growth
        before = process.memory_info().rss
        flood(100, 3000)
        growth = process.memory_info().rss - before
    finally:
        client.close()
    assert growth < 64 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MB"


# -- before CONNECT: connect_timeout and max_pending_connections_per_address ---------------


def _silent(port: int) -> socket.socket:
    """A TCP connection that sends nothing: what a slowloris holds."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return sock


def _closed_by_server(sock: socket.socket, timeout: float = TIMEOUT) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` (it sends us nothing before)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""  # (nothing is ever sent to it before CONNECT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_connect_timeout_bounds_a_connect_trickled_byte_by_byte(make_server):
    """Issue 12 case 5: a client that trickles its CONNECT one byte at a time is closed when
    connect_timeout has passed since it connected, however steadily bytes come (each byte
    does not restart the clock)."""
    server = make_server(connect_timeout=1.0)
    connect = connect_packet("trickle-" + "t" * 200, V311, True, 60, None, None, None, None)
    with _silent(server.port) as sock:
        for index in range(len(connect)):  # 0.1 s a byte: 21 s for the whole CONNECT
            try:
                sock.sendall(connect[index : index + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            if _closed_by_server(sock, timeout=0.1):
                break
        assert index < len(connect) - 1, "the whole CONNECT went through"


def test_connections_waiting_for_connect_are_capped_per_address(make_server, paho_client):
    """Issue 12 case 5: 300 slow clients from one address held 300 sockets for
    connect_timeout each, again and again. Past max_pending_connections_per_address, a new
    connection from that address is closed at once; the ones held are not, and a real client
    from the same machine connects once they have timed out."""
    server = make_server(max_pending_connections_per_address=4, connect_timeout=2.0)
    held = [_silent(server.port) for _ in range(4)]
    extra = _silent(server.port)
    try:
        assert _closed_by_server(extra), "the fifth was not closed"
        assert all(_still_open(sock) for sock in held)
        refused = paho_client(server.port)
        refused.connect(wait=False)
        assert refused.disconnected.wait(TIMEOUT) and not refused.connected.is_set()
        assert all(_closed_by_server(sock) for sock in held)  # connect_timeout
        paho_client(server.port).connect()  # a CONNACK 0 (asserted in connect)
    finally:
        for sock in (*held, extra):
            sock.close()


def test_connected_clients_are_not_counted_as_waiting(make_server, paho_client):
    """Issue 12 case 5: the cap counts connections before CONNECT only: four CONNECTed
    clients leave room for four more waiting ones, and the fifth of those is closed."""
    server = make_server(max_pending_connections_per_address=4)
    for _ in range(4):
        paho_client(server.port).connect()
    held = [_silent(server.port) for _ in range(4)]
    extra = _silent(server.port)
    try:
        assert _closed_by_server(extra)
        assert all(_still_open(sock) for sock in held)
    finally:
        for sock in (*held, extra):
            sock.close()


# What a client stalled in each listener's handshake has sent: a WebSocket upgrade request
# whose head never ends; the first bytes of a TLS ClientHello record.
STALLED_HANDSHAKES = {
    "ws": b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n",
    "mqtts": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}


@pytest.mark.parametrize("listener", ["ws", "mqtts"])
def test_connections_stalled_in_a_handshake_count_as_waiting_for_connect(
    make_server, paho_client, certificate, listener
):
    """Issue 12 case 5 (review): the cap counted a connection from its MQTTConnection, made
    only once the WebSocket or TLS handshake was done: with the cap at 2, 50 half-sent upgrade
    requests were all held. A connection counts from the TCP accept on every listener (past
    the cap it is closed at once, on the plain port too), connect_timeout bounds its
    handshake, and a client of that listener connects once the stalled ones are gone."""
    cert, key = certificate
    server = make_server(
        max_pending_connections_per_address=2,
        connect_timeout=3.0,
        ws_port=0,
        tls_port=0,
        tls_cert=str(cert),
        tls_key=str(key),
    )
    port = server.ports[listener]
    held = [_silent(port) for _ in range(2)]
    for sock in held:
        sock.sendall(STALLED_HANDSHAKES[listener])
    extra, plain = _silent(port), _silent(server.port)
    try:
        assert _closed_by_server(extra), f"{listener}: the third was not closed"
        assert _closed_by_server(plain), "the plain port did not count them"
        assert all(_still_open(sock) for sock in held)
        assert all(_closed_by_server(sock) for sock in held)  # connect_timeout, from accept
    finally:
        for sock in (*held, extra, plain):
            sock.close()
    if listener == "ws":
        client = paho_client(port, transport="websockets")
    else:
        client = paho_client(port, tls_ca=str(cert))
    client.connect()  # a CONNACK 0 (asserted in connect)
    assert server.platform.broker.stats.refused_pending == 2


def test_the_rate_limited_log_remembers_a_bounded_number_of_kinds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12 (review, finding 10): three rate-limited loggers, one of them (the stores')
    remembering every kind of failure for ever; a kind per client address (the broker's
    refused connections, IPv6 addresses keep their letters) made that a table a flood could
    grow. There is one now, ``FailureLog``, and it remembers at most ``kinds`` kinds: the
    oldest is forgotten first, and said again at once if it comes back."""
    now = [0.0]
    refusals = FailureLog(
        logging.getLogger("hongshan.test"),
        "closing new connections",
        every=60.0,
        clock=lambda: now[0],
        level=logging.WARNING,
        kinds=100,
    )
    caplog.set_level(logging.WARNING, logger="hongshan.test")
    for i in range(10_000):
        host = f"2001:db8::{i:x}"
        refusals.failed(f"from {host}: 64 waiting", kind=host)
        assert refusals.kinds_remembered <= 100
    refusals.failed(
        "from 2001:db8::270f: 64 waiting", kind="2001:db8::270f"
    )  # counted: said lately
    refusals.failed("from 2001:db8::0: 64 waiting", kind="2001:db8::0")  # said: forgotten
    assert len(caplog.records) == 10_001
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    caplog.clear()
    now[0] = 61.0
    refusals.failed("from 2001:db8::270f: 64 waiting", kind="2001:db8::270f")
    assert [r.getMessage() for r in caplog.records] == [
        "closing new connections: from 2001:db8::270f: 64 waiting "
        "(and 1 more like it since it was last said)"
    ]


# -- the fuzz run, small ---------------------------------------------------------------------


@pytest.mark.slow
def test_fuzz_run_leaves_the_server_answering(tmp_path):
    """Issue 12: the MQTT side under a few thousand generated packet sequences, valid and
    mutated (random bytes, wrong and huge lengths, bad properties, oversize topics, bad UTF-8,
    packets before CONNECT, a second CONNECT), on many connections against a server process:
    afterwards it answers a normal client, logged no unhandled exception, and its RSS grew by
    less than 64 MB. The same code as ``python -m bench.fuzz_mqtt --sequences 1000000``."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "bench.fuzz_mqtt", "--sequences", "5000", "--seed", "7"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    report = done.stdout + done.stderr
    assert "5000 sequences" in report, report
    assert "answers a normal client: True" in report, report
    assert "unhandled exceptions logged: 0" in report, report
    assert done.returncode == 0, report


def test_retained_messages_are_bounded_by_bytes(make_server, paho_client):
    """Issue 12 case 1: the retained store was bounded by its count only (1,000,000 messages
    of up to max_packet_size each). Past max_retained_bytes a new or larger retained message
    is delivered but not kept, and the older one it would have replaced is dropped rather than
    passed off as the topic's latest."""
    server = make_server(max_retained_bytes=10_000)
    publisher = paho_client(server.port).connect()
    for index in range(4):  # 4 KB each: two fit
        publisher.publish(f"r/{index}", b"%d" % index * 4000, qos=1, retain=True)
    publisher.publish("r/0", b"0" * 6000, qos=1, retain=True)  # grows r/0 past the budget
    publisher.publish("r/1", b"small", qos=1, retain=True)  # shrinks: kept
    later = paho_client(server.port).connect()
    later.subscribe("r/+", 1)
    later.subscribe("sentinel", 1)
    publisher.publish("sentinel", b"end", qos=1)
    kept = {m.topic: m.payload for m in later.until("sentinel") if m.retain}
    assert kept == {"r/1": b"small"}


# -- a session's memory: max_subscriptions_per_client, ..._bytes_..., max_queued_bytes,
# max_sessions -------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "quota"), [(V5, 0x97), (V311, 0x80)])
def test_subscriptions_are_capped_per_session_by_count(make_server, paho_client, version, quota):
    """Issue 12 case 1: a signed device sent 100 SUBSCRIBEs of 200 distinct filters inside its
    own topics and all 20,000 were granted (RSS 83 to 254 MB, kept). Past
    max_subscriptions_per_client each further filter gets 0x97 Quota exceeded (3.1.1: 0x80) in
    the SUBACK, the others in the packet are granted, and a filter the session already has may
    always be subscribed to again (it replaces, MQTT-3.8.4-3)."""
    server = make_server(max_subscriptions_per_client=3)
    client = paho_client(server.port, version=version).connect()
    codes = client.subscribe([("a/1", 1), ("a/2", 1), ("a/3", 0), ("a/4", 1), ("a/5", 1)])
    assert codes == [1, 1, 0, quota, quota]
    assert client.subscribe("a/3", 1) == [1]  # replaced, not added
    assert client.subscribe("a/6", 1) == [quota]
    client.unsubscribe("a/2")
    assert client.subscribe("a/6", 1) == [1]  # an unsubscribe makes room
    publisher = paho_client(server.port).connect()
    for topic in ("a/4", "a/5", "a/6"):
        publisher.publish(topic, topic.encode(), qos=1)
    assert [m.topic for m in client.until("a/6")] == ["a/6"]  # nothing for the refused ones


def test_subscriptions_are_capped_per_session_by_their_filters_bytes(make_server, paho_client):
    """Issue 12 case 1: the tester's filters were ~3.9 KB each (78 MB in memory and 167 MB of
    hongshan.db for one device). Past max_subscription_bytes_per_client (UTF-8 bytes of the
    filters, non-ASCII counted at four) a new filter gets 0x97; a short one still fits."""
    server = make_server(max_subscription_bytes_per_client=1000)
    client = paho_client(server.port).connect()
    long_filters = [(f"b/{i}/" + "f" * 400, 1) for i in range(3)]  # 404 bytes each
    assert client.subscribe(long_filters) == [1, 1, 0x97]
    assert client.subscribe([("b/short", 1), ("街/" * 40, 1)]) == [1, 0x97]


def test_restored_sessions_keep_the_subscription_caps(make_server, raw):
    """Issue 12 case 1: the device's 20,000 subscriptions came back after a restart. A session
    saved with more than the caps now allow is cut down to them at start (and in the store):
    three of its ten filters still deliver, and an eleventh is refused."""
    first = make_server(max_subscriptions_per_client=0)  # no cap
    client = raw(first.port, version=V311)
    assert client.connect("many", clean=False).reason == 0
    suback = client.subscribe(1, [(f"m/{i}", 1) for i in range(10)])
    assert suback.codes == [1] * 10
    client.close()
    first.stop()
    second = make_server(max_subscriptions_per_client=3)
    back = raw(second.port, version=V311)
    assert back.connect("many", clean=False).session_present
    publisher = raw(second.port, version=V311)
    assert publisher.connect("many-pub").reason == 0
    for i in range(10):
        publisher.publish(f"m/{i}", b"%d" % i, qos=1, packet_id=i + 1)
        assert publisher.expect(PUBACK).packet_id == i + 1
    got = back.until_pong()
    assert len({p.topic for p in got}) == 3
    assert back.subscribe(2, [("m/extra", 1)]).codes == [0x80]


class _Unwritable:
    """A connection whose socket is full: QoS 0 messages queue behind it."""

    writable = False
    send_quota = 0

    def send_publish(self, delivery: Delivery, packet_id: int, dup: bool) -> None:
        raise AssertionError("nothing is sent to a full socket")

    def send_pubrel(self, packet_id: int) -> None:
        raise AssertionError("nothing is sent to a full socket")


def _queued(session: Session) -> list[bytes]:
    return [delivery.message.payload for delivery, _ in session.queue or ()]


def test_session_queue_is_bounded_by_bytes():
    """Issue 12 case 1: a session's queue was bounded by its count only (max_queued_messages
    of up to max_packet_size each: 1 GB a session). Past max_queued_bytes the oldest queued
    QoS 0 messages make room; when they cannot, the newcomer is dropped and nothing else."""
    stats = Stats()
    limits = SessionLimits(max_queued=100, max_queued_bytes=10_000)
    session = Session("slow", store=None, stats=stats, limits=limits)  # type: ignore[arg-type]
    session.attach(_Unwritable())

    def deliver(qos: int, name: str, size: int) -> None:
        session.deliver(Delivery(Message(f"q/{name}", name.encode().ljust(size, b"."), qos), qos))

    deliver(0, "old0", 3000)
    deliver(1, "one", 3000)
    deliver(0, "new0", 3000)
    assert session.queued_bytes == 3 * 3000 + len("q/old0q/oneq/new0")
    deliver(1, "two", 3000)  # over 10,000: the oldest QoS 0 goes
    assert [p[:4] for p in _queued(session)] == [b"one.", b"new0", b"two."]
    deliver(1, "big", 9000)  # even with new0 gone it cannot fit: dropped, nothing else
    assert [p[:4] for p in _queued(session)] == [b"one.", b"new0", b"two."]
    deliver(0, "three", 3000)  # new0 makes room for it
    assert [p[:4] for p in _queued(session)] == [b"one.", b"two.", b"thre"]
    assert stats.dropped == 3
    assert session.queued_bytes == sum(message_weight(d.message) for d, _ in session.queue or ())
    assert session.queued_bytes <= 10_000


def test_offline_queue_is_bounded_by_bytes(make_server, raw):
    """Issue 12 case 1: QoS 1 messages for an offline persistent session were kept up to
    max_queued_messages whatever their size. With max_queued_bytes=10,000, three of ten 3 KB
    messages wait for it, in order; the rest are dropped (counted), not kept."""
    server = make_server(max_queued_bytes=10_000)
    sub = raw(server.port, version=V311)
    assert sub.connect("bytes-queued", clean=False).reason == 0
    sub.subscribe(1, [("bq/t", 1)])
    sub.disconnect()
    sub.close()
    pub = raw(server.port, version=V311)
    pub.connect("bytes-pub")
    for packet_id in range(1, 11):
        pub.publish("bq/t", b"%d" % packet_id + b"." * 3000, qos=1, packet_id=packet_id)
        assert pub.expect(PUBACK).packet_id == packet_id
    back = raw(server.port, version=V311)
    assert back.connect("bytes-queued", clean=False).session_present
    numbers = [int(p.payload.rstrip(b".")) for p in back.until_pong()]
    assert numbers == [1, 2, 3]


def test_new_persistent_sessions_are_capped(make_server, raw, paho_client):
    """Issue 12 case 1: a users-file or anonymous client can name ever new client ids, each a
    session kept (with its subscriptions) for its Session Expiry. Past max_sessions a CONNECT
    for a new persistent session gets CONNACK 0x97 (3.1.1: 3, server unavailable); resuming a
    kept one, and a session that ends with its connection, are still accepted."""
    server = make_server(max_sessions=2)
    expiry = {SESSION_EXPIRY: 3600}
    for name in ("kept-1", "kept-2"):
        client = raw(server.port)
        assert client.connect(name, clean=False, properties=expiry).reason == 0
        client.close()
    assert raw(server.port).connect("kept-3", clean=False, properties=expiry).reason == 0x97
    assert raw(server.port, version=V311).connect("kept-4", clean=False).reason == 3
    assert raw(server.port).connect("kept-1", clean=False, properties=expiry).session_present
    paho_client(server.port).connect()  # a clean session: CONNACK 0 (asserted in connect)


def test_session_caps_are_validated():
    """Issue 12 case 1: the new settings are checked like the others."""
    for name in (
        "max_subscriptions_per_client",
        "max_subscription_bytes_per_client",
        "max_queued_bytes",
        "max_sessions",
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings(environ={}, flags={name: -1})


@pytest.mark.slow
def test_a_device_subscribing_to_thousands_of_long_filters_does_not_grow_the_server(
    spawn_server, tmp_path
):
    """Issue 12 case 1: a client with a persistent session sent 100 SUBSCRIBEs of 200 distinct
    ~3.9 KB filters: all granted, RSS 83 to 254 MB, hongshan.db 167 MB, both kept after it left
    and after a restart. Here 40 such SUBSCRIBEs (8,000 filters, 31 MB of them) are granted as
    far as max_subscription_bytes_per_client allows (1 MiB: some 260), the server's RSS grows by
    less than 24 MB and its database stays under 16 MB."""
    server = spawn_server("--allow-anonymous")
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    client = RawClient(server.port, version=V5)
    try:
        assert client.connect("filters", clean=False, properties={SESSION_EXPIRY: 3600}).reason == 0
        client.subscribe(1, [("warm/up", 0)])
        before = process.memory_info().rss
        granted = 0
        for batch in range(40):
            filters = [(f"town/{batch}/{i}/" + "f" * 3900, 0) for i in range(200)]
            suback = client.subscribe(batch + 2, filters)
            granted += sum(1 for code in suback.codes if code < 0x80)
        growth = process.memory_info().rss - before
    finally:
        client.close()
    assert growth < 24 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MB"
    assert granted <= 1024 * 1024 // 3900
    assert server.terminate() == 0
    kept = sum(f.stat().st_size for f in (tmp_path / "data").glob("hongshan.db*"))
    assert kept < 16 * 1024 * 1024, f"hongshan.db is {kept / 2**20:.0f} MB"
