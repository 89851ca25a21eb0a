"""Helpers of the alarms' tests: a product of lamps, a device's post, API answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from alibaba_device import make_device, make_product, signed
from broker_peers import Paho
from hongshan.things.tsl import ThingModel

STREETLIGHT = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"


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
    client: Paho = paho_client(server.port, **signed(pk, name, secret)).connect()
    return client


def post(device: Paho, pk: str, name: str, params: dict[str, Any]) -> None:
    """An Alink property post, acknowledged (its rules have run by then)."""
    body = {"id": "1", "version": "1.0", "params": params, "method": "thing.event.property.post"}
    topic = f"/sys/{pk}/{name}/thing/event/property/post"
    assert device.publish(topic, json.dumps(body), 1) == 0


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    for word in words:
        assert word in body["detail"], (word, body)
    return body
