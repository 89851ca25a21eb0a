"""Devices' messages into the history through a real server: what is kept, when a QoS 1 post is
acknowledged, and that nothing acknowledged is lost or doubled by ``kill -9``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from alibaba_device import make_device, make_product, online_lamp, signed
from broker_peers import TIMEOUT, Paho, eventually
from history_places import SQLITE_VALUES, HistoryPlace
from hongshan.store.history.model import LogKind
from hongshan.things.tsl import ThingModel

HOUR = 3_600_000
TSL = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"


def modelled_lamp(server: Any, paho_client: Callable[..., Paho]) -> tuple[str, Paho]:
    """A product with the streetlight thing model, its lamp-0001, logged in: (pk, client)."""
    model = ThingModel.from_json(TSL.read_bytes())
    pk = make_product(server, thing_model=model).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    client = paho_client(server.port, **signed(pk, "lamp-0001", secret))
    client.connect()
    return pk, client


def history_of(server: Any) -> Any:
    return server.platform.history


def test_posts_events_and_status_changes_are_kept(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, lamp = modelled_lamp(server, paho_client)
    device = (pk, "lamp-0001")
    stamp = int(time.time() * 1000) - 30_000
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    lamp.subscribe(topic + "_reply", qos=1)
    lamp.publish(topic, json.dumps({"id": "1", "params": {"Brightness": 40}}).encode())
    assert json.loads(lamp.get().payload)["code"] == 200
    stamped = {"id": "2", "params": {"Brightness": {"value": 55, "time": stamp}}}
    lamp.publish(topic, json.dumps(stamped).encode())
    assert json.loads(lamp.get().payload)["code"] == 200
    bad = {"id": "3", "params": {"Brightness": 500}}  # out of range: refused, nothing kept
    lamp.publish(topic, json.dumps(bad).encode())
    assert json.loads(lamp.get().payload)["code"] == 6306
    fault = {"id": "4", "params": {"FaultCode": 3}}
    lamp.publish(f"/sys/{pk}/lamp-0001/thing/event/LampFault/post", json.dumps(fault).encode())
    lamp.disconnect()
    history = history_of(server)

    def kept() -> tuple[list[Any], list[Any]]:
        server.run(_committed(history))
        now = int(time.time() * 1000)
        page = server.run(history.points(device, "Brightness", now - HOUR, now + HOUR))
        log = server.run(history.log(device, now - HOUR, now + HOUR))
        return page.points, log.entries

    eventually(lambda: len(kept()[1]) == 3, what="online, the event, offline")
    points, entries = kept()
    assert sorted(p.value for p in points) == [40, 55]
    assert [p.ts for p in points if p.value == 55] == [stamp]
    assert [(e.kind, e.identifier) for e in entries] == [
        (LogKind.STATUS, "online"),
        (LogKind.EVENT, "LampFault"),
        (LogKind.STATUS, "offline"),
    ]
    assert entries[0].body["address"].startswith("127.0.0.1")
    assert entries[1].body == {"FaultCode": 3}
    assert entries[2].body == {"reason": "disconnect"}


def test_a_qos1_post_is_acknowledged_only_once_its_values_are_committed(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Another process holds history.db's write lock: the post is answered by the dialect, but
    its PUBACK waits for the commit, which can only happen once the lock is gone."""
    pk, lamp = online_lamp(server, paho_client)
    path = Path(server.settings.data_dir) / "history.db"
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    lamp.subscribe(topic + "_reply", qos=1)
    info = lamp.client.publish(topic, b'{"id":"9","params":{"Brightness":77}}', qos=1)
    assert json.loads(lamp.get().payload)["code"] == 200  # checked and answered at once
    assert not info.is_published()  # ... but not acknowledged while the commit cannot happen
    locker.execute("ROLLBACK")
    locker.close()
    info.wait_for_publish(TIMEOUT)
    assert info.is_published()
    with sqlite3.connect(path) as reader:
        assert reader.execute(SQLITE_VALUES).fetchall() == [(77,)]


def persistent_device(port: int, pk: str, dn: str, secret: str) -> mqtt.Client:
    """A paho client as a device firmware runs it: a persistent session, reconnecting by
    itself, resending what was not acknowledged."""
    login = signed(pk, dn, secret)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=login["client_id"], clean_session=False
    )
    client.username_pw_set(login["username"], login["password"])
    client.max_inflight_messages_set(20)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(0.1, 0.5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_while_the_history_cannot_write_posts_go_unacknowledged_and_health_says_why(
    server: Any,
) -> None:
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    lamp = persistent_device(server.port, pk, "lamp-0001", secret)
    history = history_of(server)
    server.call(lambda: history._writer.execute("PRAGMA busy_timeout=100"))
    server.run(_committed(history))  # (the writer process's connection)
    path = Path(server.settings.data_dir) / "history.db"
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    info = lamp.publish(topic, b'{"id":"1","params":{"Brightness":11}}', qos=1)
    # not acknowledged: the device is disconnected and keeps the message to send again
    eventually(lambda: server.call(lambda: history.problem) is not None, what="a failed write")
    health = _health(server)
    assert health["status"] == "degraded" and "locked" in health["history"]["problem"]
    assert not info.is_published()
    locker.execute("ROLLBACK")
    locker.close()
    # paho reconnects and sends it again; now it is committed and acknowledged
    info.wait_for_publish(TIMEOUT * 2)
    assert info.is_published()
    eventually(lambda: _health(server)["status"] == "ok", what="health back to ok")
    lamp.loop_stop()
    lamp.disconnect()
    with sqlite3.connect(path) as reader:
        assert reader.execute(SQLITE_VALUES).fetchall() == [(11,)], (
            reader.execute(SQLITE_VALUES).fetchall()
            + reader.execute("SELECT * FROM history_series").fetchall()
        )


async def _committed(history: Any) -> None:
    await history.committed()


def _health(server: Any) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{server.ports['http']}/api/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as failed:
        body = json.load(failed)
    return body


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_acknowledged_message_is_in_history_exactly_once_after_kill_9(
    tmp_path: Path,
    make_server: Callable[..., Any],
    spawn_server: Callable[..., Any],
    backend: str,
) -> None:
    """A device posts 1,200 QoS 1 messages (stamped property posts and events, alternately)
    while the server is killed with SIGKILL and started again on the same port. paho resends
    what was not acknowledged; afterwards every acknowledged message is in history once."""
    data_dir = tmp_path / "data"
    place = HistoryPlace(backend, data_dir)
    asyncio.run(place.create())
    flags = ("--history-url", place.url) if backend == "postgresql" else ()
    seeding = make_server()
    pk = make_product(seeding).product_key  # no thing model: any property or event is taken
    secret = make_device(seeding, pk, "meter-1").device_secret
    seeding.stop()
    first = spawn_server(*flags, data_dir=data_dir)
    total, kill_after = 1200, 300
    acked: set[int] = set()  # message ids (paho's), which do not wrap within this test
    done = threading.Event()

    def on_publish(_c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        acked.add(mid)
        if len(acked) == total:
            done.set()

    client = persistent_device(first.port, pk, "meter-1", secret)
    client.on_publish = on_publish
    base = int(time.time() * 1000) - 600_000
    try:
        for seq in range(total):
            if seq % 2 == 0:
                topic = f"/sys/{pk}/meter-1/thing/event/property/post"
                params: dict[str, Any] = {"Seq": {"value": seq, "time": base + seq}}
            else:
                topic = f"/sys/{pk}/meter-1/thing/event/Tick/post"
                params = {"Seq": seq}
            body = json.dumps({"id": str(seq), "params": params}).encode()
            client.publish(topic, body, qos=1)
            if seq == kill_after:
                eventually(lambda: len(acked) >= kill_after // 2, what="some acknowledgements")
                first.kill()
                # where the device reconnects
                spawn_server(*flags, data_dir=data_dir, port=first.port)
        assert done.wait(60), f"{len(acked)} of {total} acknowledged"
        stored = SQLITE_VALUES if backend == "sqlite" else "SELECT num FROM history_points"
        points = [int(v) for (v,) in asyncio.run(place.fetch(stored))]
        events = [
            json.loads(body)["Seq"]
            for (body,) in asyncio.run(
                place.fetch("SELECT body FROM history_log WHERE kind = 'event'")
            )
        ]
    finally:
        client.loop_stop()
        client.disconnect()
        asyncio.run(place.drop())
    assert sorted(points) == list(range(0, total, 2))
    assert sorted(events) == list(range(1, total, 2))


def test_commands_sent_and_the_devices_replies_are_kept(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, lamp = modelled_lamp(server, paho_client)
    lamp.subscribe(f"/sys/{pk}/lamp-0001/thing/service/property/set", qos=1)
    call = asyncio.run_coroutine_threadsafe(
        server.platform.alink.set_properties(pk, "lamp-0001", {"Brightness": 30}, wait=8),
        server.loop,
    )
    request = json.loads(lamp.get().payload)
    assert request["params"] == {"Brightness": 30}
    reply = {"id": request["id"], "code": 200, "data": {}}
    lamp.publish(
        f"/sys/{pk}/lamp-0001/thing/service/property/set_reply", json.dumps(reply).encode()
    )
    assert call.result(TIMEOUT).code == 200
    history = history_of(server)
    server.run(_committed(history))
    now = int(time.time() * 1000)
    entries = server.run(
        history.log(
            (pk, "lamp-0001"),
            now - HOUR,
            now + HOUR,
            kinds=[LogKind.PROPERTY_SET, LogKind.SERVICE_REPLY],
        )
    ).entries
    assert [(e.kind, e.identifier) for e in entries] == [
        (LogKind.PROPERTY_SET, "set"),
        (LogKind.SERVICE_REPLY, "set"),
    ]
    assert entries[0].body == {"id": request["id"], "params": {"Brightness": 30}}
    assert entries[1].body["code"] == 200 and entries[1].body["id"] == request["id"]


def test_a_qos1_message_sent_again_on_a_new_connection_or_after_a_restart_is_kept_once(
    make_server: Callable[..., Any],
) -> None:
    """What a device does when a PUBACK never reached it: the same message, on a new
    connection (the dialect's memory of replies is gone with the old one), or to a server
    started again on the same data."""
    server = make_server()
    pk = make_product(server).product_key
    secret = make_device(server, pk, "meter-1").device_secret
    topic = f"/sys/{pk}/meter-1/thing/event/Tick/post"
    body = b'{"id":"42","params":{"Seq":42}}'

    def send_once(port: int) -> None:
        device = persistent_device(port, pk, "meter-1", secret)
        device.publish(topic, body, qos=1).wait_for_publish(TIMEOUT)
        device.loop_stop()
        device.disconnect()

    def ticks(at: Any) -> int:
        at.run(_committed(at.platform.history))
        now = int(time.time() * 1000)
        log = at.run(
            at.platform.history.log((pk, "meter-1"), now - HOUR, now + HOUR, kinds=[LogKind.EVENT])
        )
        return len(log.entries)

    send_once(server.port)
    send_once(server.port)
    assert ticks(server) == 1
    server.stop()
    again = make_server()
    send_once(again.port)
    assert ticks(again) == 1
    other = b'{"id":"43","params":{"Seq":43}}'  # a new message is kept, of course
    device = persistent_device(again.port, pk, "meter-1", secret)
    device.publish(topic, other, qos=1).wait_for_publish(TIMEOUT)
    device.loop_stop()
    device.disconnect()
    assert ticks(again) == 2


def test_a_full_disk_stops_acknowledgements_until_there_is_room_again(
    small_disk: Path, make_server: Callable[..., Any]
) -> None:
    server = make_server(data_dir=str(small_disk / "data"))
    pk = make_product(server).product_key
    secret = make_device(server, pk, "meter-1").device_secret
    device = persistent_device(server.port, pk, "meter-1", secret)
    topic = f"/sys/{pk}/meter-1/thing/event/property/post"
    first = device.publish(topic, b'{"id":"1","params":{"Seq":1}}', qos=1)
    first.wait_for_publish(TIMEOUT)
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as fill:  # every byte left, taken
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                fill.write(chunk)
    history = history_of(server)
    # (paho's MQTTMessageInfo raises for a message published while it was disconnected,
    # though it keeps and sends it: its PUBACKs are counted here instead)
    acked: set[int] = set()
    device.on_publish = lambda _c, _u, mid, _rc, _p: acked.add(mid)
    mids = [
        device.publish(topic, json.dumps({"id": str(n), "params": {"Seq": n}}).encode(), qos=1).mid
        for n in range(2, 40)
    ]
    eventually(lambda: server.call(lambda: history.problem) is not None, what="a failed write")
    assert "full" in (server.call(lambda: history.problem) or "")
    assert _health(server)["status"] == "degraded"
    assert not acked.issuperset(mids)
    filler.unlink()  # room again: the store recovers by itself, the device resends
    eventually(lambda: acked.issuperset(mids), 3 * TIMEOUT, "every PUBACK")
    eventually(lambda: _health(server)["status"] == "ok", what="health back to ok")
    device.loop_stop()
    device.disconnect()
    server.run(_committed(history))
    now = int(time.time() * 1000)
    kept = server.run(history.points((pk, "meter-1"), "Seq", now - HOUR, now + HOUR, limit=1000))
    assert sorted(p.value for p in kept.points) == list(range(1, 40))
    integrity = sqlite3.connect(small_disk / "data" / "history.db")
    assert integrity.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    integrity.close()
