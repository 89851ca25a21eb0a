"""Helpers for tests of devices built for Alibaba Cloud IoT: a product and devices made in a
running server's registry, and the signed CONNECT a device computes (written from Alibaba's
"MQTT-based connection" page, not from our signing code)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from broker_peers import Paho
from hongshan.things.model import Device, Product
from hongshan.things.tsl import ThingModel

STREETLIGHT = Path(__file__).parent / "things" / "data" / "streetlight.json"


def signed_login(
    pk: str,
    dn: str,
    secret: str,
    *,
    method: str = "hmacsha1",
    securemode: int = 3,
    client_prefix: str | None = None,
    timestamp: str | None = "1700000000000",
) -> tuple[str, str, str]:
    """(MQTT client id, username, password) for a device's signed CONNECT."""
    prefix = client_prefix or f"{pk}&{dn}"
    params = f"securemode={securemode},signmethod={method}"
    fields = {"clientId": prefix, "deviceName": dn, "productKey": pk}
    if timestamp is not None:
        params += f",timestamp={timestamp}"
        fields["timestamp"] = timestamp
    content = "".join(f"{k}{fields[k]}" for k in sorted(fields))
    digest = {"hmacsha1": hashlib.sha1, "hmacmd5": hashlib.md5, "hmacsha256": hashlib.sha256}
    password = hmac.new(secret.encode(), content.encode(), digest[method]).hexdigest()
    return f"{prefix}|{params}|", f"{dn}&{pk}", password


def signed(pk: str, dn: str, secret: str | None, **kwargs: Any) -> dict[str, str]:
    """The ``client_id``, ``username`` and ``password`` keywords of a device's paho client."""
    assert secret is not None
    client_id, username, password = signed_login(pk, dn, secret, **kwargs)
    return {"client_id": client_id, "username": username, "password": password}


def make_product(server: Any, name: str = "Streetlight", **kwargs: Any) -> Product:
    product: Product = server.run(server.platform.registry.create_product(name, **kwargs))
    return product


def make_device(server: Any, product_key: str, name: str, **kwargs: Any) -> Device:
    device: Device = server.run(server.platform.registry.create_device(product_key, name, **kwargs))
    return device


def online_lamp(server: Any, paho_client: Any) -> tuple[str, Any]:
    """A product, its device ``lamp-0001``, and a paho client logged in as it: (pk, client)."""
    pk = make_product(server).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    client = paho_client(server.port, **signed(pk, "lamp-0001", secret))
    client.connect()
    return pk, client


def lamps(server: Any, *names: str) -> tuple[str, dict[str, str]]:
    """A streetlight product (its thing model) and devices of it: (pk, name -> secret)."""
    model = ThingModel.from_json(STREETLIGHT.read_text())
    pk = make_product(server, thing_model=model).product_key
    secrets = {}
    for name in names:
        secret = make_device(server, pk, name).device_secret
        assert secret is not None
        secrets[name] = secret
    return pk, secrets


def online(server: Any, paho_client: Any, pk: str, name: str, secret: str) -> Paho:
    """The device logged in with Alibaba's signature, on a paho client."""
    client: Paho = paho_client(server.port, **signed(pk, name, secret)).connect()
    return client


def post(device: Paho, pk: str, name: str, params: dict[str, Any]) -> None:
    """An Alink property post, acknowledged (the platform has taken it, and its rules and
    scenes heard it, by then)."""
    body = {"id": "1", "version": "1.0", "params": params, "method": "thing.event.property.post"}
    topic = f"/sys/{pk}/{name}/thing/event/property/post"
    assert device.publish(topic, json.dumps(body), 1) == 0


def stamped_post(device: Paho, pk: str, name: str, at: int, values: dict[str, Any]) -> None:
    """An Alink property post with the device's own time for each value, acknowledged."""
    params = {key: {"value": value, "time": at} for key, value in values.items()}
    post(device, pk, name, params)
