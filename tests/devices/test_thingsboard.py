"""ThingsBoard's own Python SDK (``tb-mqtt-client``, unchanged, in ``.venv-tb``) pointed at
Hongshan with a device's access token: telemetry with and without ``ts`` (committed before the
SDK's publish is acknowledged), attributes both ways, attribute requests, server-side RPC from
the REST API and the SDK's own ``getSessionLimits``, and what the device's history then says."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from tb_sdk import TbSdkDevice
from test_device_login import wait_for

from broker_peers import V311, Paho
from hongshan.store.history.model import LogKind
from installed import HONGSHAN
from tcp_proxy import proxy_to
from thingsboard_device import make_tb_device, make_tb_product, rest

NO_LIMITS = {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}
SDK_TOPICS = {
    "v1/devices/me/attributes",
    "v1/devices/me/attributes/response/+",
    "v1/devices/me/rpc/request/+",
    "v1/devices/me/rpc/response/+",
}


def subscriptions(server: Any, client_id: str, count: int = len(SDK_TOPICS)) -> set[str]:
    """The filters of a session once it has ``count`` (the SDK subscribes from its on-connect
    callback: they come after the CONNACK)."""
    found: set[str] = set()

    def subscribed() -> bool:
        session = server.call(lambda: server.platform.broker.sessions.get(client_id))
        found.clear()
        found.update(session.subscriptions if session is not None else ())
        return len(found) >= count

    wait_for(subscribed)
    return found


class Thermostat:
    def __init__(self, server: Any, sdk: TbSdkDevice, pk: str, dn: str) -> None:
        self.server = server
        self.sdk = sdk
        self.pk = pk
        self.dn = dn

    def twin(self) -> dict[str, Any]:
        platform = self.server.platform
        values = self.server.call(lambda: platform.twin.values(self.pk, self.dn))
        return {key: value.value for key, value in values.items()}

    def points(self, identifier: str) -> list[tuple[int, Any]]:
        """What the history has committed of ``identifier``, asked at once (no waiting)."""
        history = self.server.platform.history
        page = self.server.run(history.points((self.pk, self.dn), identifier, 0, 2**62, limit=100))
        return [(point.ts, point.value) for point in page.points]

    def url(self, rest_of: str) -> str:
        return f"/api/products/{self.pk}/devices/{self.dn}/{rest_of}"

    def log(self, api: Any, count: int, **params: Any) -> list[dict[str, Any]]:
        """The device's log once it has ``count`` lines of these kinds (a command's line is
        not waited for: it is committed with the next batch)."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            found[:] = api.get(self.url("log"), params=params).json()["entries"]
            return len(found) >= count

        wait_for(enough)
        return found


@pytest.fixture
def thermostat(server: Any) -> Iterator[Thermostat]:
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-1")
    sdk = TbSdkDevice(server.port, token, rpc_answers={"setLight": {"done": True}})
    sdk.start()
    try:
        yield Thermostat(server, sdk, pk, "thermostat-1")
    finally:
        sdk.stop()


def test_the_sdk_logs_in_with_its_token_and_gets_its_session_limits(
    thermostat: Thermostat,
) -> None:
    _request_id, limits = thermostat.sdk.next("session_limits")
    settings = thermostat.server.settings
    assert limits == {
        "maxPayloadSize": settings.max_packet_size,
        "maxInflightMessages": settings.max_inflight,
        "rateLimits": NO_LIMITS,
    }
    registry = thermostat.server.platform.registry
    assert (
        thermostat.server.run(registry.get_device(thermostat.pk, thermostat.dn)).state == "online"
    )
    # one session per device, whatever client id the SDK sent (an empty one), with the four
    # subscriptions the SDK makes, all granted
    assert subscriptions(thermostat.server, f"{thermostat.pk}&{thermostat.dn}") == SDK_TOPICS


def test_telemetry_with_and_without_ts_is_committed_before_the_puback(
    thermostat: Thermostat,
) -> None:
    sdk = thermostat.sdk
    assert sdk.call("send_telemetry", {"temperature": 21.5, "humidity": 40}) == {
        "rc": 0,
        "published": True,
    }
    # acknowledged: so the history has it now, without waiting
    assert [value for _, value in thermostat.points("temperature")] == [21.5]
    at = int(time.time() * 1000) - 60_000
    sdk.call("send_telemetry", {"ts": at, "values": {"temperature": 19.25}})
    assert (at, 19.25) in thermostat.points("temperature")
    sdk.call("send_telemetry", [{"ts": at - 1000, "values": {"humidity": 38}}, {"humidity": 41}])
    humidity = thermostat.points("humidity")
    assert (at - 1000, 38) in humidity and [v for _, v in humidity][-1] == 41
    assert thermostat.twin() == {"temperature": 21.5, "humidity": 41}


def test_attributes_both_ways_and_attribute_requests(thermostat: Thermostat) -> None:
    sdk = thermostat.sdk
    # client attributes are properties
    assert sdk.call("send_attributes", {"firmware": "1.0.3"})["published"]
    wait_for(lambda: thermostat.twin().get("firmware") == "1.0.3")
    with rest(thermostat.server) as api:
        # a property set is a shared attribute update, which the device does not answer
        answer = api.post(thermostat.url("properties"), json={"params": {"mode": "auto"}}).json()
        assert (answer["outcome"], answer["code"]) == ("sent", 200)
        assert sdk.next("attributes_update") == [{"mode": "auto"}]
        # a bool property goes to the device as JSON's true
        api.post(thermostat.url("properties"), json={"params": {"on": 1, "level": 30}})
        assert sdk.next("attributes_update") == [{"on": True, "level": 30}]
        log = thermostat.log(api, 2, kind=LogKind.PROPERTY_SET)
        assert [entry["body"]["params"] for entry in log] == [
            {"mode": "auto"},
            {"on": 1, "level": 30},
        ]
    # attribute requests: client keys from the latest values, shared from what was set
    sdk.call("request_attributes", ["firmware"], ["mode", "level"])
    assert sdk.next("attributes_response") == [
        {"client": {"firmware": "1.0.3"}, "shared": {"mode": "auto", "level": 30}},
        None,
    ]
    sdk.call("request_attributes", [], ["nothing"])
    assert sdk.next("attributes_response") == [{}, None]  # as ThingsBoard: no empty scopes


def test_server_side_rpc_from_the_rest_api(thermostat: Thermostat) -> None:
    sdk = thermostat.sdk
    with rest(thermostat.server) as api, concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(
            api.post, thermostat.url("services/setLight"), json={"params": {"on": 1}}
        )
        request_id, request = sdk.next("rpc_request")
        assert request == {"method": "setLight", "params": {"on": True}}
        answer = call.result(timeout=10).json()
        assert answer.pop("commandId") > 0  # (its record: GET /api/commands/{id})
        assert answer == {
            "msgId": request_id,
            "outcome": "replied",
            "code": 200,
            "data": {"done": True},
            "message": "",
            "problems": [],
        }
        # a method the device does not answer: timed out after the wait, as ThingsBoard's 408
        late = api.post(thermostat.url("services/reboot"), json={"params": {}, "timeout": 0.3})
        assert (late.json()["outcome"], late.json()["code"]) == ("timed_out", 408)
        assert sdk.next("rpc_request")[1] == {"method": "reboot", "params": {}}
        # (the reboot's line as sent, and the one saying it timed out: committed with a later
        # batch, so waited for)
        log = thermostat.log(api, 4, kind=[LogKind.SERVICE_CALL, LogKind.SERVICE_REPLY])
        kinds = [(e["kind"], e["identifier"]) for e in log]
        assert kinds == [
            (LogKind.SERVICE_CALL, "setLight"),
            (LogKind.SERVICE_REPLY, "setLight"),
            (LogKind.SERVICE_CALL, "reboot"),
            (LogKind.SERVICE_CALL, "reboot"),
        ]
        assert "outcome" in str(log[-1]) and "outcome" not in str(log[-2])
        # a call outside the thing model is refused before anything is sent
        wrong = api.post(thermostat.url("services/setLight"), json={"params": {"on": 5}})
        assert wrong.status_code == 400
        # and so is a raw call (Alibaba's RRPC), which ThingsBoard's API has no form of
        raw = api.post(thermostat.url("rrpc"), json={"payload": "ping"})
        assert raw.status_code == 400 and "RRPC" in raw.json()["detail"]
        thermostat.sdk.stop()
        wait_for(
            lambda: (
                api.get(f"/api/products/{thermostat.pk}/devices/{thermostat.dn}").json()["state"]
                == "offline"
            )
        )
        offline = api.post(thermostat.url("services/setLight"), json={"params": {"on": 0}})
        assert (offline.json()["outcome"], offline.json()["code"]) == ("offline", 409)


def test_client_side_rpc_other_than_session_limits_is_answered_with_an_error(
    thermostat: Thermostat,
) -> None:
    thermostat.sdk.next("session_limits")
    thermostat.sdk.call("send_rpc_call", "getTime", {"zone": "Asia/Shanghai"})
    _request_id, answer, error = thermostat.sdk.next("rpc_response")
    assert error is None and list(answer) == ["error"] and "getTime" in answer["error"]


def test_a_device_that_is_disabled_is_cut_off_and_then_refused(server: Any) -> None:
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-2")
    sdk = TbSdkDevice(server.port, token).start()
    try:
        registry = server.platform.registry
        server.run(registry.set_enabled(pk, "thermostat-2", False))
        # the SDK reconnects by itself, and is refused: 0x8A Banned
        rc, _name = sdk.next("connect")
        assert rc == 0x8A
    finally:
        sdk.stop()


def hongshan(server: Any, *args: str) -> Any:
    """``hongshan GROUP COMMAND … --json`` as a user runs it, against ``server``; its JSON."""
    command = [
        HONGSHAN,
        *args[:2],
        "--server",
        f"http://127.0.0.1:{server.ports['http']}",
        "--data-dir",
        server.settings.data_dir,
        "--json",
        *args[2:],
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_command_line_works_a_thingsboard_device_as_an_alink_one(
    thermostat: Thermostat,
) -> None:
    server, sdk = thermostat.server, thermostat.sdk
    device = ("--product", thermostat.pk, "--name", thermostat.dn)
    assert sdk.call("send_telemetry", {"temperature": 23.5})["published"]
    shown = hongshan(server, "device", "show", *device)
    assert (shown["state"], shown["productKey"]) == ("online", thermostat.pk)
    found = hongshan(
        server, "history", "query", "--device", f"{thermostat.pk}/{thermostat.dn}",
        "--property", "temperature",
    )  # fmt: skip
    assert [value for _, value in found["points"]] == [23.5]
    answer = hongshan(server, "device", "set", *device, "--params", '{"mode": "eco"}')
    assert answer["outcome"] == "sent"
    assert sdk.next("attributes_update") == [{"mode": "eco"}]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(
            hongshan, server, "device", "invoke", *device, "--service", "setLight",
            "--params", '{"on": 1}',
        )  # fmt: skip
        assert sdk.next("rpc_request")[1] == {"method": "setLight", "params": {"on": True}}
        answer = call.result(timeout=30)
    assert (answer["outcome"], answer["data"]) == ("replied", {"done": True})


def test_desired_values_are_shared_attributes_pushed_when_the_device_comes(server: Any) -> None:
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-3")
    with rest(server) as api:
        url = f"/api/products/{pk}/devices/thermostat-3/desired"
        assert api.put(url, json={"params": {"mode": "away", "level": 10}}).status_code == 200
    sdk = TbSdkDevice(server.port, token).start()
    try:
        assert sdk.next("attributes_update") == [{"mode": "away", "level": 10}]
        sdk.call("request_attributes", [], ["mode", "level"])
        assert sdk.next("attributes_response") == [{"shared": {"mode": "away", "level": 10}}, None]
    finally:
        sdk.stop()


def test_client_attributes_are_kept_across_a_restart(make_server: Callable[..., Any]) -> None:
    server = make_server()
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-4")
    sdk = TbSdkDevice(server.port, token).start()
    try:
        assert sdk.call("send_attributes", {"firmware": "1.0.4"})["published"]
    finally:
        sdk.stop()
    server.stop()
    again = make_server()  # (the same data directory)
    sdk = TbSdkDevice(again.port, token).start()
    try:
        sdk.call("request_attributes", ["firmware"], [])
        assert sdk.next("attributes_response") == [{"client": {"firmware": "1.0.4"}}, None]
    finally:
        sdk.stop()


@pytest.mark.slow
def test_client_attributes_after_a_crash_are_what_was_acknowledged(
    make_server: Callable[..., Any],
    spawn_server: Callable[..., Any],
    paho_client: Callable[..., Paho],
) -> None:
    """A kill -9 right after a client attribute was acknowledged: the latest values saved
    beside the registry (every second) may not have it, the history does (committed before
    the PUBACK), and an attribute request after the restart answers what was acknowledged."""
    server = make_server()
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-5")
    server.stop()
    crashed = spawn_server()  # (the same data directory)
    device = paho_client(crashed.port, version=V311, username=token).connect()
    assert device.publish("v1/devices/me/attributes", b'{"firmware": "1.0.5"}', qos=1) == 0
    crashed.kill()
    device.stop()
    again = make_server()
    sdk = TbSdkDevice(again.port, token).start()
    try:
        sdk.call("request_attributes", ["firmware"], [])
        assert sdk.next("attributes_response") == [{"client": {"firmware": "1.0.5"}}, None]
    finally:
        sdk.stop()


def points(server: Any, device: tuple[str, str], identifier: str) -> list[tuple[int, Any]]:
    history = server.platform.history
    page = server.run(history.points(device, identifier, 0, 2**62, limit=100))
    return [(point.ts, point.value) for point in page.points]


class Firmware:
    """A ThingsBoard device as its firmware runs paho: a persistent session, reconnecting by
    itself and resending what was not acknowledged (DUP), counting its CONNACKs and PUBACKs."""

    def __init__(self, port: int, token: str) -> None:
        self.connects = 0
        self.acked: set[int] = set()
        self._changed = threading.Condition()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="thermostat-firmware",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        client.username_pw_set(token)
        client.reconnect_delay_set(0.1, 0.5)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def _on_connect(self, *_: Any) -> None:
        with self._changed:
            self.connects += 1
            self._changed.notify_all()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._changed:
            self.acked.add(mid)
            self._changed.notify_all()

    def wait(self, condition: Callable[[], bool]) -> None:
        with self._changed:
            assert self._changed.wait_for(condition, 10), "not in time"

    def post(self, payload: bytes) -> int:
        mid: int = self.client.publish("v1/devices/me/telemetry", payload, qos=1).mid
        return mid

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.parametrize("timed", [False, True], ids=["without-ts", "with-ts"])
def test_telemetry_resent_after_a_lost_puback_is_kept_once(server: Any, timed: bool) -> None:
    """A QoS 1 post whose PUBACK never reached the device (the connection broke after the
    server took it) comes again, DUP, when paho reconnects: its values are kept once. The same
    reading sent again afterwards, as a new message, is a second reading."""
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "thermostat-6")
    device = (pk, "thermostat-6")
    at = int(time.time() * 1000) - 60_000
    body = {"ts": at, "values": {"temperature": 20.5}} if timed else {"temperature": 20.5}
    payload = json.dumps(body).encode()
    with proxy_to("127.0.0.1", server.port) as proxy:
        firmware = Firmware(proxy.port, token)
        try:
            firmware.wait(lambda: firmware.connects == 1)
            proxy.cut_after(payload)  # the server takes the post; its PUBACK is lost
            first = firmware.post(payload)
            # paho reconnects and sends it again (DUP); acknowledged once the first is kept
            firmware.wait(lambda: first in firmware.acked)
            assert firmware.connects == 2 and proxy.cuts_after_marker == 1
            assert [v for _, v in points(server, device, "temperature")] == [20.5]
            # the same payload again, a new message: a new reading (without ts, a new point)
            again = firmware.post(payload)
            firmware.wait(lambda: again in firmware.acked)
            kept = [v for _, v in points(server, device, "temperature")]
            assert kept == ([20.5] if timed else [20.5, 20.5])
        finally:
            firmware.stop()
    (dialect,) = [d for d in server.platform.dialects if d.name == "thingsboard"]
    assert (dialect.stats.repeated, dialect.stats.accepted) == (1, 2)
