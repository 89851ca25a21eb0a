"""Helpers for tests of devices written for ThingsBoard: a product that speaks its API, with a
small thing model, devices with access tokens, and the REST API of a running server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hongshan.things.model import Device, NodeType, Product, Protocol
from hongshan.things.tsl import ThingModel


def _property(identifier: str, kind: str, mode: str = "r", **specs: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "name": identifier,
        "accessMode": mode,
        "dataType": {"type": kind, "specs": specs},
    }


def _param(identifier: str, kind: str, **specs: str) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "name": identifier,
        "dataType": {"type": kind, "specs": specs},
    }


# what a ThingsBoard thermostat-and-light reports and is told: telemetry (temperature,
# humidity), client attributes (firmware), shared attributes (mode, level), and an RPC
TSL = {
    "profile": {"productKey": "placeholder"},
    "properties": [
        _property("temperature", "double"),
        _property("humidity", "int"),
        _property("on", "bool", "rw", **{"0": "off", "1": "on"}),
        _property("firmware", "text", length="64"),
        _property("mode", "text", "rw", length="16"),
        _property("level", "int", "rw", min="0", max="100"),
    ],
    "events": [],
    "services": [
        {
            "identifier": "setLight",
            "name": "setLight",
            "callType": "async",
            "inputData": [_param("on", "bool", **{"0": "off", "1": "on"})],
            "outputData": [_param("done", "bool", **{"0": "no", "1": "yes"})],
        },
        {
            "identifier": "reboot",
            "name": "reboot",
            "callType": "async",
            "inputData": [],
            "outputData": [],
        },
    ],
}


def make_tb_product(
    server: Any,
    name: str = "Thermostat",
    *,
    node_type: NodeType = NodeType.DEVICE,
    schemaless: bool = False,
    thing_model: ThingModel | None = None,
) -> Product:
    model = thing_model if thing_model is not None else ThingModel.from_json(TSL)
    product: Product = server.run(
        server.platform.registry.create_product(
            name,
            protocol=Protocol.THINGSBOARD,
            node_type=node_type,
            schemaless=schemaless,
            thing_model=None if schemaless and thing_model is None else model,
        )
    )
    return product


def make_tb_device(server: Any, product_key: str, name: str, **kwargs: Any) -> tuple[Device, str]:
    """A device of a thingsboard product and its access token."""
    device: Device = server.run(server.platform.registry.create_device(product_key, name, **kwargs))
    assert device.access_token is not None
    return device, device.access_token


@contextmanager
def rest(server: Any) -> Iterator[httpx.Client]:
    """The REST API of ``server``, as its administrator."""
    token = (Path(server.settings.data_dir) / "admin.token").read_text().strip()
    base = f"http://127.0.0.1:{server.ports['http']}"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        yield client
