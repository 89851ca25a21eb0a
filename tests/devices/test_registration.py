"""Dynamic registration: Alibaba's SDK asks for its secret (pre-registered) or for a token (no
pre-registration) with only the product secret, over MQTT; and the HTTP form, with the
documented fields. Nobody else sees the answer; a device that is active, or a product that does
not allow it, gets nothing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

import httpx
from linkkit_device import LinkkitDevice
from test_device_login import device_state, wait_for

from alibaba_device import make_device, make_product
from broker_peers import Paho
from hongshan.things.model import DeviceState, Protocol


def product_signature(product_secret: str, pk: str, dn: str, random: str) -> str:
    content = f"deviceName{dn}productKey{pk}random{random}"
    return hmac.new(product_secret.encode(), content.encode(), hashlib.sha256).hexdigest()


def refusals(server: Any) -> Callable[[], int]:
    return lambda: int(server.call(lambda: server.platform.broker.stats.refused_connect))


def registering(server: Any, pk: str, dn: str, product_secret: str, auth_type: str) -> Any:
    return LinkkitDevice(
        server.port,
        pk,
        dn,
        "",
        login={"product_secret": product_secret, "auth_type": auth_type},
    ).start()


def test_the_sdk_registers_a_pre_registered_device_and_logs_in_with_its_secret(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    product = make_product(server, dynamic_registration=True)
    pk, ps = product.product_key, product.product_secret
    assert ps is not None
    created = make_device(server, pk, "lamp-0001")
    snoop = paho_client(server.port, client_id="snoop")
    snoop.connect()
    snoop.subscribe("/ext/#", qos=1)
    device = registering(server, pk, "lamp-0001", ps, "register")
    try:
        rc, secret = device.next("registered")
        assert (rc, secret) == (0, created.device_secret)
    finally:
        device.stop()
    assert snoop.drain() == []  # the answer went to the device alone
    again = LinkkitDevice(server.port, pk, "lamp-0001", secret).start()
    try:
        wait_for(lambda: device_state(server, pk, "lamp-0001") is DeviceState.ONLINE)
    finally:
        again.stop()
    # now it is active: registering again would hand its secret to anyone with the product's
    refused = LinkkitDevice(
        server.port, pk, "lamp-0001", "", login={"product_secret": ps, "auth_type": "register"}
    )
    try:
        refused.start_refused(refusals(server))
    finally:
        refused.stop()


def test_the_sdk_registers_without_pre_registration_and_logs_in_with_its_token(
    server: Any,
) -> None:
    product = make_product(server, dynamic_registration=True)
    pk, ps = product.product_key, product.product_secret
    assert ps is not None
    device = registering(server, pk, "meter-0001", ps, "regnwl")
    try:
        rc, client_id, username, token = device.next("registered_nwl")
    finally:
        device.stop()
    assert rc == 0 and username == f"meter-0001&{pk}"
    assert device_state(server, pk, "meter-0001") is DeviceState.INACTIVE  # created
    again = LinkkitDevice(
        server.port,
        pk,
        "meter-0001",
        "",
        login={"client_id": client_id, "username": username, "password": token},
    ).start()
    try:
        wait_for(lambda: device_state(server, pk, "meter-0001") is DeviceState.ONLINE)
    finally:
        again.stop()
    forged = LinkkitDevice(
        server.port,
        pk,
        "meter-0001",
        "",
        login={"client_id": client_id, "username": username, "password": "0" * 64},
    )
    try:
        forged.start_refused(refusals(server))
    finally:
        forged.stop()


def test_registration_is_refused_without_the_products_consent_or_secret(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    closed = make_product(server, "Closed")
    assert closed.product_secret is not None
    make_device(server, closed.product_key, "lamp-0001")
    refused = LinkkitDevice(
        server.port,
        closed.product_key,
        "lamp-0001",
        "",
        login={"product_secret": closed.product_secret, "auth_type": "register"},
    )
    try:
        refused.start_refused(refusals(server))
    finally:
        refused.stop()
    open_product = make_product(server, "Open", dynamic_registration=True)
    make_device(server, open_product.product_key, "lamp-0001")
    wrong = LinkkitDevice(
        server.port,
        open_product.product_key,
        "lamp-0001",
        "",
        login={"product_secret": "x" * 16, "auth_type": "register"},
    )
    try:
        wrong.start_refused(refusals(server))
    finally:
        wrong.stop()


def test_refusals_carry_not_authorized(server: Any, paho_client: Callable[..., Paho]) -> None:
    product = make_product(server, dynamic_registration=True)
    pk, ps = product.product_key, product.product_secret
    assert ps is not None
    random = "r4nd0m"
    for dn, secret in (("lamp-0001", "x" * 16), ("lamp-0002", ps)):  # bad secret; no device
        client = paho_client(
            server.port,
            version=5,
            client_id=f"{dn}.{pk}|random={random},authType=register,securemode=2,"
            "signmethod=hmacsha256|",
            username=f"{dn}&{pk}",
            password=product_signature(secret, pk, dn, random),
        )
        client.connect(wait=False)
        assert client.connected.wait(10)
        assert client.connack_reason == 0x87


def test_a_registering_connection_may_do_nothing_else(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    product = make_product(server, dynamic_registration=True)
    pk, ps = product.product_key, product.product_secret
    assert ps is not None
    make_device(server, pk, "lamp-0001")
    random = secrets.token_hex(8)
    client = paho_client(
        server.port,
        version=5,
        client_id=f"lamp-0001.{pk}|random={random},authType=register,securemode=2,"
        "signmethod=hmacsha256|",
        username=f"lamp-0001&{pk}",
        password=product_signature(ps, pk, "lamp-0001", random),
    )
    client.connect()
    answer = client.get()
    assert answer.topic == "/ext/register"
    assert client.subscribe("#", qos=1) == [0x87]
    assert client.publish(f"/sys/{pk}/lamp-0001/thing/event/property/post", b"{}", qos=1) == 0x87


def registration_form(product_secret: str, pk: str, dn: str) -> dict[str, str]:
    """The HTTPS registration's form, signed with the product secret."""
    random = secrets.token_hex(8)
    sign = product_signature(product_secret, pk, dn, random)
    return {
        "productKey": pk,
        "deviceName": dn,
        "random": random,
        "sign": sign,
        "signMethod": "hmacsha256",
    }


def test_registration_over_http(server: Any) -> None:
    product = make_product(server, dynamic_registration=True)
    pk, ps = product.product_key, product.product_secret
    assert ps is not None
    created = make_device(server, pk, "lamp-0001")
    url = f"http://127.0.0.1:{server.ports['http']}/auth/register/device"
    form = registration_form(ps, pk, "lamp-0001")
    answer = httpx.post(url, data=form).json()
    assert answer == {
        "code": 200,
        "data": {
            "productKey": pk,
            "deviceName": "lamp-0001",
            "deviceSecret": created.device_secret,
        },
        "message": "success",
    }
    bad = httpx.post(url, data={**form, "sign": "0" * 64}).json()
    assert bad["code"] == 401 and bad["data"] is None
    missing = httpx.post(url, data={"productKey": pk}).json()
    assert missing["code"] == 460 and "deviceName" in missing["message"]


def test_registration_over_http_is_for_alink_products_only(server: Any) -> None:
    """A thingsboard product's device has a secret too, but logs in with its token: the
    HTTPS registration does not hand the secret out, as the MQTT one does not."""
    product = make_product(server, dynamic_registration=True, protocol=Protocol.THINGSBOARD)
    pk, ps = product.product_key, product.product_secret
    assert ps is not None
    make_device(server, pk, "thermostat-1")
    form = registration_form(ps, pk, "thermostat-1")
    url = f"http://127.0.0.1:{server.ports['http']}/auth/register/device"
    answer = httpx.post(url, data=form).json()
    assert answer == {"code": 401, "data": None, "message": "request auth error"}
