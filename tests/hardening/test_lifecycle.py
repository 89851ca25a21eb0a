"""Issue 12, the hostile review's lifecycle cases: a server started after kill -9 (devices'
state and latest values), the data directory's modes, a device's status log, and HTTP clients
that hold connections open without finishing a request."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from alibaba_device import make_device, make_product, signed
from broker_peers import DISCONNECT, PUBACK, TIMEOUT, RawClient, eventually
from history_places import HistoryPlace
from hongshan.dialects.alink.device_auth import device_client_id
from hongshan.errors import StoreUnavailable
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.store.history.model import LogKind
from hongshan.things.model import DeviceState, NodeType


def admin(data_dir: Path, http_port: int) -> httpx.Client:
    token = (data_dir / "admin.token").read_text().strip()
    return httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )


class PostingDevice:
    """A paho device posting QoS 1 values of ``Seq``, which remembers the highest one the
    server acknowledged. It does not reconnect once stopped."""

    def __init__(self, port: int, pk: str, dn: str, secret: str) -> None:
        self.topic = f"/sys/{pk}/{dn}/thing/event/property/post"
        login = signed(pk, dn, secret)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=login["client_id"])
        self.client.username_pw_set(login["username"], login["password"])
        self.client.max_inflight_messages_set(20)
        self.client.max_queued_messages_set(0)
        self.sent: dict[int, int] = {}  # message id -> Seq (ids do not wrap in these tests)
        self.acked_ids: list[int] = []
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked_ids.append(mid)
        connected = threading.Event()
        self.client.on_connect = lambda *_: connected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(TIMEOUT)

    @property
    def acked(self) -> int:
        return max((self.sent.get(mid, -1) for mid in list(self.acked_ids)), default=-1)

    def post(self, seq: int) -> None:
        body = json.dumps({"id": str(seq), "params": {"Seq": seq}}).encode()
        self.sent[self.client.publish(self.topic, body, qos=1).mid] = seq

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.slow
def test_after_kill_9_devices_are_offline_with_a_log_entry_and_committed_values(
    tmp_path: Path, make_server: Callable[..., Any], spawn_server: Callable[..., Any]
) -> None:
    """Issue 12 case 6: after kill -9 and a restart, all 10 devices were still "online" minutes
    later with no client connected and no offline entry in their log, and the latest values
    lagged the history's last acknowledged one (457 against 476): the registry's copy of the
    latest values is saved every second, and nothing at start put right what the crash left."""
    data_dir = tmp_path / "data"
    seeding = make_server()
    pk = make_product(seeding).product_key  # no thing model: any property is taken
    names = [f"meter-{i}" for i in range(10)]
    secrets = {dn: make_device(seeding, pk, dn).device_secret for dn in names}
    seeding.stop()
    first = spawn_server(data_dir=data_dir)
    devices = {dn: PostingDevice(first.port, pk, dn, secrets[dn]) for dn in names}
    try:
        for seq in range(400):
            for device in devices.values():
                device.post(seq)
            if seq % 50 == 49:  # (kept within paho's window: the last 20 are in flight)
                eventually(
                    lambda s=seq: all(d.acked >= s - 20 for d in devices.values()),
                    what="acknowledgements",
                )
        first.kill()
    finally:
        for device in devices.values():
            device.stop()
    acked = {dn: device.acked for dn, device in devices.items()}
    restarted_at = int(time.time() * 1000)

    second = spawn_server(data_dir=data_dir)
    with admin(data_dir, second.ports()["http"]) as api:
        for dn in names:
            device = f"/api/products/{pk}/devices/{dn}"
            assert api.get(device).json()["state"] == "offline", dn
            log = api.get(device + "/log", params={"kind": "status"}).json()["entries"]
            assert [e["identifier"] for e in log] == ["online", "offline"], dn
            assert log[-1]["body"] == {"reason": "server restarted"}
            assert log[-1]["ts"] >= restarted_at
            latest = api.get(device + "/properties").json()["Seq"]
            ((ts, value),) = api.get(
                device + "/history/Seq", params={"order": "desc", "limit": 1}
            ).json()["points"]
            # what the history committed (each acknowledged post, perhaps a few more whose
            # PUBACK the kill cut off), not what was saved up to a second before the crash
            assert (latest["value"], latest["time"]) == (value, ts), dn
            assert latest["value"] >= acked[dn], dn


async def test_the_history_tells_each_series_newest_value_and_each_device_last_status(
    place: HistoryPlace,
) -> None:
    """Issue 12 case 6: what a start reconciles the latest values and devices' state from,
    on both backends: each series' newest committed value (of any kind, as it went in) and
    each device's last status entry, however many other entries follow it."""
    lamp, meter = ("pk", "lamp"), ("pk", "meter")
    history = await place.open()
    history.start()
    history.add_points(lamp, [("Light", 1_000, True), ("Light", 3_000, False)])
    history.add_points(lamp, [("Light", 2_000, True), ("Mode", 2_000, {"a": [1, 2]})])
    history.add_points(meter, [("Seq", 5_000, 7), ("Seq", 4_000, 8), ("Note", 1, "x")])
    history.add_log(lamp, LogKind.STATUS, "online", 1_000, {})
    history.add_log(lamp, LogKind.STATUS, "offline", 2_000, {})
    history.add_log(meter, LogKind.STATUS, "online", 1_000, {})
    history.add_log(meter, LogKind.EVENT, "Tick", 9_000, {})
    await history.committed()
    await history.close()

    history = await place.open()
    try:
        assert await history.latest_values() == {
            lamp: {"Light": (False, 3_000), "Mode": ({"a": [1, 2]}, 2_000)},
            meter: {"Seq": (7, 5_000), "Note": ("x", 1)},
        }
        assert await history.last_status() == {lamp: "offline", meter: "online"}
    finally:
        await history.close()


# -- case 5: HTTP clients that hold connections without finishing a request ------------------


def slow_client(port: int, sent: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A raw connection that sent ``sent`` (part of a request, or nothing) and then waits."""
    sock = socket.create_connection(
        ("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0)
    )
    if sent:
        sock.sendall(sent)
    return sock


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (within TIMEOUT)."""
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def still_served(server: Any, paho_client: Callable[..., Any], source: str) -> None:
    """``/api/health`` answers (from ``source``), and an MQTT client publishes and receives."""
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        answer = client.get(f"http://127.0.0.1:{server.ports['http']}/api/health")
    assert answer.status_code == 200
    mqtt_client = paho_client(server.port).connect()
    mqtt_client.subscribe("guard/t", 1)
    mqtt_client.publish("guard/t", b"through", qos=1)
    assert mqtt_client.get().payload == b"through"


def test_clients_slow_to_send_a_request_head_are_answered_408_and_closed(
    make_server: Callable[..., Any], paho_client: Callable[..., Any]
) -> None:
    """Issue 12 case 5: 200 connections sending a header line every 5 s stayed open for ever
    (uvicorn has no time limit on a request's head; its keep-alive timer stops at the first
    byte), and with 300 file descriptors 277 of them starved MQTT and ``/api/health``."""
    server = make_server(http_header_timeout=1.0)
    port = server.ports["http"]
    trickling = [
        slow_client(port, b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Trickle: 1\r\n")
        for _ in range(20)
    ]
    silent = [slow_client(port, b"") for _ in range(5)]
    blank = slow_client(port, b"\r\n")  # (bytes that begin no request)
    still_served(server, paho_client, "127.0.0.1")
    for sock in trickling:
        answer = until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"application/problem+json" in answer and b"head did not arrive" in answer
    for sock in [*silent, blank]:
        assert until_closed(sock) == b""  # (nothing was asked: nothing to answer)


def test_a_request_body_that_does_not_arrive_in_time_is_answered_408(
    make_server: Callable[..., Any],
) -> None:
    """Issue 12 case 5: the same for a body announced and never sent whole."""
    server = make_server(http_body_timeout=1.0)
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    head = (
        f"POST /api/products HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    sock = slow_client(server.ports["http"], head.encode() + b'{"name": ')
    answer = until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"body did not arrive" in answer


def test_an_idle_kept_alive_connection_is_closed_and_blank_lines_do_not_keep_it(
    make_server: Callable[..., Any],
) -> None:
    """Issue 12 case 5: after a response, bytes that begin no request stopped uvicorn's
    keep-alive timer, and nothing else closed the connection."""
    server = make_server(http_keepalive_timeout=1.0, http_header_timeout=60.0)
    sock = slow_client(server.ports["http"], b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while b'"status":"ok"' not in received:
        received += sock.recv(65536)
    sock.sendall(b"\r\n")
    assert until_closed(sock) == b""


def test_one_address_holds_at_most_the_cap_of_connections(
    make_server: Callable[..., Any], paho_client: Callable[..., Any]
) -> None:
    """Issue 12 case 5: one address could open as many HTTP connections as the process had
    descriptors; beyond ``http_max_connections_per_address`` it is answered 503 and closed,
    while other addresses are served."""
    server = make_server(http_max_connections_per_address=5, http_header_timeout=60.0)
    port = server.ports["http"]
    held = [slow_client(port, b"GET / HTTP/1.1\r\n") for _ in range(5)]
    over = until_closed(slow_client(port, b""))
    assert over.startswith(b"HTTP/1.1 503 "), over
    assert b"holds 5 connections" in over
    still_served(server, paho_client, "127.0.0.2")
    held.pop().close()  # one given back: the address may connect again

    def admitted() -> bool:
        answer = until_closed(
            slow_client(port, b"GET /api/health HTTP/1.1\r\nConnection: close\r\n\r\n")
        )
        return answer.startswith(b"HTTP/1.1 200 ")

    eventually(admitted, what="a connection admitted again")
    for sock in held:
        sock.close()


def test_a_client_that_takes_nothing_of_a_large_response_is_cut_off(
    make_server: Callable[..., Any], paho_client: Callable[..., Any]
) -> None:
    """Issue 12 case 5 (review): the guard put no deadline on the responding phase. A client
    that asks for a large CSV and never reads held its connection (and the app's task) for as
    long as it liked: uvicorn waits for the transport to drain. One that takes nothing for
    ``http_send_timeout`` seconds is now cut off, and the server goes on serving."""
    server = make_server(http_send_timeout=1.0, http_keepalive_timeout=60.0)
    pk = make_product(server).product_key
    make_device(server, pk, "meter-0001")
    history = server.platform.history
    now = int(time.time() * 1000)
    note = "n" * 1000
    for first in range(0, 20_000, 5_000):  # 20 MB of CSV: more than any socket buffers
        points = [("Note", now - 60_000 + i, note) for i in range(first, first + 5_000)]
        server.call(lambda points=points: history.add_points((pk, "meter-0001"), points))

    async def committed() -> None:
        await history.committed()

    server.run(committed())
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    request = (
        f"GET /api/products/{pk}/devices/meter-0001/history/Note?format=csv&start={now - 120_000}"
        f"&end={now + 60_000} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sock:
        sock.connect(("127.0.0.1", server.ports["http"]))
        sock.sendall(request.encode())
        # never read: wait for the server to end the connection (a reset, or its FIN)
        ended = select.poll()
        ended.register(sock, select.POLLRDHUP)
        events = ended.poll(TIMEOUT * 1000)
        assert events and events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLRDHUP), (
            "still open"
        )
    still_served(server, paho_client, "127.0.0.1")


# -- case 11: the data directory is this user's alone ------------------------------------------


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a user (022: files 0644, directories 0755 by default)."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def modes(data_dir: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(data_dir.stat().st_mode)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = stat.S_IMODE(path.stat().st_mode)
    return found


def some_writes(server: Any, paho_client: Callable[..., Any]) -> None:
    """A device posting values (history, registry), a retained message (the broker's store)."""
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    lamp = paho_client(server.port, **signed(pk, "lamp-0001", secret)).connect()
    for seq in range(20):
        body = json.dumps({"id": str(seq), "params": {"Seq": seq}}).encode()
        assert lamp.publish(f"/sys/{pk}/lamp-0001/thing/event/property/post", body, qos=1) == 0
    user = paho_client(server.port).connect()
    assert user.publish("town/notice", b"kept", qos=1, retain=True) == 0


def test_the_data_directory_and_every_file_in_it_are_private(
    make_server: Callable[..., Any], paho_client: Callable[..., Any], usual_umask: None
) -> None:
    """Issue 12 case 11: the data directory was created 0755 and the databases 0644, so the
    history and retained payloads were anyone's to read; SQLite's -wal and -shm files too."""
    server = make_server()
    data_dir = Path(server.settings.data_dir)
    some_writes(server, paho_client)
    running = modes(data_dir)
    server.stop()
    stopped = modes(data_dir)
    assert {"history.db-wal", "registry.db", "hongshan.db", "admin.token"} <= running.keys()
    for found in (running, stopped):
        assert found.pop(".") == 0o700
        assert found == dict.fromkeys(found, 0o600)


def test_a_data_directory_left_readable_by_an_earlier_version_is_tightened_and_said(
    make_server: Callable[..., Any],
    paho_client: Callable[..., Any],
    usual_umask: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12 case 11: a data directory that already exists with looser modes is made
    private at start (it is the platform's own), and the log says what was changed."""
    first = make_server()
    data_dir = Path(first.settings.data_dir)
    some_writes(first, paho_client)
    first.stop()
    data_dir.chmod(0o755)
    for path in data_dir.iterdir():
        path.chmod(0o644)
    second = make_server()
    assert "history.db" in caplog.text and "made this user's alone" in caplog.text
    some_writes(second, paho_client)
    found = modes(data_dir)
    assert found.pop(".") == 0o700
    assert found == dict.fromkeys(found, 0o600)


# -- case 13: a device's status log alternates ------------------------------------------------


def vouch(pk: str, dn: str, secret: str) -> dict[str, str]:
    """A gateway's signed item for its sub-device (topo/add, combine/login), as the SDKs make it."""
    fields = {"productKey": pk, "deviceName": dn, "clientId": f"{pk}&{dn}", "timestamp": "1"}
    content = "".join(f"{k}{fields[k]}" for k in sorted(fields))
    sign = hmac.new(secret.encode(), content.encode(), hashlib.sha1).hexdigest()
    return {**fields, "signMethod": "hmacsha1", "sign": sign}


def test_a_sub_device_also_connected_on_its_own_is_logged_offline_once(
    server: Any, paho_client: Callable[..., Any]
) -> None:
    """Issue 12 case 13: two "offline" entries in a row (and two "online"): a sub-device logged
    in through its gateway that also connected on its own was logged online twice, offline
    when its own connection closed although its gateway still carried it (and set offline in
    the registry), and offline again at the gateway's logout."""
    gw_pk = make_product(server, "Gateway", node_type=NodeType.GATEWAY).product_key
    sub_pk = make_product(server, "Lamp", node_type=NodeType.SUBDEVICE).product_key
    gw_secret = make_device(server, gw_pk, "gateway-01").device_secret
    lamp_secret = make_device(server, sub_pk, "lamp-0001").device_secret
    assert lamp_secret is not None
    gateway = paho_client(server.port, **signed(gw_pk, "gateway-01", gw_secret)).connect()
    gateway.subscribe(f"/sys/{gw_pk}/gateway-01/thing/topo/add_reply", 1)
    for reply in ("login_reply", "logout_reply"):
        gateway.subscribe(f"/ext/session/{gw_pk}/gateway-01/combine/{reply}", 1)

    def ask(topic: str, params: Any) -> None:
        gateway.publish(topic, json.dumps({"id": "1", "params": params}).encode(), qos=1)
        assert json.loads(gateway.get().payload)["code"] == 200

    ask(f"/sys/{gw_pk}/gateway-01/thing/topo/add", [vouch(sub_pk, "lamp-0001", lamp_secret)])
    ask(f"/ext/session/{gw_pk}/gateway-01/combine/login", vouch(sub_pk, "lamp-0001", lamp_secret))
    own = paho_client(server.port, **signed(sub_pk, "lamp-0001", lamp_secret)).connect()
    own.disconnect()
    broker, own_id = server.platform.broker, device_client_id(sub_pk, "lamp-0001")
    eventually(lambda: server.call(lambda: broker.connection_of(own_id)) is None)
    state = server.run(server.platform.registry.get_device(sub_pk, "lamp-0001")).state
    assert state is DeviceState.ONLINE  # (its gateway carries it)
    ask(
        f"/ext/session/{gw_pk}/gateway-01/combine/logout",
        {"productKey": sub_pk, "deviceName": "lamp-0001"},
    )

    history = server.platform.history

    async def committed() -> None:
        await history.committed()

    server.run(committed())
    now = int(time.time() * 1000)
    log = server.run(
        history.log((sub_pk, "lamp-0001"), now - 60_000, now + 60_000, kinds=[LogKind.STATUS])
    )
    assert [entry.identifier for entry in log.entries] == ["online", "offline"]
    state = server.run(server.platform.registry.get_device(sub_pk, "lamp-0001")).state
    assert state is DeviceState.OFFLINE


# -- case 15: acknowledgements that resume after a store failure -------------------------------


def test_acknowledgements_resuming_after_a_failed_commit_are_said(
    make_server: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 12 case 15 (review): a commit of the broker's store that fails disconnects the
    client whose PUBACK waited for it, said in a line; the line saying acknowledgements came
    back was never written (the log's ``succeeded`` was never called), so the log of a disk
    that filled and then had room again ended on the failure."""
    caplog.set_level(logging.WARNING, logger="hongshan.broker")
    server = make_server()
    store = server.platform.broker.store
    real_committed = store.committed
    failing = [StoreUnavailable("database or disk is full")]

    def committed() -> Any:  # the next commit fails, the ones after it do not
        if not failing:
            return real_committed()
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(failing.pop())
        return failed

    monkeypatch.setattr(store, "committed", committed)
    first = RawClient(server.port)
    second = RawClient(server.port)
    try:
        assert first.connect("kept-1").reason == 0
        # (a retained message is written to the broker's store: its PUBACK waits for it)
        first.publish("town/notice", b"one", qos=1, retain=True, packet_id=1)
        assert [(p.type, p.reason) for p in first.closed()] == [
            (DISCONNECT, ReasonCode.UNSPECIFIED_ERROR)
        ]
        assert second.connect("kept-2").reason == 0
        second.publish("town/notice", b"two", qos=1, retain=True, packet_id=1)
        assert second.expect(PUBACK).reason == 0
    finally:
        first.close()
        second.close()
    said = [r.getMessage() for r in caplog.records if r.name == "hongshan.broker"]
    failed = [i for i, line in enumerate(said) if "database or disk is full" in line]
    resumed = [i for i, line in enumerate(said) if "again" in line]
    assert failed and resumed and failed[0] < resumed[0], said
