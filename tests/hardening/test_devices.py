"""Issue 12, the hostile review's device cases: who may speak for a device, and gateways
vouching for sub-devices. Every peer is a real one over a real socket: paho-mqtt as a gateway
(its sub-devices' signatures computed here from Alibaba's pages, not by our signing code), as a
device, and as an application with a users file."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from alibaba_device import make_device, make_product, signed
from broker_peers import V5, V311, Paho
from hongshan.dialects.alink.device_topics import direction_of
from hongshan.identity.alibaba import timestamp_fresh
from hongshan.identity.passwords import set_password
from hongshan.things.model import NodeType, TopicClass
from hongshan.things.tsl import ThingModel
from installed import HONGSHAN

TSL = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"
NOT_AUTHORIZED = 0x87  # MQTT 5.0 PUBACK: Not authorized
BAD_CREDENTIALS = 0x86  # MQTT 5.0 CONNACK: Bad User Name or Password
CLIENT_ID_NOT_VALID = 0x85  # MQTT 5.0 CONNACK: Client Identifier not valid
YEAR_2001 = "978307200000"  # 2001-01-01T00:00:00Z in milliseconds

_ids = itertools.count(1)


def sub_signature(
    pk: str, dn: str, secret: str, *, timestamp: str | None, client_id: str | None
) -> dict[str, str]:
    """A sub-device's signed identity as a gateway sends it in topology add and login
    (Alibaba, "Manage topological relationships": every parameter but sign and signMethod,
    sorted by name, names and values concatenated, HMAC with the sub-device's secret)."""
    params = {"productKey": pk, "deviceName": dn}
    if timestamp is not None:
        params["timestamp"] = timestamp
    if client_id is not None:
        params["clientId"] = client_id
    content = "".join(f"{name}{params[name]}" for name in sorted(params))
    sign = hmac.new(secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    return {**params, "signmethod": "hmacSha256", "sign": sign}


def now_ms() -> str:
    return str(int(time.time() * 1000))


class Gateway:
    """A gateway device on paho: Alink requests on its own topics, answered on ``…_reply``."""

    def __init__(self, client: Paho, pk: str, dn: str) -> None:
        self.client, self.pk, self.dn = client, pk, dn
        assert client.subscribe(f"/sys/{pk}/{dn}/thing/topo/+", 1) == [1]
        assert client.subscribe(f"/ext/session/{pk}/{dn}/combine/+", 1) == [1]

    def request(self, action: str, params: Any) -> dict[str, Any]:
        """Send ``topo/add``, ``combine/login``, … and return the reply with its id."""
        group, _, verb = action.partition("/")
        if group == "topo":
            topic = f"/sys/{self.pk}/{self.dn}/thing/topo/{verb}"
        else:
            topic = f"/ext/session/{self.pk}/{self.dn}/combine/{verb}"
        request_id = str(next(_ids))
        body = {"id": request_id, "version": "1.0", "params": params}
        assert self.client.publish(topic, json.dumps(body), 1) == 0
        while True:
            message = self.client.get()
            if message.topic == topic + "_reply":
                reply: dict[str, Any] = json.loads(message.payload)
                if reply["id"] == request_id:
                    return reply


@dataclass
class Site:
    server: Any
    gw_pk: str
    sub_pk: str
    secrets: dict[str, str]  # device name -> secret

    def gateway(self, paho_client: Callable[..., Paho], dn: str) -> Gateway:
        login = signed(self.gw_pk, dn, self.secrets[dn], timestamp=now_ms())
        client = paho_client(self.server.port, **login)
        return Gateway(client.connect(), self.gw_pk, dn)

    def gateway_of(self, dn: str) -> tuple[str, str] | None:
        device = self.server.run(self.server.platform.registry.get_device(self.sub_pk, dn))
        gateway: tuple[str, str] | None = device.gateway
        return gateway

    def carrier(self, dn: str) -> tuple[str, str] | None:
        carriers = self.server.platform.gateways.carrier
        found: tuple[str, str] | None = self.server.call(lambda: carriers.get((self.sub_pk, dn)))
        return found


def make_site(server: Any) -> Site:
    gw_pk = make_product(server, "Gateway", node_type=NodeType.GATEWAY).product_key
    model = ThingModel.from_json(TSL.read_bytes())
    sub_pk = make_product(
        server, "Lamp", node_type=NodeType.SUBDEVICE, thing_model=model
    ).product_key
    secrets = {}
    for pk, dn in ((gw_pk, "gateway-a"), (gw_pk, "gateway-b"), (sub_pk, "lamp-0001")):
        secret = make_device(server, pk, dn).device_secret
        assert secret is not None
        secrets[dn] = secret
    return Site(server, gw_pk, sub_pk, secrets)


# -- case 3: sub-device signatures --------------------------------------------------------------


def test_a_replayed_topology_add_and_login_do_not_take_a_sub_device_over(
    make_server: Callable[..., Any], paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 3: a second gateway replaying the first gateway's ``topo/add`` and
    ``combine/login`` for a sub-device took it over. A sub-device has one gateway at a time
    (Alibaba's topology): the replay is refused (460, then 6401) and changes nothing, until
    the first gateway deletes the topology."""
    site = make_site(make_server(device_clock_skew=60))
    first, second = (site.gateway(paho_client, dn) for dn in ("gateway-a", "gateway-b"))
    lamp = sub_signature(
        site.sub_pk,
        "lamp-0001",
        site.secrets["lamp-0001"],
        timestamp=now_ms(),
        client_id=f"{site.sub_pk}&lamp-0001",
    )
    assert first.request("topo/add", [lamp])["code"] == 200
    assert first.request("session/login", lamp)["code"] == 200
    owner = (site.gw_pk, "gateway-a")
    assert site.carrier("lamp-0001") == owner

    # the second gateway saw both requests and sends them again, word for word
    added = second.request("topo/add", [lamp])
    assert added["code"] == 460 and "another gateway" in added["message"]
    assert second.request("session/login", lamp)["code"] == 6401
    assert site.gateway_of("lamp-0001") == owner
    assert site.carrier("lamp-0001") == owner
    post = f"/sys/{site.sub_pk}/lamp-0001/thing/event/property/post"
    body = json.dumps({"id": "1", "version": "1.0", "params": {"Brightness": 5}})
    assert second.client.publish(post, body, 1) == NOT_AUTHORIZED

    # once the first gateway lets it go, the second may bind it (with a signature of its own)
    assert (
        first.request("topo/delete", [{"productKey": site.sub_pk, "deviceName": "lamp-0001"}])[
            "code"
        ]
        == 200
    )
    fresh = sub_signature(
        site.sub_pk, "lamp-0001", site.secrets["lamp-0001"], timestamp=now_ms(), client_id="b"
    )
    assert second.request("topo/add", [fresh])["code"] == 200
    assert site.gateway_of("lamp-0001") == (site.gw_pk, "gateway-b")


def test_a_stale_sub_device_signature_is_refused_like_a_stale_connect(
    make_server: Callable[..., Any], paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 3: with ``--device-clock-skew 60`` a direct CONNECT signed in 2001 was
    refused, but the same sub-device's ``topo/add`` and ``combine/login`` signed in 2001 were
    accepted. The window now applies to both (401 request auth error); a fresh one binds."""
    site = make_site(make_server(device_clock_skew=60))
    gateway = site.gateway(paho_client, "gateway-a")
    secret = site.secrets["lamp-0001"]
    direct = paho_client(
        site.server.port, **signed(site.sub_pk, "lamp-0001", secret, timestamp=YEAR_2001)
    )
    direct.connect(wait=False)
    assert direct.connected.wait(10) and direct.connack_reason == BAD_CREDENTIALS

    old = sub_signature(site.sub_pk, "lamp-0001", secret, timestamp=YEAR_2001, client_id="x")
    refused = gateway.request("topo/add", [old])
    assert refused["code"] == 401 and "lamp-0001" in refused["message"]
    assert site.gateway_of("lamp-0001") is None
    fresh = sub_signature(site.sub_pk, "lamp-0001", secret, timestamp=now_ms(), client_id="x")
    assert gateway.request("topo/add", [fresh])["code"] == 200
    assert gateway.request("session/login", old)["code"] == 401
    assert site.carrier("lamp-0001") is None
    assert gateway.request("session/login", fresh)["code"] == 200


def test_a_sub_device_signature_without_a_timestamp_is_refused(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 3: a sub-device signature over neither clientId nor timestamp was
    accepted — the same string for ever, a fixed password in effect. Alibaba signs a timestamp;
    one missing is a request parameter error (460), whatever the clock window."""
    site = make_site(server)
    gateway = site.gateway(paho_client, "gateway-a")
    fixed = sub_signature(
        site.sub_pk, "lamp-0001", site.secrets["lamp-0001"], timestamp=None, client_id=None
    )
    refused = gateway.request("topo/add", [fixed])
    assert refused["code"] == 460 and "timestamp" in refused["message"]
    assert site.gateway_of("lamp-0001") is None


def test_a_gateway_cannot_log_out_another_gateways_sub_device(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 13: a gateway logging out another gateway's sub-device was answered 200.
    It is Alibaba's 6401 (topo relation not exist), and nothing changes — in a batch too, where
    the sub-device bound to the asking gateway stays logged in as well."""
    site = make_site(server)
    own_sub = make_device(server, site.sub_pk, "lamp-0002").device_secret
    assert own_sub is not None
    first, second = (site.gateway(paho_client, dn) for dn in ("gateway-a", "gateway-b"))
    lamp = sub_signature(
        site.sub_pk, "lamp-0001", site.secrets["lamp-0001"], timestamp=now_ms(), client_id="a"
    )
    other = sub_signature(site.sub_pk, "lamp-0002", own_sub, timestamp=now_ms(), client_id="b")
    for gateway, sub in ((first, lamp), (second, other)):
        assert gateway.request("topo/add", [sub])["code"] == 200
        assert gateway.request("session/login", sub)["code"] == 200
    owner = (site.gw_pk, "gateway-a")

    theirs = {"productKey": site.sub_pk, "deviceName": "lamp-0001"}
    mine = {"productKey": site.sub_pk, "deviceName": "lamp-0002"}
    refused = second.request("session/logout", theirs)
    assert refused["code"] == 6401 and "lamp-0001" in refused["message"]
    assert second.request("session/batch_logout", [mine, theirs])["code"] == 6401
    assert site.carrier("lamp-0001") == owner
    assert site.carrier("lamp-0002") == (site.gw_pk, "gateway-b")
    # its own goes when it asks
    assert second.request("session/logout", mine)["code"] == 200
    assert site.carrier("lamp-0002") is None


def test_an_operator_unbinds_a_sub_device_its_gateway_cannot_let_go(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 3 (review): a sub-device of a gateway that can no longer send topology
    delete (broken, gone) could never be moved to another gateway, and operators had no way to
    unbind it. ``DELETE …/devices/{dn}/gateway`` (and ``hongshan device unbind``) takes it out:
    it is logged out of the old gateway, which is told on its ``thing/topo/change`` (status 1)
    and may no longer speak for it, and another gateway may add it."""
    site = make_site(server)
    old, new = (site.gateway(paho_client, dn) for dn in ("gateway-a", "gateway-b"))
    secret = site.secrets["lamp-0001"]
    lamp = sub_signature(site.sub_pk, "lamp-0001", secret, timestamp=now_ms(), client_id="a")
    assert old.request("topo/add", [lamp])["code"] == 200
    assert old.request("session/login", lamp)["code"] == 200
    assert new.request("topo/add", [lamp])["code"] == 460  # one gateway at a time

    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{server.ports['http']}",
        headers={"Authorization": f"Bearer {token}"},
    ) as api:
        unbound = api.delete(f"/api/products/{site.sub_pk}/devices/lamp-0001/gateway")
        assert unbound.status_code == 200, unbound.text
        assert unbound.json() == {"productKey": site.gw_pk, "deviceName": "gateway-a"}
        *_, told = old.client.until(f"/sys/{site.gw_pk}/gateway-a/thing/topo/change")
        change = json.loads(told.payload)
        assert change["method"] == "thing.topo.change"
        assert change["params"] == {
            "status": 1,
            "subList": [{"productKey": site.sub_pk, "deviceName": "lamp-0001"}],
        }
        assert site.gateway_of("lamp-0001") is None
        assert site.carrier("lamp-0001") is None
        post = f"/sys/{site.sub_pk}/lamp-0001/thing/event/property/post"
        body = json.dumps({"id": "1", "version": "1.0", "params": {"Brightness": 5}})
        assert old.client.publish(post, body, 1) == NOT_AUTHORIZED
        assert old.request("session/login", lamp)["code"] == 6401

        fresh = sub_signature(site.sub_pk, "lamp-0001", secret, timestamp=now_ms(), client_id="b")
        assert new.request("topo/add", [fresh])["code"] == 200
        assert new.request("session/login", fresh)["code"] == 200
        assert site.carrier("lamp-0001") == (site.gw_pk, "gateway-b")

        # the command line does the same; a device without a gateway, or none at all, is a 404
        def unbind(dn: str) -> subprocess.CompletedProcess[str]:
            command = [HONGSHAN, "device", "unbind", "--server", str(api.base_url)]
            command += ["--data-dir", server.settings.data_dir, "--product", site.sub_pk]
            return subprocess.run(
                [*command, "--name", dn], capture_output=True, text=True, timeout=60
            )

        done = unbind("lamp-0001")
        assert done.returncode == 0, done.stderr
        assert "gateway-b" in done.stdout
        assert site.carrier("lamp-0001") is None and site.gateway_of("lamp-0001") is None
        again = unbind("lamp-0001")
        assert again.returncode == 1 and "404" in again.stderr and "no gateway" in again.stderr
        missing = api.delete(f"/api/products/{site.sub_pk}/devices/lamp-9999/gateway")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        document = api.get("/api/schema/openapi.json").json()
        route = document["paths"]["/api/products/{pk}/devices/{dn}/gateway"]["delete"]
        assert {"200", "401", "404", "503"} <= route["responses"].keys()


@pytest.mark.parametrize("version", [V5, V311])
def test_registering_an_invalid_device_name_is_refused_in_the_connack(
    server: Any, paho_client: Callable[..., Paho], version: int
) -> None:
    """Issue 12 case 13: ``authType=regnwl`` with a device name Alibaba's rules refuse got
    CONNACK 0 and was then closed without a word, so the device retried every second. It is
    refused in the CONNACK: 0x85 Client Identifier not valid (3.1.1: 2, which paho reports as
    0x85), and nothing is created."""
    product = make_product(server, dynamic_registration=True)
    pk, product_secret = product.product_key, product.product_secret
    assert product_secret is not None
    dn, random = "no spaces allowed", "8Ygb7ULYh53B6OA"
    # Alibaba, "Unique-certificate-per-product authentication over MQTT" (no pre-registration)
    content = f"deviceName{dn}productKey{pk}random{random}"
    sign = hmac.new(product_secret.encode(), content.encode(), hashlib.sha256).hexdigest()
    client_id = f"{dn}.{pk}|random={random},authType=regnwl,securemode=2,signmethod=hmacsha256|"
    device = paho_client(
        server.port, version=version, client_id=client_id, username=f"{dn}&{pk}", password=sign
    )
    device.connect(wait=False)
    assert device.connected.wait(10) and device.connack_reason == CLIENT_ID_NOT_VALID
    assert not server.call(lambda: server.platform.registry.device_known(pk, dn))


NOW = 1_764_374_400.0  # 2025-11-29T00:00:00Z


@pytest.mark.parametrize(
    ("timestamp", "skew", "fresh"),
    [
        ("1764374430000", 60, True),  # milliseconds, 30 s ahead
        ("1764374330000", 60, False),  # 70 s behind
        (YEAR_2001, 60, False),
        ("1764374400", 60, True),  # seconds, as Alibaba's Python SDK signs its CONNECT
        ("978307200", 60, False),  # 2001 in seconds
        (None, 60, False),
        ("", 60, False),
        ("-1764374400000", 60, False),
        ("1" * 40, 60, False),
        (None, None, True),  # no window configured: compatibility, with its warning
        (YEAR_2001, None, True),
    ],
)
def test_the_clock_window_of_signed_timestamps(
    timestamp: str | None, skew: float | None, fresh: bool
) -> None:
    """Issue 12 case 3: the one clock window for a CONNECT's and a sub-device's signature."""
    assert timestamp_fresh(timestamp, NOW, skew) is fresh


# -- case 4: who may speak for a device ---------------------------------------------------------


def lamp_product(server: Any) -> str:
    model = ThingModel.from_json(TSL.read_bytes())
    return make_product(server, "Streetlight", thing_model=model).product_key


def values_of(server: Any, pk: str, dn: str) -> dict[str, Any]:
    twin = server.platform.twin
    found: dict[str, Any] = server.call(lambda: twin.values(pk, dn))
    return found


@pytest.mark.parametrize("version", [V5, V311])
def test_an_application_cannot_post_a_devices_values(
    make_server: Callable[..., Any],
    paho_client: Callable[..., Paho],
    tmp_path: Path,
    version: int,
) -> None:
    """Issue 12 case 4: with a users file and no ACL, user ``app`` publishing to
    ``/sys/{pk}/k-0000/thing/event/property/post`` was answered 200 and the value stored as
    the device's. An uplink is the device's word: refused (5.0 PUBACK 0x87), not stored, not
    answered, not routed. A downlink stays as the ACL says (none: allowed), as Alibaba's cloud
    API lets the owner's applications send property sets."""
    users = tmp_path / "users.txt"
    set_password(str(users), "app", "app-password")
    set_password(str(users), "watcher", "watcher-password")
    server = make_server(password_file=str(users), allow_anonymous=False)
    pk = lamp_product(server)
    secret = make_device(server, pk, "k-0000").device_secret
    device = paho_client(server.port, **signed(pk, "k-0000", secret)).connect()
    set_topic = f"/sys/{pk}/k-0000/thing/service/property/set"
    assert device.subscribe(set_topic, 1) == [1]
    watcher = paho_client(server.port, username="watcher", password="watcher-password")
    assert watcher.connect().subscribe([(f"/sys/{pk}/k-0000/#", 1), ("town/sentinel", 1)]) == [
        1,
        1,
    ]
    app = paho_client(server.port, version=version, username="app", password="app-password")
    app.connect()

    post = f"/sys/{pk}/k-0000/thing/event/property/post"
    body = json.dumps({"id": "1", "version": "1.0", "params": {"Brightness": 42}})
    assert app.publish(post, body, 1) == (NOT_AUTHORIZED if version == V5 else 0)
    assert app.publish("town/sentinel", b"after", 1) == 0
    seen = watcher.until("town/sentinel")
    assert [m.topic for m in seen] == ["town/sentinel"]  # no post, no post_reply
    assert values_of(server, pk, "k-0000") == {}

    # the platform's direction: the ACL decides (here: no ACL, so allowed) and the device gets it
    command = json.dumps({"id": "2", "version": "1.0", "params": {"Brightness": 10}})
    assert app.publish(set_topic, command, 1) == 0
    assert device.get().topic == set_topic


def test_a_device_cannot_publish_on_its_own_downlinks(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 4: a device could publish on its own downlink topics — a property set,
    an RRPC request, a reply to its own post — and so command or answer itself in the
    platform's name. Each is refused (PUBACK 0x87) and delivered to nobody; its uplinks still
    work."""
    pk = lamp_product(server)
    secret = make_device(server, pk, "k-0000").device_secret
    device = paho_client(server.port, **signed(pk, "k-0000", secret)).connect()
    own = f"/sys/{pk}/k-0000"
    assert device.subscribe(f"{own}/#", 1) == [1]
    downlinks = (
        f"{own}/thing/service/property/set",
        f"{own}/thing/service/Blink",
        f"{own}/rrpc/request/1234",
        f"{own}/thing/event/property/post_reply",
        f"/shadow/get/{pk}/k-0000",
        f"/ext/ntp/{pk}/k-0000/response",
        f"/ext/session/{pk}/k-0000/combine/login_reply",
    )
    for topic in downlinks:
        assert device.publish(topic, b'{"id": "9", "params": {}}', 1) == NOT_AUTHORIZED, topic
    post = f"{own}/thing/event/property/post"
    body = json.dumps({"id": "1", "version": "1.0", "params": {"Brightness": 7}})
    assert device.publish(post, body, 1) == 0
    *before, reply = device.until(post + "_reply")
    assert not {m.topic for m in before} & set(downlinks)
    assert json.loads(reply.payload)["id"] == "1"  # the platform's answer, not the fake
    assert json.loads(reply.payload)["code"] == 200
    assert values_of(server, pk, "k-0000")["Brightness"].value == 7


CLASSES = (
    TopicClass(pattern="/${productKey}/${deviceName}/user/update", right="pub"),
    TopicClass(pattern="/${productKey}/${deviceName}/user/get", right="sub"),
    TopicClass(pattern="/${productKey}/${deviceName}/user/chat", right="all"),
)


@pytest.mark.parametrize(
    ("topic", "direction"),
    [
        ("/sys/pk/dn/thing/event/property/post", "up"),
        ("/sys/pk/dn/thing/event/property/post_reply", "down"),
        ("/sys/pk/dn/thing/event/Fault/post", "up"),
        ("/sys/pk/dn/thing/service/property/set", "down"),
        ("/sys/pk/dn/thing/service/property/set_reply", "up"),
        ("/sys/pk/dn/thing/service/Blink", "down"),
        ("/sys/pk/dn/thing/service/Blink_reply", "up"),
        ("/sys/pk/dn/rrpc/request/1", "down"),
        ("/sys/pk/dn/rrpc/response/1", "up"),
        ("/sys/pk/dn/thing/topo/add", "up"),
        ("/sys/pk/dn/thing/topo/add_reply", "down"),
        ("/sys/pk/dn/thing/topo/change", "down"),
        ("/sys/pk/dn/thing/topo/change_reply", "up"),
        ("/sys/pk/dn/thing/topo/add/notify", "down"),
        ("/sys/pk/dn/thing/topo/add/notify_reply", "up"),
        ("/sys/pk/dn/thing/model/down_raw", "down"),
        ("/sys/pk/dn/thing/model/down_raw_reply", "up"),
        ("/sys/pk/dn/thing/model/up_raw", "up"),
        ("/sys/pk/dn/thing/config/push", "down"),
        ("/sys/pk/dn/thing/config/push_reply", "up"),
        ("/sys/pk/dn/thing/config/get", "up"),
        ("/sys/pk/dn/thing/config/get_reply", "down"),
        ("/sys/pk/dn/thing/config/log/push", "down"),
        ("/sys/pk/dn/thing/config/log/get", "up"),
        ("/sys/pk/dn/thing/log/post", "up"),
        ("/sys/pk/dn/thing/bootstrap/notify", "down"),
        ("/sys/pk/dn/thing/bootstrap/notify_reply", "up"),
        ("/sys/pk/dn/thing/job/notify", "down"),
        ("/sys/pk/dn/thing/job/get", "up"),
        ("/sys/pk/dn/thing/awss/device/switchap", "down"),
        ("/sys/pk/dn/thing/disable", "down"),
        ("/sys/pk/dn/thing/disable_reply", "up"),
        ("/sys/pk/dn/thing/enable", "down"),
        ("/sys/pk/dn/thing/delete", "down"),
        ("/sys/pk/dn/thing/delete_reply", "up"),
        ("/sys/pk/dn/secure_tunnel/notify", "down"),
        ("/sys/pk/dn/secure_tunnel/proxy/request", "up"),
        ("/sys/pk/dn/edge/debug/switch", "down"),
        ("/sys/pk/dn/thing/ota/firmware/get", "up"),
        ("/sys/pk/dn/thing/ota/firmware/get_reply", "down"),
        ("/ext/session/pk/dn/combine/login", "up"),
        ("/ext/session/pk/dn/combine/login_reply", "down"),
        ("/shadow/update/pk/dn", "up"),
        ("/shadow/get/pk/dn", "down"),
        ("/ota/device/inform/pk/dn", "up"),
        ("/ota/device/upgrade/pk/dn", "down"),
        ("/ext/ntp/pk/dn/request", "up"),
        ("/ext/ntp/pk/dn/response", "down"),
        ("/ext/rrpc/7/sys/pk/dn/thing/service/Blink", "up"),
        ("/as/mqtt/status/pk/dn", "up"),
        ("/pk/dn/user/update", "up"),
        ("/pk/dn/user/get", "down"),
        ("/pk/dn/user/chat", "both"),
        ("/pk/dn/user/unknown", None),
        ("town/lamps/1", None),
    ],
)
def test_the_direction_of_a_device_topic(topic: str, direction: str | None) -> None:
    """Issue 12 case 4: who speaks on a device's topic is data (``TOPIC_DIRECTIONS``).
    Issue 12 case 4 (review): Alibaba's other /sys/ downlinks (log and remote configuration
    pushes, device distribution, jobs, secure tunnel, …) fell through to "up", so a device
    could publish them in the platform's name."""
    assert direction_of(topic, lambda pk: CLASSES if pk == "pk" else ()) == direction


# -- case 14: securemode=2 without TLS, and replay by default -----------------------------------


@pytest.mark.parametrize("version", [V5, V311])
def test_securemode_2_over_plain_tcp_is_refused_when_tls_is_required(
    make_server: Callable[..., Any],
    paho_client: Callable[..., Paho],
    certificate: tuple[Path, Path],
    version: int,
) -> None:
    """Issue 12 case 14: a device's CONNECT saying ``securemode=2`` (TLS) was accepted over
    plain TCP — its signed login in the clear while it believes it private. With
    ``require_tls_for_securemode2`` it is refused there (0x86; 3.1.1 return code 4, which paho
    reports as 0x86) and accepted over TLS; ``securemode=3`` (plain TCP) is as before."""
    cert, key = certificate
    server = make_server(
        tls_port=0, tls_cert=str(cert), tls_key=str(key), require_tls_for_securemode2=True
    )
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    tls_claim = signed(pk, "lamp-0001", secret, securemode=2)
    plain = paho_client(server.port, version=version, **tls_claim)
    plain.connect(wait=False)
    assert plain.connected.wait(10) and plain.connack_reason == BAD_CREDENTIALS
    port = server.ports["mqtts"]
    paho_client(port, version=version, tls_ca=str(cert), **tls_claim).connect()
    paho_client(server.port, version=version, **signed(pk, "lamp-0001", secret)).connect()


def test_securemode_2_over_plain_tcp_is_accepted_by_default(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """Issue 12 case 14: compatibility — without the setting, as before."""
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    paho_client(server.port, **signed(pk, "lamp-0001", secret, securemode=2)).connect()


@pytest.mark.parametrize(("skew", "warned"), [(None, True), (300.0, False)])
def test_replayable_signed_logins_are_a_warning_at_start(
    make_server: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    skew: float | None,
    warned: bool,
) -> None:
    """Issue 12 case 14: an old signed CONNECT replays by default (no clock window), and
    nothing said so. Starting without ``device_clock_skew`` now warns, naming the setting."""
    with caplog.at_level(logging.WARNING, logger="hongshan"):
        make_server(device_clock_skew=skew)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("device_clock_skew" in line for line in said) is warned
