"""Issue 15, operating it: ``--log-format json`` on a real ``hongshan serve``. Every line of
its stderr is one JSON object; a device's line says the device, an HTTP request's line says
the request's id, which the response returns."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from alibaba_device import STREETLIGHT, signed
from broker_peers import TIMEOUT, Paho, eventually
from hongshan.log_lines import DEVICE, AboutWhat, JsonLines


def lines_of(server: Any) -> list[dict[str, Any]]:
    """Every line logged so far, each parsed (a line that is no JSON object fails the test)."""
    parsed = [json.loads(line) for line in list(server.log)]
    for entry in parsed:
        assert {"ts", "level", "logger", "message"} <= set(entry), entry
        assert entry["ts"].endswith("Z") and len(entry["ts"]) == len("2026-01-01T00:00:00.000Z")
    return parsed


def test_json_lines_say_the_device_and_the_request(
    spawn_server: Callable[..., Any], tmp_path: Path
) -> None:
    server = spawn_server("--log-format", "json", "--log-level", "debug")
    ports = server.ports()
    token = (server.data_dir / "admin.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{ports['http']}"
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        model = json.loads(STREETLIGHT.read_text())
        made = api.post("/api/products", json={"name": "Lamp", "thingModel": model})
        pk = made.json()["productKey"]
        device = api.post(f"/api/products/{pk}/devices", json={"deviceName": "lamp-0001"})
        secret = device.json()["deviceSecret"]
        traced = api.get("/api/products", headers={"X-Request-Id": "trace-42"})
        assert traced.headers["x-request-id"] == "trace-42"
        made_here = api.get("/api/products")
        assert len(made_here.headers["x-request-id"]) == 32  # (one of ours, made up)
        odd = api.get("/api/products", headers={"X-Request-Id": "a b\tc"})
        assert odd.headers["x-request-id"] != "a b\tc"  # (not taken: it would break a line)
        meters = api.post("/api/products", json={"name": "Meters", "protocol": "thingsboard"})
        tb_pk = meters.json()["productKey"]
        meter = api.post(f"/api/products/{tb_pk}/devices", json={"deviceName": "meter-1"})
        access_token = meter.json()["accessToken"]
    lamp = Paho(server.port, **signed(pk, "lamp-0001", secret)).connect()
    try:
        post = {"id": "1", "version": "1.0", "params": {"Brightness": 400}}
        lamp.publish(f"/sys/{pk}/lamp-0001/thing/event/property/post", json.dumps(post), 1)

        def device_line() -> bool:
            return any(e.get("device") == f"{pk}/lamp-0001" for e in lines_of(server))

        eventually(device_line, TIMEOUT, "a line about the lamp's refused post")
    finally:
        lamp.stop()
    meter_client = Paho(server.port, client_id="meter-1", username=access_token).connect()
    try:
        # (not ThingsBoard's JSON: a line about the meter says so)
        meter_client.publish("v1/devices/me/telemetry", b"{not json", 1)

        def meter_line() -> bool:
            return any(e.get("device") == f"{tb_pk}/meter-1" for e in lines_of(server))

        eventually(meter_line, TIMEOUT, "a line about the meter's malformed telemetry")
    finally:
        meter_client.stop()
    entries = lines_of(server)
    about_lamp = [e for e in entries if e.get("device") == f"{pk}/lamp-0001"]
    assert any("Brightness" in e["message"] or "refused" in e["message"] for e in about_lamp)
    traced_lines = [e for e in entries if e.get("request_id") == "trace-42"]
    assert any("GET /api/products 200" in e["message"] for e in traced_lines), traced_lines
    assert all("device" not in e for e in traced_lines)


def test_an_exception_stays_on_its_line() -> None:
    formatter = JsonLines()
    try:
        raise ValueError("no such lamp")
    except ValueError:
        record = logging.LogRecord(
            "hongshan.x", logging.ERROR, __file__, 1, "a\nb %s", ("c",), None
        )
        record.exc_info = sys.exc_info()
    token = DEVICE.set(("pk1", "lamp-0001"))
    try:
        AboutWhat().filter(record)
    finally:
        DEVICE.reset(token)
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "a\nb c" and entry["level"] == "error"
    assert entry["device"] == "pk1/lamp-0001" and "request_id" not in entry
    assert "ValueError: no such lamp" in entry["exception"]
