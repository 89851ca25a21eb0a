"""Who a client is and what it may do does not depend on the order the dialects are listed in
(``DIALECTS``): the platform started with them in each order, and real clients of each dialect
and of none log in and publish alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from alibaba_device import make_device, make_product, signed
from broker_peers import Paho
from hongshan import app
from hongshan.dialects import DIALECTS
from hongshan.things.model import MqttBasic
from thingsboard_device import make_tb_device, make_tb_product

TELEMETRY = "v1/devices/me/telemetry"


@pytest.fixture(params=["as-listed", "reversed"])
def server(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    make_server: Callable[..., Any],
) -> Any:
    """An anonymous-access server whose platform asks its dialects in this order."""
    if request.param == "reversed":
        monkeypatch.setattr(app, "DIALECTS", tuple(reversed(DIALECTS)))
    return make_server()


def refused(paho_client: Callable[..., Paho], port: int, **login: str) -> int | None:
    client = paho_client(port, **login)
    client.connect(wait=False)
    assert client.connected.wait(10)
    return client.connack_reason


def test_logins_and_rights_whatever_the_order(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    names = [dialect.name for dialect in server.platform.dialects]
    assert sorted(names) == ["alink", "thingsboard"]
    # Alink's device, by its signed CONNECT: its own topics, not another device's
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    make_device(server, pk, "lamp-0002")
    lamp = paho_client(server.port, **signed(pk, "lamp-0001", secret)).connect()
    assert lamp.subscribe(f"/sys/{pk}/lamp-0001/thing/service/property/set", 1) == [1]
    assert lamp.subscribe(f"/sys/{pk}/lamp-0002/thing/service/property/set", 1) == [0x87]
    wrong = signed(pk, "lamp-0001", "not-its-secret-at-all-0123456789")
    assert refused(paho_client, server.port, **wrong) == 0x86
    # ThingsBoard's, by its token and by basic MQTT credentials with a client id of '&'
    tb = make_tb_product(server).product_key
    _, token = make_tb_device(server, tb, "thermostat-1")
    make_tb_device(server, tb, "thermostat-2")
    basic = MqttBasic(client_id="meter&7", username="meter-u7", password="secret-7")
    server.run(server.platform.registry.set_credentials(tb, "thermostat-2", mqtt_basic=basic))
    meter = paho_client(
        server.port, client_id="meter&7", username="meter-u7", password="secret-7"
    ).connect()
    thermostat = paho_client(server.port, username=token).connect()
    assert thermostat.publish(TELEMETRY, b'{"temperature": 21.5}', qos=1) == 0
    assert meter.publish(TELEMETRY, b'{"temperature": 19.0}', qos=1) == 0
    assert refused(paho_client, server.port, username="A1b2C3d4E5f6G7h8I9j0") == 0x86
    # nobody's: a device's session is nobody else's to take; anyone else is anonymous, and
    # may not speak for a device
    assert refused(paho_client, server.port, client_id=f"{pk}&lamp-0002") == 0x85
    assert refused(paho_client, server.port, client_id=f"{tb}&thermostat-1") == 0x85
    visitor = paho_client(server.port, client_id="dashboard").connect()
    assert visitor.publish(TELEMETRY, b'{"temperature": 99}', qos=1) == 0x87
    assert visitor.publish(f"/sys/{pk}/lamp-0001/thing/event/property/post", b"{}", qos=1) == 0x87
    twin = server.platform.twin
    values = server.call(lambda: [twin.values(tb, f"thermostat-{n}") for n in (1, 2)])
    assert [{k: v.value for k, v in found.items()} for found in values] == [
        {"temperature": 21.5},
        {"temperature": 19.0},
    ]
