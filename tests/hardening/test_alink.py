"""Issue 12, the hostile review's Alink cases, against a real server and real peers (paho-mqtt
3.1.1 and 5.0, httpx, ``hongshan serve`` in a subprocess)."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest

from alibaba_device import make_device, make_product, online_lamp, signed
from broker_peers import TIMEOUT, V5, V311, Paho
from hongshan.bus.local import LocalBus
from hongshan.dialects.alink.dialect import REMEMBERED_IDS, AlinkDialect
from hongshan.messages import CallService, DeviceRef, Outcome, PushDesired, SetProperties, Uplink
from hongshan.pipeline.uplink import Pipeline
from hongshan.store.history.model import LogKind
from hongshan.things.tsl import ThingModel

DATA = Path(__file__).parent.parent / "things" / "data"
HOUR = 3_600_000
PAYLOAD_FORMAT_INVALID = 0x99  # MQTT 5.0 reason code
DEEP = 100_000  # levels of nesting in the deep payload (the review's: far past recursion)


def _deep(msg_id: bytes) -> bytes:
    return b'{"id":' + msg_id + b',"params":{"Brightness":' + b"[" * DEEP + b"]" * DEEP + b"}}"


# (payload, the Alink code of the reply, the id it answers to; None: no id to answer to)
MALFORMED: dict[str, tuple[bytes, int | None, Any]] = {
    "not JSON": (b"Brightness=40", None, None),
    "NaN": (b'{"id":"11","params":{"Brightness":NaN}}', 6207, "11"),
    "not UTF-8": (b'{"id":"12","params":{"Brightness":"\xff\xfe"}}', 6207, "12"),
    "deeply nested": (_deep(b'"13"'), 460, "13"),
    "33 levels": (
        b'{"id":"14","params":{"Brightness":' + b"[" * 31 + b"]" * 31 + b"}}",
        460,
        "14",
    ),
    "id missing": (b'{"params":{"Brightness":40}}', None, None),
    "id a float": (b'{"id":1.5,"params":{"Brightness":40}}', 460, 1.5),
    "id null": (b'{"id":null,"params":{"Brightness":40}}', None, None),
}


def _lamp(server: Any, paho_client: Callable[..., Paho], version: int) -> tuple[str, Paho]:
    """A product, its device lamp-0001, and its firmware logged in over ``version``."""
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    return pk, paho_client(server.port, version=version, **signed(pk, "lamp-0001", secret))


async def _committed(history: Any) -> None:
    await history.committed()


def _values(server: Any, pk: str) -> list[Any]:
    history = server.platform.history
    server.run(_committed(history))
    now = int(time.time() * 1000)
    page = server.run(history.points((pk, "lamp-0001"), "Brightness", now - HOUR, now + HOUR))
    return [point.value for point in page.points]


@pytest.mark.parametrize("version", [V5, V311], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_alink_payload_is_refused_and_answered(
    server: Any, paho_client: Callable[..., Paho], kind: str, version: int
) -> None:
    """Issue 12 case 13: the review saw a non-JSON, NaN, non-UTF-8 or deeply nested Alink
    payload, or one whose id was missing, a float or null, acknowledged as accepted and never
    answered (the deep one made the tap raise RecursionError, and was routed all the same).
    Now a QoS 1 MQTT 5 publisher gets PUBACK 0x99, a 3.1.1 one its plain PUBACK; both get the
    Alink error reply where an id can be read; no subscriber receives the message and nothing
    of it is kept. A good post sent after it marks the end: what came before it came at all."""
    payload, code, msg_id = MALFORMED[kind]
    pk, lamp = _lamp(server, paho_client, version)
    lamp.connect()
    watcher = paho_client(server.port, version=V5).connect()
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    watcher.subscribe(topic, qos=1)
    lamp.subscribe(topic + "_reply", qos=1)

    reason = lamp.publish(topic, payload, qos=1)
    assert reason == (PAYLOAD_FORMAT_INVALID if version == V5 else 0)
    good = b'{"id":"99","params":{"Brightness":40}}'
    assert lamp.publish(topic, good, qos=1) == 0

    replies = [json.loads(lamp.get().payload)]
    if msg_id is not None:
        replies.append(json.loads(lamp.get().payload))
        assert replies[0]["id"] == msg_id and replies[0]["code"] == code
        assert replies[0]["method"] == "thing.event.property.post"
        assert replies[0]["message"]
    assert replies[-1]["id"] == "99" and replies[-1]["code"] == 200  # nothing else came between
    assert bytes(watcher.get().payload) == good  # the refused message was delivered to nobody
    assert _values(server, pk) == [40]


def test_an_unterminated_string_of_escapes_is_answered_at_once(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 13 (review): a device's own property post of 40 ``[`` and then a string
    of escaped quotes that never ends held the event loop in a quadratic regular expression
    (the depth check's string stripper): 80 KB for 29 s, a megabyte for hours, the whole
    server frozen. It is answered at once: 6207 (not JSON), and refused."""
    pk, lamp = _lamp(server, paho_client, V5)
    lamp.connect()
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    lamp.subscribe(topic + "_reply", qos=1)
    payload = b'{"id":"1","params":' + b"[" * 40 + b'"' + b'\\"' * 500_000  # 1 MB
    assert lamp.publish(topic, payload, qos=1) == PAYLOAD_FORMAT_INVALID
    reply = json.loads(lamp.get().payload)
    assert (reply["id"], reply["code"]) == ("1", 6207)
    assert lamp.publish(topic, b'{"id":"2","params":{"Brightness":40}}', qos=1) == 0
    assert json.loads(lamp.get().payload)["code"] == 200
    assert _values(server, pk) == [40]


class _Uplinks:
    kinds = (Uplink,)

    def __init__(self) -> None:
        self.received: list[Uplink] = []

    def on_uplink(self, uplink: Uplink) -> None:
        self.received.append(uplink)

    def bus(self) -> LocalBus:
        return LocalBus(Pipeline([self]), protocol_of=lambda _pk: "alink")


def test_repeats_are_known_by_a_digest_not_by_the_message() -> None:
    """Issue 12 case 1 (review): to answer a repeated post again, the dialect kept each
    device's last 32 accepted messages whole, with their ids, for as long as the device stayed
    online: 10 devices' posts with 900 KB ids held 962 MiB. It keeps an 8-byte digest of each
    (topic, id and payload), and still knows a repeat."""
    uplinks = _Uplinks()
    replies: list[tuple[str, bytes]] = []
    dialect = AlinkDialect(
        thing_model=lambda _pk: None,
        online=lambda _pk, _dn: True,
        publish=lambda topic, payload, _qos: replies.append((topic, payload)),
        bus=uplinks.bus(),
    )
    padding = "x" * 256 * 1024  # a field the message may carry, and the dialect skips
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for device in range(4):
            topic = f"/sys/pk/lamp-{device}/thing/event/property/post"
            for i in range(REMEMBERED_IDS):
                post = {"id": str(i), "params": {"Brightness": i}, "padding": padding}
                dialect.on_message(topic, json.dumps(post).encode(), 1)
        uplinks.received.clear()
        replies.clear()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert dialect.stats.accepted == 4 * REMEMBERED_IDS
    assert held < 256 * 1024, f"{held} bytes held for {4 * REMEMBERED_IDS} posts of 256 KB"
    dialect.on_message(topic, json.dumps(post).encode(), 1)  # the last one again
    assert (dialect.stats.accepted, dialect.stats.repeated) == (4 * REMEMBERED_IDS, 1)
    assert uplinks.received == []  # not passed on twice
    assert [json.loads(payload)["code"] for _, payload in replies] == [200]


def test_a_refused_message_is_not_held_after_its_answer() -> None:
    """Issue 12 case 1 (review): a refused message's error, handed back to the tap, kept its
    traceback, whose frames lead back to the dialect's caller that held the error: a reference
    cycle that held each refused payload until the garbage collector came round (100 refused
    posts of 900 KB: 168 MiB). Nothing of a refused message is held once it is answered."""
    dialect = AlinkDialect(
        thing_model=lambda _pk: None,
        online=lambda _pk, _dn: True,
        publish=lambda _topic, _payload, _qos: None,
        bus=_Uplinks().bus(),
    )
    topic = "/sys/pk/lamp-0/thing/event/property/post"
    gc.disable()  # (as between two of its rounds)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(16):
            body = b'{"id":"%d","params":{"Brightness":NaN},"padding":"' % i + b"x" * 2**20
            assert dialect.on_message(topic, body + b'"}', 1)  # refused: NaN is not JSON
        del body
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    assert dialect.stats.malformed == 16
    assert held < 2**20, f"{held} bytes held after 16 refused posts of 1 MiB"


@pytest.mark.parametrize(
    ("msg_id", "code"),
    [
        ('"4294967295"', 200),
        ("4294967295", 200),
        ('"42949672950"', 460),  # 11 characters
        ('"' + "9" * 900_000 + '"', 460),  # the review's 900 KB id
        ("4294967296", 460),
        ("-1", 460),
    ],
    ids=["10 digits", "largest number", "11 digits", "900 KB", "past 2**32", "negative"],
)
def test_an_id_beyond_alibabas_range_is_refused(
    server: Any, paho_client: Callable[..., Paho], msg_id: str, code: int
) -> None:
    """Issue 12 case 1 (review): any id was accepted, and a 900 KB one was kept in the
    dialect's memory and echoed. Alibaba's ids are 0 to 4294967295 ("Alink protocol"); one
    beyond is answered 460 naming the id, and refused (PUBACK 0x99)."""
    pk, lamp = _lamp(server, paho_client, V5)
    lamp.connect()
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/post"
    lamp.subscribe(topic + "_reply", qos=1)
    payload = b'{"id":' + msg_id.encode() + b',"params":{"Brightness":40}}'
    reason = lamp.publish(topic, payload, qos=1)
    assert reason == (0 if code == 200 else PAYLOAD_FORMAT_INVALID)
    reply = json.loads(lamp.get().payload)
    assert reply["code"] == code and reply["id"] == json.loads(msg_id)
    if code != 200:
        assert "$.id" in reply["message"] and "4294967295" in reply["message"]
    assert _values(server, pk) == ([40] if code == 200 else [])


# every other tap that reads a device's JSON: (its topic, where it answers, the method of an
# Alink reply; None: it is no Alink request)
OTHER_TAPS: dict[str, tuple[str, str | None, str | None]] = {
    "topo add": ("/sys/{pk}/lamp-0001/thing/topo/add", "{topic}_reply", "thing.topo.add"),
    "sub login": ("/ext/session/{pk}/lamp-0001/combine/login", "{topic}_reply", "combine.login"),
    "desired get": (
        "/sys/{pk}/lamp-0001/thing/property/desired/get",
        "{topic}_reply",
        "thing.property.desired.get",
    ),
    "shadow": ("/shadow/update/{pk}/lamp-0001", "/shadow/get/{pk}/lamp-0001", None),
    "ntp": ("/ext/ntp/{pk}/lamp-0001/request", None, None),
    "ota inform": ("/ota/device/inform/{pk}/lamp-0001", None, None),
}
NESTED = b'{"id":"7","deviceSendTime":"1","params":' + b"[" * 5_000 + b"]" * 5_000 + b"}"


@pytest.mark.parametrize("payload", [b"{not json", NESTED], ids=["not JSON", "nested 5,000"])
@pytest.mark.parametrize("tap", list(OTHER_TAPS))
def test_a_malformed_payload_on_any_tap_is_refused_and_answered(
    server: Any,
    paho_client: Callable[..., Paho],
    caplog: pytest.LogCaptureFixture,
    tap: str,
    payload: bytes,
) -> None:
    """Issue 12 case 13 (review): gateway and desired-property requests that were not JSON
    raised out of their handlers (a traceback at ERROR per message, or "Task exception was
    never retrieved", and no answer); NTP and firmware reports nested past the decoder did
    too. Every tap now refuses such a payload as the property post does: PUBACK 0x99, the
    Alink error reply where an id can be read (460 here: nested too deep), and no error
    logged."""
    pattern, answers, method = OTHER_TAPS[tap]
    pk, lamp = _lamp(server, paho_client, V5)
    lamp.connect()
    topic = pattern.format(pk=pk)
    if answers is not None:
        lamp.subscribe(answers.format(pk=pk, topic=topic), qos=1)
    with caplog.at_level(logging.INFO):
        assert lamp.publish(topic, payload, qos=1) == PAYLOAD_FORMAT_INVALID
        if answers is not None and (method is None or payload is NESTED):
            answer = json.loads(lamp.get().payload)
            if method is None:  # the shadow's own error reply
                assert answer["payload"]["content"]["errorcode"] == "400"
            else:
                assert (answer["id"], answer["code"], answer["method"]) == ("7", 460, method)
        assert server.call(lambda: server.platform.broker.stats.refused_publish) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("version", [V5, V311], ids=["mqtt5", "mqtt311"])
def test_a_malformed_reply_to_a_property_set_is_refused(
    server: Any, paho_client: Callable[..., Paho], version: int
) -> None:
    """Issue 12 case 13: a device's reply that is not JSON was acknowledged as accepted, passed
    on to subscribers and dropped in silence. A reply is never answered: the refusal (0x99 in
    MQTT 5) is what the device is told, and nobody receives it."""
    pk, lamp = _lamp(server, paho_client, version)
    lamp.connect()
    watcher = paho_client(server.port, version=V5).connect()
    topic = f"/sys/{pk}/lamp-0001/thing/service/property/set_reply"
    watcher.subscribe(topic, qos=1)
    reason = lamp.publish(topic, b"{not json", qos=1)
    assert reason == (PAYLOAD_FORMAT_INVALID if version == V5 else 0)
    good = b'{"id":"5","code":200,"data":{}}'
    assert lamp.publish(topic, good, qos=1) == 0
    assert bytes(watcher.get().payload) == good
    assert server.call(lambda: server.platform.alink.stats.malformed) == 1


@pytest.mark.parametrize(
    "params",
    [
        [{}],
        [{"identity": {"productKey": "PK", "deviceName": "lamp-0001"}}],
        [{"properties": [{}], "events": []}],
    ],
    ids=["no identity, no values", "identity, no values", "empty lists"],
)
def test_a_history_post_without_values_is_answered_460(
    server: Any, paho_client: Callable[..., Paho], params: list[dict[str, Any]]
) -> None:
    """Issue 12 case 13: a history post with no identity or no values was answered 200 and
    stored nothing. Alibaba answers 460 ("request parameter error") for empty data."""
    pk, lamp = online_lamp(server, paho_client)
    topic = f"/sys/{pk}/lamp-0001/thing/event/property/history/post"
    lamp.subscribe(topic + "_reply", qos=1)
    body = json.dumps({"id": "21", "params": params}).replace('"PK"', json.dumps(pk))
    assert lamp.publish(topic, body.encode(), qos=1) == 0  # well-formed: refused in Alink only
    reply = json.loads(lamp.get().payload)
    assert (reply["id"], reply["code"]) == ("21", 460)
    assert "no properties or events" in reply["message"]


# -- case 7: calls to devices and shutdown ------------------------------------------------------


def _api(server: Any) -> httpx.Client:
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("services/Reboot", {"params": {}, "timeout": 1e6}, "timeout"),
        ("services/Reboot", {"params": {}, "timeout": -1}, "timeout"),
        ("properties", {"params": {"Brightness": 1}, "wait": 8.5}, "wait"),
        ("rrpc", {"payload": "ping", "timeout": 60}, "timeout"),
        ("rrpc", {"payload": "ping", "timeout": 0}, "timeout"),
    ],
)
def test_a_call_may_wait_for_a_device_at_most_8_seconds(
    server: Any, path: str, body: dict[str, Any], field: str
) -> None:
    """Issue 12 case 7: ``timeout``/``wait`` of service calls and property sets were uncapped;
    a call with ``timeout: 1e6`` held its HTTP request (and SIGTERM with it) for as long. A
    wait past 8 s (Alibaba's limit for RRPC and synchronous services) is refused 400,
    naming the field and the cap, before anything is sent."""
    pk = make_product(server).product_key
    make_device(server, pk, "lamp-0001")
    with _api(server) as api:
        response = api.post(f"/api/products/{pk}/devices/lamp-0001/{path}", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}: ") and "8 s" in detail


@pytest.mark.slow
def test_sigterm_gives_up_a_call_waiting_for_a_device(
    tmp_path: Path,
    make_server: Callable[..., Any],
    spawn_server: Callable[..., Any],
    paho_client: Callable[..., Paho],
) -> None:
    """Issue 12 case 7: a call waiting for a device that never answers kept SIGTERM from
    finishing (uvicorn's shutdown waits for every request in flight). Now the process stops
    at once: the caller gets 503 problem+json "shutting down", and the call's history says
    it was given up."""
    data_dir = tmp_path / "data"
    seeding = make_server(data_dir=str(data_dir))
    pk = make_product(seeding).product_key  # no thing model: any service may be called
    secret = make_device(seeding, pk, "lamp-0001").device_secret
    seeding.stop()
    served = spawn_server(data_dir=data_dir)
    lamp = paho_client(served.port, **signed(pk, "lamp-0001", secret)).connect()
    lamp.subscribe(f"/sys/{pk}/lamp-0001/thing/service/+", qos=1)  # and never answers
    token = (data_dir / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{served.ports()['http']}"
    answer: Future[httpx.Response] = Future()

    def call() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        body = {"params": {"Seconds": 3}, "timeout": 8}  # the longest wait there is
        try:
            path = f"/api/products/{pk}/devices/lamp-0001/services/Reboot"
            answer.set_result(httpx.post(base + path, json=body, headers=headers, timeout=30))
        except BaseException as exc:  # handed to the test
            answer.set_exception(exc)

    threading.Thread(target=call, daemon=True).start()
    assert lamp.get().topic.endswith("/thing/service/Reboot")  # the call is in flight
    assert served.terminate(timeout=TIMEOUT) == 0
    response = answer.result(timeout=TIMEOUT)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"].startswith("shutting down")

    after = make_server(data_dir=str(data_dir))
    history = after.platform.history
    now = int(time.time() * 1000)
    log = after.run(history.log((pk, "lamp-0001"), now - HOUR, now + HOUR))
    calls = [e.body for e in log.entries if e.kind is LogKind.SERVICE_CALL]
    msg_id = calls[0]["id"]
    assert calls == [
        {"id": msg_id, "params": {"Seconds": 3}},
        {"id": msg_id, "outcome": "shutting down"},
    ]


async def test_desired_values_that_no_longer_fit_the_model_are_not_sent() -> None:
    """Review of issue 13: desired values are pushed when a device comes online, by the bus
    straight to the dialect, not through ``DeviceCommands`` — and they were set against the
    model of then. The dialect checks every command it carries: one that does not fit is
    refused with its problems, and nothing goes to the device."""
    model = ThingModel.from_json((DATA / "oximeter.json").read_bytes())
    sent: list[str] = []
    dialect = AlinkDialect(
        thing_model=lambda _pk: model,
        online=lambda _pk, _dn: True,
        publish=lambda topic, _payload, _qos: sent.append(topic),
        bus=_Uplinks().bus(),
    )
    device = DeviceRef("a1Oxi", "oxi-1")
    for command in (
        PushDesired(device=device, values={"SpO2LowThreshold": "ninety"}),
        SetProperties(device=device, values={"SpO2LowThreshold": "ninety"}),
        CallService(device=device, service="NoSuchService", params={}),
    ):
        result = await dialect.send(command)
        assert result.outcome is Outcome.REFUSED and result.problems, command
    assert sent == []
    fits = await dialect.send(PushDesired(device=device, values={"SpO2LowThreshold": 90}))
    assert fits.outcome is Outcome.SENT and sent == ["/sys/a1Oxi/oxi-1/thing/service/property/set"]
