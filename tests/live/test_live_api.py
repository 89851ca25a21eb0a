"""The live API on a real server over real sockets: the ``websockets`` client subscribes, Alink
lamps on paho clients post, connect and answer commands, alarms are raised over REST — and
each change arrives as a frame; refusals, bad messages and the per-address count."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import httpx
import pytest
from live_client import Live, LiveSockets, admin_token, live_url
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from alibaba_device import lamps, online, online_lamp, post
from broker_peers import eventually
from command_devices import Lamp
from thingsboard_device import rest


@pytest.fixture
def api(server: Any) -> Any:
    with rest(server) as client:
        yield client


def test_a_device_subscriber_sees_its_posted_values_and_a_product_subscriber_all(
    server: Any, paho_client: Any, sockets: LiveSockets
) -> None:
    pk, secrets = lamps(server, "lamp-1", "lamp-2")
    one, every = sockets.open(server), sockets.open(server, subprotocol=True)
    assert every.connection.subprotocol == "bearer"
    one.subscribe("s1", "properties", device=f"{pk}/lamp-1")
    every.subscribe("p", "properties", product=pk)
    first = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    second = online(server, paho_client, pk, "lamp-2", secrets["lamp-2"])
    post(second, pk, "lamp-2", {"Brightness": 20})
    post(first, pk, "lamp-1", {"Brightness": 10})
    seen = one.until("properties")
    assert seen["sub"] == "s1" and seen["device"] == f"{pk}/lamp-1"
    assert seen["values"] == {"Brightness": 10} and isinstance(seen["ts"], int)
    both = [every.until("properties"), every.until("properties")]
    assert [(f["sub"], f["device"], f["values"]) for f in both] == [
        ("p", f"{pk}/lamp-2", {"Brightness": 20}),
        ("p", f"{pk}/lamp-1", {"Brightness": 10}),
    ]
    # unsubscribed: nothing more (a ping's pong comes after what was queued before it)
    one.send(op="unsubscribe", id="s1")
    assert one.next() == {"type": "unsubscribed", "id": "s1"}
    post(first, pk, "lamp-1", {"Brightness": 11})
    one.send(op="ping", id="p1")
    assert one.next() == {"type": "pong", "id": "p1"}


def test_status_on_connect_and_disconnect(
    server: Any, paho_client: Any, sockets: LiveSockets
) -> None:
    pk, secrets = lamps(server, "lamp-1")
    live = sockets.open(server)
    live.subscribe("st", "status")
    device = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    came = live.until("status")
    assert came["device"] == f"{pk}/lamp-1" and came["online"] is True and came["sub"] == "st"
    device.stop()
    went = live.until("status")
    assert went["online"] is False and went["reason"]


def test_an_alarm_raised_over_rest_appears_as_the_api_shows_it(
    server: Any, api: httpx.Client, sockets: LiveSockets
) -> None:
    pk, _ = lamps(server, "lamp-1")
    live = sockets.open(server)
    live.subscribe("a", "alarms", device=f"{pk}/lamp-1")
    raised = api.post(
        "/api/alarms",
        json={"productKey": pk, "deviceName": "lamp-1", "type": "Overheat", "by": "ops"},
    )
    assert raised.status_code == 201, raised.text
    frame = live.until("alarm")
    assert frame["sub"] == "a" and frame["change"] == "raised" and frame["by"] == "api:ops"
    assert frame["alarm"] == api.get(f"/api/alarms/{raised.json()['id']}").json()


def test_a_commands_states_appear_up_to_its_result(
    server: Any, api: httpx.Client, sockets: LiveSockets
) -> None:
    pk, secrets = lamps(server, "lamp-1")
    lamp = Lamp(server.port, pk, "lamp-1", secrets["lamp-1"]).connect()
    try:
        live = sockets.open(server)
        live.subscribe("c", "commands", product=pk)
        target = {"productKey": pk, "deviceName": "lamp-1"}
        sent = api.post("/api/commands", json={"target": target, "set": {"LightSwitch": 1}})
        assert sent.status_code == 201, sent.text
        states: list[str] = []
        while not states or states[-1] != "replied":
            frame = live.until("command")
            assert frame["command"]["id"] == sent.json()["id"]
            states.append(frame["command"]["state"])
        # (each change of the record: "sent" twice, as sent and as the dialect answered it)
        assert list(dict.fromkeys(states)) == ["queued", "sent", "replied"]
        assert frame["command"]["code"] == 200 and frame["device"] == f"{pk}/lamp-1"
    finally:
        lamp.stop()


def test_no_token_is_refused_401_and_a_wrong_one_too(server: Any) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-token-at-all"}):
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(live_url(server), additional_headers=headers, open_timeout=10),
        ):
            pass
        response = refused.value.response
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "credentials" in json.loads(response.body)["detail"]
    wrong: Any = ["bearer", "wrong"]
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(live_url(server), subprotocols=wrong, open_timeout=10),
    ):
        pass
    assert refused.value.response.status_code == 401


def test_bad_messages_get_an_error_frame_and_the_socket_stays(
    server: Any, sockets: LiveSockets
) -> None:
    pk, _ = lamps(server, "lamp-1")
    live = sockets.open(server)
    live.connection.send("{not json")
    assert live.next()["type"] == "error"
    for message, words in (
        ({"op": "dance", "id": "x"}, "op"),
        ({"op": "subscribe", "id": "x", "topic": "weather"}, "topic"),
        ({"op": "subscribe", "id": "x"}, "topic"),
        ({"op": "subscribe", "topic": "status"}, "id"),
        ({"op": "subscribe", "id": "x", "topic": "status", "device": "nodash"}, "productKey"),
        ({"op": "subscribe", "id": "x", "topic": "status", "device": f"{pk}/nobody"}, "nobody"),
        ({"op": "subscribe", "id": "x", "topic": "status", "product": "nope"}, "nope"),
        ({"op": "subscribe", "id": "x", "topic": "status", "group": "nope"}, "nope"),
        ({"op": "unsubscribe", "id": "never"}, "never"),
    ):
        live.send(**message)
        frame = live.next()
        assert frame["type"] == "error" and words in frame["detail"], (message, frame)
        if message.get("id") == "x":
            assert frame["id"] == "x"
    live.subscribe("x", "status")
    live.send(op="subscribe", id="x", topic="status")
    assert "exists" in live.next()["detail"]
    live.send(op="ping")
    assert live.next() == {"type": "pong", "id": None}


def test_subscriptions_per_socket_are_bounded(make_server: Any, sockets: LiveSockets) -> None:
    server = make_server(ws_max_subscriptions=2)
    live = sockets.open(server)
    live.subscribe("a", "status")
    live.subscribe("b", "alarms")
    live.send(op="subscribe", id="c", topic="commands")
    assert "2 subscriptions" in live.next()["detail"]


def test_sockets_per_principal_are_bounded_with_429(make_server: Any, sockets: LiveSockets) -> None:
    server = make_server(ws_max_sockets_per_principal=2)
    first, second = sockets.open(server), sockets.open(server)
    with pytest.raises(InvalidStatus) as refused:
        sockets.open(server)
    assert refused.value.response.status_code == 429
    first.close()
    eventually(lambda: server.platform.live_feed.clients == 1, what="the socket left")
    sockets.open(server).close()
    second.close()


def test_sockets_opened_and_closed_leave_the_per_address_count_at_zero(
    server: Any, sockets: LiveSockets
) -> None:
    guard = server.platform._http.guard
    opened: list[Live] = []
    for _ in range(10):
        opened.append(sockets.open(server))
    eventually(lambda: server.platform.live_feed.clients == 10, what="10 sockets")
    assert server.call(lambda: guard.held["127.0.0.1"]) >= 10
    for live in opened:
        live.close()
    eventually(lambda: server.call(lambda: dict(guard.held)) == {}, what="count back to zero")
    eventually(lambda: server.platform.live_feed.clients == 0, what="every socket left")
    # a refused upgrade gives its place back too
    for _ in range(5):
        with pytest.raises(InvalidStatus), connect(live_url(server), open_timeout=10):
            pass
    eventually(lambda: server.call(lambda: dict(guard.held)) == {}, what="refused: zero")


def test_a_client_that_never_answers_pings_is_closed(make_server: Any) -> None:
    server = make_server(ws_ping_interval=0.2, ws_ping_timeout=0.3)
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=10) as raw:
        # the upgrade by hand, then silence: no pong ever
        raw.sendall(
            (
                "GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {admin_token(server)}\r\n\r\n"
            ).encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 101")
        eventually(lambda: server.platform.live_feed.clients == 1, what="joined")
        eventually(lambda: server.platform.live_feed.clients == 0, what="the dead client closed")
        received = b""
        while chunk := raw.recv(4096):  # pings, then the close frame (1011), then EOF
            received += chunk
        assert b"\x88" in received


def test_a_subscriber_that_never_reads_is_dropped_and_nobody_waits_for_it(
    make_server: Any, paho_client: Any, sockets: LiveSockets
) -> None:
    # a small queue, and a short send deadline: the dropped socket, which cannot even be
    # sent its close frame, is reset soon after; each burst delivered as it comes, so that
    # the reading socket (of 32 kB messages, on a shared machine) is owed little at each
    server = make_server(ws_queue_limit=20, http_send_timeout=1.0, ws_batch_interval=0)
    feed = server.platform.live_feed
    pk, device = online_lamp(server, paho_client)
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    filler = "x" * 32_000  # (large frames: the kernel's buffers fill sooner)

    def posts(numbers: range) -> list[str]:
        method = "thing.event.property.post"
        return [
            json.dumps({"id": str(n), "method": method, "params": {"Note": filler, "N": n}})
            for n in numbers
        ]

    reading = sockets.open(server)
    reading.subscribe("all", "properties")
    got: list[int] = []

    def read() -> None:  # (until the last post, -1)
        while not got or got[-1] != -1:
            got.append(reading.until("properties")["values"]["N"])

    reader = threading.Thread(target=read)
    reader.start()
    # the slow one: a small receive buffer, and the client library stops reading once 4
    # frames wait for a recv() that never comes
    small = socket.create_connection(("127.0.0.1", server.ports["http"]))
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    with connect(live_url(server), sock=small, additional_headers=headers, max_queue=4) as slow:
        slow.send(json.dumps({"op": "subscribe", "id": "all", "topic": "properties"}))
        eventually(lambda: feed.clients == 2 and feed.messages_sent >= 2, what="subscribed")
        # every post acknowledged (each QoS 1 PUBACK waits for its commit, not for a
        # socket); in bursts of 10, which the reading socket's queue of 20 holds
        posted = 0
        while not feed.dropped and posted < 1000:
            burst = posts(range(posted, posted + 10))
            assert device.publish_many(topic, burst) == [0] * len(burst)
            posted += len(burst)
        assert feed.dropped == 1
        assert device.publish_many(topic, posts(range(-1, 0))) == [0]
        reader.join(timeout=30)
        assert got == [*range(posted), -1]
        eventually(lambda: feed.clients == 1, what="the slow socket gone")
    reading.send(op="ping", id="still")
    assert reading.until("pong")["id"] == "still"


def test_a_burst_larger_than_the_queue_limit_reaches_a_socket_that_reads(
    make_server: Any, paho_client: Any, sockets: LiveSockets
) -> None:
    # 60 posts gathered in one delivery (a long interval), to a socket of a limit of 20: the
    # limit counts what is owed from earlier deliveries, so a reading socket gets them all
    server = make_server(ws_queue_limit=20, ws_batch_interval=1.0)
    feed = server.platform.live_feed
    pk, device = online_lamp(server, paho_client)
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    live = sockets.open(server)
    live.subscribe("all", "properties")
    method = "thing.event.property.post"
    for start in (0, 60):
        bodies = [
            json.dumps({"id": str(n), "method": method, "params": {"N": n}})
            for n in range(start, start + 60)
        ]
        assert device.publish_many(topic, bodies) == [0] * 60
        got = [live.until("properties")["values"]["N"] for _ in range(60)]
        assert got == list(range(start, start + 60))
    assert feed.dropped == 0 and feed.clients == 1


def test_a_server_stopping_closes_its_sockets_1012(make_server: Any) -> None:
    server = make_server()
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    with connect(live_url(server), additional_headers=headers, open_timeout=10) as live:
        live.send(json.dumps({"op": "subscribe", "id": "all", "topic": "status"}))
        assert json.loads(live.recv(timeout=10))["type"] == "subscribed"
        server.stop()
        with pytest.raises(ConnectionClosed) as closed:
            live.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012


def test_a_group_subscriber_hears_its_members_only(
    server: Any, paho_client: Any, api: httpx.Client, sockets: LiveSockets
) -> None:
    pk, secrets = lamps(server, "lamp-1", "lamp-2")
    assert api.post("/api/groups", json={"name": "North_Side"}).status_code == 201
    members = {"devices": [{"productKey": pk, "deviceName": "lamp-1"}]}
    assert api.post("/api/groups/North_Side/devices", json=members).is_success
    live = sockets.open(server)
    live.subscribe("g", "properties", group="North_Side")
    second = online(server, paho_client, pk, "lamp-2", secrets["lamp-2"])
    first = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    post(second, pk, "lamp-2", {"Brightness": 2})
    post(first, pk, "lamp-1", {"Brightness": 1})
    frame = live.until("properties")
    assert (frame["sub"], frame["device"], frame["values"]) == (
        "g",
        f"{pk}/lamp-1",
        {"Brightness": 1},
    )


def test_a_message_over_the_size_limit_closes_the_socket_1009(
    make_server: Any, sockets: LiveSockets
) -> None:
    server = make_server(ws_max_message_size=256)
    live = sockets.open(server)
    live.send(op="ping", id="x" * 300)
    with pytest.raises(ConnectionClosed) as closed:
        live.next()
    assert closed.value.sent is not None and closed.value.sent.code == 1009


def test_what_comes_within_an_interval_arrives_as_one_frame_in_order(
    make_server: Any, paho_client: Any, sockets: LiveSockets
) -> None:
    server = make_server(ws_batch_interval=2.0)  # (the posts take far less than that)
    pk, device = online_lamp(server, paho_client)
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    live = sockets.open(server)
    live.subscribe("all", "properties")
    bodies = [
        json.dumps({"id": str(n), "method": "thing.event.property.post", "params": {"N": n}})
        for n in range(6)
    ]
    assert device.publish_many(topic, bodies) == [0] * 6
    frame = live.frame()
    assert [(m["sub"], m["values"]["N"]) for m in frame] == [("all", n) for n in range(6)]
    assert server.platform.live_feed.frames_sent == 2  # "subscribed", then the six


def test_posts_are_acknowledged_while_a_socket_is_stuck(
    make_server: Any, paho_client: Any, sockets: LiveSockets
) -> None:
    # a queue that holds everything: the stuck socket is never dropped, only never sent to
    server = make_server(ws_queue_limit=100_000, ws_batch_interval=0)
    feed = server.platform.live_feed
    pk, device = online_lamp(server, paho_client)
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    filler = "x" * 32_000
    small = socket.create_connection(("127.0.0.1", server.ports["http"]))
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    headers = {"Authorization": f"Bearer {admin_token(server)}"}
    with connect(live_url(server), sock=small, additional_headers=headers, max_queue=1) as stuck:
        stuck.send(json.dumps({"op": "subscribe", "id": "all", "topic": "properties"}))
        eventually(lambda: feed.messages_sent >= 1, what="subscribed")
        # 16 MB of posts: far more than the kernel's buffers and the client's one frame hold,
        # so the socket is stuck long before the last; each post acknowledged all the same
        for start in range(0, 500, 10):
            burst = [
                json.dumps(
                    {
                        "id": str(n),
                        "method": "thing.event.property.post",
                        "params": {"Note": filler, "N": n},
                    }
                )
                for n in range(start, start + 10)
            ]
            assert device.publish_many(topic, burst) == [0] * 10
        eventually(lambda: feed.backlog > 100, what="the stuck socket's messages waiting")
        assert feed.dropped == 0 and feed.clients == 1
