"""ThingsBoard's SDK as a gateway (``TBGatewayMqttClient``, unchanged) carrying two devices:
each is created as the gateway first names it, under the product its type names (else the
gateway's own), comes online and goes offline through it, and is reached through it by a
property set (a shared attribute update) and a service call (a server-side RPC)."""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable
from typing import Any

from tb_sdk import TbSdkDevice
from test_device_login import wait_for
from test_thingsboard import SDK_TOPICS, subscriptions

from broker_peers import Paho
from hongshan.dialects.thingsboard.gateway import device_name_for
from hongshan.things.model import NodeType
from thingsboard_device import make_tb_device, make_tb_product, rest

NO_LIMITS = {"messages": "", "telemetryMessages": "", "telemetryDataPoints": ""}


def state(api: Any, pk: str, dn: str) -> str:
    response = api.get(f"/api/products/{pk}/devices/{dn}")
    return str(response.json()["state"]) if response.status_code == 200 else "none"


def test_a_gateway_with_two_devices(server: Any) -> None:
    lamps = make_tb_product(server, "Lamps").product_key
    gateways = make_tb_product(server, "Gateways", node_type=NodeType.GATEWAY).product_key
    _, token = make_tb_device(server, gateways, "gateway-1")
    gateway = TbSdkDevice(
        server.port, token, gateway=True, rpc_answers={"setLight": {"done": True}}
    ).start()
    history = server.platform.history
    try:
        _, limits = gateway.next("session_limits")
        assert limits["gatewayRateLimits"] == limits["rateLimits"] == NO_LIMITS
        # a device's four subscriptions, and the gateway's three
        assert subscriptions(server, f"{gateways}&gateway-1", 7) == SDK_TOPICS | {
            "v1/gateway/attributes",
            "v1/gateway/attributes/response",
            "v1/gateway/rpc",
        }
        # connected by name; the type is a thingsboard product's key: the device is made
        # there, before the connect is acknowledged
        assert gateway.call("gw_connect_device", "Lamp 7", lamps)["published"]
        lamp = (lamps, device_name_for("Lamp 7"))
        # a type that is no product's: the gateway's own product
        assert gateway.call("gw_connect_device", "thermo-8", "default")["published"]
        thermo = (gateways, "thermo-8")
        with rest(server) as api:
            assert state(api, *lamp) == state(api, *thermo) == "online"
            shown = api.get(f"/api/products/{lamp[0]}/devices/{lamp[1]}").json()
            assert shown["gateway"] == [gateways, "gateway-1"]

            at = int(time.time() * 1000) - 30_000
            sent = gateway.call(
                "gw_send_telemetry", "Lamp 7", {"ts": at, "values": {"temperature": 20.5}}
            )
            assert sent["published"]
            page = server.run(history.points(lamp, "temperature", 0, 2**62, limit=10))
            assert [(p.ts, p.value) for p in page.points] == [(at, 20.5)]  # committed
            assert gateway.call("gw_send_telemetry", "thermo-8", {"humidity": 55})["published"]
            assert gateway.call("gw_send_attributes", "Lamp 7", {"firmware": "2.0"})["published"]
            values = api.get(f"/api/products/{lamp[0]}/devices/{lamp[1]}/properties").json()
            assert {k: v["value"] for k, v in values.items()} == {
                "temperature": 20.5,
                "firmware": "2.0",
            }

            # a property set reaches the sub-device through its gateway
            url = f"/api/products/{lamp[0]}/devices/{lamp[1]}/properties"
            assert api.post(url, json={"params": {"mode": "manual"}}).json()["outcome"] == "sent"
            assert gateway.next("gw_attributes") == [
                {"device": "Lamp 7", "data": {"mode": "manual"}}
            ]
            gateway.call("gw_request_shared_attributes", "Lamp 7", ["mode"])
            (answer, error) = gateway.next("gw_attributes_response")
            assert error is None and (answer["device"], answer["value"]) == ("Lamp 7", "manual")
            gateway.call("gw_request_client_attributes", "Lamp 7", ["firmware", "temperature"])
            (answer, _) = gateway.next("gw_attributes_response")
            assert answer["values"] == {"firmware": "2.0", "temperature": 20.5}

            # a service call is an RPC through the gateway, answered by it
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                url = f"/api/products/{thermo[0]}/devices/{thermo[1]}/services/setLight"
                call = pool.submit(api.post, url, json={"params": {"on": 0}})
                (request,) = gateway.next("gw_rpc")
                assert request["device"] == "thermo-8"
                assert {k: v for k, v in request["data"].items() if k != "id"} == {
                    "method": "setLight",
                    "params": {"on": False},
                }
                answer = call.result(timeout=10).json()
            assert (answer["outcome"], answer["code"], answer["data"]) == (
                "replied",
                200,
                {"done": True},
            )
            assert answer["msgId"] == str(request["data"]["id"])

            # a device the gateway names without connecting it first is connected too
            assert gateway.call("gw_send_telemetry", "lamp-9", {"temperature": 18})["published"]
            wait_for(lambda: state(api, gateways, "lamp-9") == "online")

            # disconnected by name: offline; the gateway gone: the rest offline with it
            gateway.call("gw_disconnect_device", "Lamp 7")
            wait_for(lambda: state(api, *lamp) == "offline")
            assert state(api, *thermo) == "online"
            gateway.stop()
            wait_for(lambda: state(api, *thermo) == state(api, gateways, "lamp-9") == "offline")
            assert state(api, gateways, "gateway-1") == "offline"
    finally:
        gateway.stop()


def test_a_device_is_not_a_gateway(server: Any) -> None:
    """The gateway API is a gateway's: a plain device's SDK cannot subscribe to its topics,
    nor connect devices."""
    pk = make_tb_product(server).product_key
    _, token = make_tb_device(server, pk, "plain-1")
    device = TbSdkDevice(server.port, token, gateway=True).start()
    try:
        device.next("session_limits")
        device.call("gw_connect_device", "Lamp 7", pk)
        registry = server.platform.registry
        assert not server.call(lambda: registry.device_known(pk, device_name_for("Lamp 7")))
    finally:
        device.stop()


def test_what_a_gateway_says_of_a_new_device_waits_for_it_in_order(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    """A plain MQTT gateway names a device it never connected, three times at once: it is
    created first, and the three readings are kept, in order; a disabled device's are left
    out, the gateway's PUBACK all the same."""
    gateways = make_tb_product(server, "Gateways", node_type=NodeType.GATEWAY).product_key
    _, token = make_tb_device(server, gateways, "gateway-1")
    make_tb_device(server, gateways, "off-1")
    server.run(server.platform.registry.set_enabled(gateways, "off-1", False))
    gateway = paho_client(server.port, username=token).connect()
    bodies = [json.dumps({"Pump 3": [{"humidity": n}]}) for n in (1, 2, 3)]
    assert gateway.publish_many("v1/gateway/telemetry", bodies) == [0, 0, 0]
    pump = (gateways, device_name_for("Pump 3"))
    history = server.platform.history
    page = server.run(history.points(pump, "humidity", 0, 2**62, limit=10))
    assert [p.value for p in page.points] == [1, 2, 3]
    body = json.dumps({"off-1": {"humidity": 9}})
    assert gateway.publish("v1/gateway/telemetry", body, qos=1) == 0
    page = server.run(history.points((gateways, "off-1"), "humidity", 0, 2**62, limit=10))
    assert page.points == []
    with rest(server) as api:
        assert state(api, *pump) == "online"
        assert state(api, gateways, "off-1") == "disabled"
