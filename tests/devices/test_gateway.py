"""A gateway built on Alibaba's SDK binds two sub-devices with their signatures, logs them in,
posts for them and takes calls for them on its own connection; they go offline with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from linkkit_device import LinkkitDevice
from test_device_login import device_state, wait_for

from alibaba_device import make_device, make_product, signed
from hongshan.things.model import DeviceState, NodeType
from hongshan.things.naming import new_device_secret
from hongshan.things.tsl import ThingModel

TSL = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"


@dataclass
class Site:
    server: Any
    gateway: LinkkitDevice
    gw_pk: str
    sub_pk: str
    subs: list[list[str]]  # [pk, dn, secret] as the SDK takes them

    def state(self, dn: str) -> DeviceState:
        return device_state(self.server, self.sub_pk, dn)


def round_trip(site: Site, *, stale: bool = False) -> None:
    """An NTP request and its answer on the gateway's connection: whatever the gateway published
    before it has been handled by the server."""
    ntp = f"/ext/ntp/{site.gw_pk}/gateway-01/request"
    site.gateway.call("publish_topic", ntp, '{"deviceSendTime": "1"}', 0)
    while True:
        topic, _ = site.gateway.next("topic_message")
        if topic.endswith("/response"):
            return
        assert "/lamp-0001/" not in topic or not stale, f"the gateway got {topic}"


@pytest.fixture
def site(server: Any) -> Iterator[Site]:
    gw_pk = make_product(server, "Gateway", node_type=NodeType.GATEWAY).product_key
    model = ThingModel.from_json(TSL.read_bytes())
    sub_pk = make_product(
        server, "Lamp", node_type=NodeType.SUBDEVICE, thing_model=model
    ).product_key
    gw_secret = make_device(server, gw_pk, "gateway-01").device_secret
    subs = []
    for dn in ("lamp-0001", "lamp-0002"):
        secret = make_device(server, sub_pk, dn).device_secret
        subs.append([sub_pk, dn, secret])
    assert gw_secret is not None
    gateway = LinkkitDevice(server.port, gw_pk, "gateway-01", gw_secret).start()
    try:
        yield Site(server, gateway, gw_pk, sub_pk, subs)
    finally:
        gateway.stop()


def test_a_gateway_binds_logs_in_and_carries_its_sub_devices(site: Site) -> None:
    gateway = site.gateway
    rc, request_id = gateway.call("gateway_add_subdev_topo", site.subs)
    assert rc == 0
    reply_id, code, data, _ = gateway.next("add_subdev_topo")
    assert (reply_id, code) == (request_id, 200)
    assert data == [{"productKey": site.sub_pk, "deviceName": dn} for _, dn, _ in site.subs]
    registry = site.server.platform.registry
    sub = site.server.run(registry.get_device(site.sub_pk, "lamp-0001"))
    assert sub.gateway == (site.gw_pk, "gateway-01")

    gateway.call("gateway_login_subdev", site.subs)
    _, code, data, _ = gateway.next("login_subdev")
    assert code == 200 and len(data) == 2
    wait_for(lambda: site.state("lamp-0001") is DeviceState.ONLINE)
    assert site.state("lamp-0002") is DeviceState.ONLINE

    # the gateway posts for a sub-device and gets the sub-device's reply
    post = f"/sys/{site.sub_pk}/lamp-0001/thing/event/property/post"
    body = {"id": "7", "version": "1.0", "params": {"Brightness": 60}, "method": "x"}
    gateway.call("publish_topic", post, json.dumps(body), 1)
    topic, payload = gateway.next("topic_message")
    assert topic == post + "_reply"
    assert json.loads(payload)["code"] == 200
    twin = site.server.platform.twin
    values = site.server.call(lambda: twin.values(site.sub_pk, "lamp-0001"))
    assert values["Brightness"].value == 60

    # a pack post: the gateway's sub-devices' values in one message, answered once
    pack = f"/sys/{site.gw_pk}/gateway-01/thing/event/property/pack/post"
    body_pack = {
        "id": "8",
        "version": "1.0",
        "params": {
            "subDevices": [
                {
                    "identity": {"productKey": site.sub_pk, "deviceName": dn},
                    "properties": {"Brightness": {"value": level, "time": 1764374400000}},
                }
                for dn, level in (("lamp-0001", 61), ("lamp-0002", 62))
            ]
        },
        "method": "thing.event.property.pack.post",
    }
    gateway.call("publish_topic", pack, json.dumps(body_pack), 1)
    topic, payload = gateway.next("topic_message")
    assert topic == pack + "_reply" and json.loads(payload)["code"] == 200
    second = site.server.call(lambda: twin.values(site.sub_pk, "lamp-0002"))
    assert second["Brightness"].value == 62
    first = site.server.call(lambda: twin.values(site.sub_pk, "lamp-0001"))
    assert first["Brightness"].value == 60  # stamped earlier than the value it already had

    # a property set for the sub-device reaches the gateway
    alink = site.server.platform.alink
    result = site.server.run(
        alink.set_properties(site.sub_pk, "lamp-0002", {"Brightness": 30}, wait=None)
    )
    assert result.code == 200
    topic, payload = gateway.next("topic_message")
    assert topic == f"/sys/{site.sub_pk}/lamp-0002/thing/service/property/set"
    assert json.loads(payload)["params"] == {"Brightness": 30}

    # a sub-device that logged out: its topics are closed to the gateway again, including
    # what the gateway subscribed to of its own accord
    own = f"/sys/{site.sub_pk}/lamp-0001/#"
    assert gateway.call("subscribe_topic", own, 1)[0] == 0
    round_trip(site)
    gateway.call("gateway_logout_subdev", [site.subs[0][:2]])
    _, code, _, _ = gateway.next("logout_subdev")
    assert code == 200
    wait_for(lambda: site.state("lamp-0001") is DeviceState.OFFLINE)
    body["params"] = {"Brightness": 99}
    gateway.call("publish_topic", post, json.dumps(body), 1)
    site.server.call(
        lambda: site.server.platform.broker.publish_from_server(
            f"/sys/{site.sub_pk}/lamp-0001/thing/service/property/set", b"{}", 1
        )
    )
    round_trip(site, stale=True)  # lamp-0001's topics no longer reach the gateway
    values = site.server.call(lambda: twin.values(site.sub_pk, "lamp-0001"))
    assert values["Brightness"].value == 60
    assert site.state("lamp-0002") is DeviceState.ONLINE

    # the gateway goes: so do its sub-devices
    gateway.stop()
    wait_for(lambda: site.state("lamp-0002") is DeviceState.OFFLINE)


def test_a_sub_device_needs_its_own_signature_and_a_binding(site: Site) -> None:
    gateway = site.gateway
    forged = [[site.sub_pk, "lamp-0001", new_device_secret()]]
    gateway.call("gateway_add_subdev_topo", forged)
    _, code, _, message = gateway.next("add_subdev_topo")
    assert code == 401 and "lamp-0001" in message
    gateway.call("gateway_login_subdev", [site.subs[0]])  # not bound to this gateway
    _, code, _, _ = gateway.next("login_subdev")
    assert code == 6401
    assert site.state("lamp-0001") is DeviceState.INACTIVE
    gateway.call("gateway_add_subdev_topo", [["a1NoSuchPrd", "lamp-0009", new_device_secret()]])
    _, code, _, _ = gateway.next("add_subdev_topo")
    assert code == 6100
    # a sub-device's topics stay closed to a gateway that has not logged it in
    post = f"/sys/{site.sub_pk}/lamp-0001/thing/event/property/post"
    body = {"id": "8", "version": "1.0", "params": {"Brightness": 60}}
    gateway.call("publish_topic", post, json.dumps(body), 1)
    round_trip(site)
    twin = site.server.platform.twin
    assert site.server.call(lambda: twin.values(site.sub_pk, "lamp-0001")) == {}


def test_a_gateway_registers_new_sub_devices_where_the_product_allows_it(site: Site) -> None:
    server, gateway = site.server, site.gateway
    open_pk = make_product(
        server, "Sensor", node_type=NodeType.SUBDEVICE, dynamic_registration=True
    ).product_key
    gateway.call("gateway_register_subdev", [[open_pk, "sensor-0001"]])
    _, code, data, _ = gateway.next("register_subdev")
    assert code == 200
    (registered,) = data
    assert (registered["productKey"], registered["deviceName"]) == (open_pk, "sensor-0001")
    secret = registered["deviceSecret"]
    assert len(secret) == 32
    # and with that secret it can be bound and logged in like any other
    gateway.call("gateway_add_subdev_topo", [[open_pk, "sensor-0001", secret]])
    assert gateway.next("add_subdev_topo")[1] == 200
    gateway.call("gateway_login_subdev", [[open_pk, "sensor-0001", secret]])
    assert gateway.next("login_subdev")[1] == 200
    # a product that does not allow it; a name Alibaba's rules refuse
    gateway.call("gateway_register_subdev", [[site.sub_pk, "lamp-0100"]])
    assert gateway.next("register_subdev")[1] == 401
    gateway.call("gateway_register_subdev", [[open_pk, "no spaces"]])
    assert gateway.next("register_subdev")[1] == 460
    # a disabled device gets no secret, whoever asks for it
    make_device(server, open_pk, "sensor-0002")
    server.run(server.platform.registry.set_enabled(open_pk, "sensor-0002", False))
    gateway.call("gateway_register_subdev", [[open_pk, "sensor-0002"]])
    _, code, _, message = gateway.next("register_subdev")
    assert code == 401 and "forbidden" in message


def test_a_sub_device_with_a_connection_of_its_own_stays_online_when_its_gateway_lets_go(
    site: Site, paho_client: Any
) -> None:
    gateway = site.gateway
    gateway.call("gateway_add_subdev_topo", site.subs[:1])
    assert gateway.next("add_subdev_topo")[1] == 200
    gateway.call("gateway_login_subdev", site.subs[:1])
    assert gateway.next("login_subdev")[1] == 200
    pk, dn, secret = site.subs[0]
    direct = paho_client(site.server.port, **signed(pk, dn, secret))
    direct.connect()
    gateway.call("gateway_logout_subdev", [site.subs[0][:2]])
    assert gateway.next("logout_subdev")[1] == 200
    round_trip(site)
    assert site.state(dn) is DeviceState.ONLINE
    direct.disconnect()
    wait_for(lambda: site.state(dn) is DeviceState.OFFLINE)
