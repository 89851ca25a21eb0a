"""``hongshan product|device|group`` as a user runs them: the installed command, against a
running server, with the token read from the data directory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from installed import HONGSHAN

TSL = Path(__file__).parent.parent / "things" / "data" / "streetlight.json"


def run(server: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [
        HONGSHAN,
        *args[:2],
        "--server",
        f"http://127.0.0.1:{server.ports['http']}",
        "--data-dir",
        server.settings.data_dir,
        *args[2:],
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def as_json(server: Any, *args: str) -> Any:
    return json.loads(run(server, *args, "--json").stdout)


def test_products_and_devices_from_the_command_line(server: Any, tmp_path: Path) -> None:
    product = as_json(server, "product", "create", "--name", "Streetlight", "--tsl", str(TSL))
    pk = product["productKey"]
    exported = run(server, "product", "export-tsl", pk).stdout
    assert json.loads(exported) == json.loads(TSL.read_text())
    assert "Streetlight" in run(server, "product", "list").stdout
    device = as_json(
        server, "device", "create", "--product", pk, "--name", "lamp-0001", "--tag", "street=Xinhua"
    )
    assert len(device["deviceSecret"]) == 32 and device["tags"] == {"street": "Xinhua"}
    listed = as_json(server, "device", "list", "--product", pk, "--tag", "street:Xinhua")
    assert [d["deviceName"] for d in listed["items"]] == ["lamp-0001"]
    table = run(server, "device", "list", "--product", pk).stdout
    assert "lamp-0001" in table and "1 of 1" in table
    credentials = as_json(server, "device", "credentials", "--product", pk, "--name", "lamp-0001")
    assert credentials["deviceSecret"] == device["deviceSecret"]
    shown = as_json(server, "device", "disable", "--product", pk, "--name", "lamp-0001")
    assert shown["state"] == "disabled"

    def set_brightness(level: int) -> subprocess.CompletedProcess[str]:
        params = f'{{"Brightness": {level}}}'
        lamp = ("--product", pk, "--name", "lamp-0001")
        return run(server, "device", "set", *lamp, "--params", params, check=False)

    offline = set_brightness(40)
    assert offline.returncode == 1 and "9200" in offline.stdout
    refused = set_brightness(400)
    assert refused.returncode == 1 and "Brightness" in refused.stderr
    run(server, "group", "create", "Xinhua_Road")
    assert "1" in run(server, "group", "add", "Xinhua_Road", f"{pk}/lamp-0001").stdout
    run(server, "device", "delete", "--product", pk, "--name", "lamp-0001")
    run(server, "product", "delete", pk)
    missing = run(server, "product", "show", pk, check=False)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_without_the_token_the_server_says_so(server: Any, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            HONGSHAN,
            "product",
            "list",
            "--server",
            f"http://127.0.0.1:{server.ports['http']}",
            "--data-dir",
            str(tmp_path / "elsewhere"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "401" in done.stderr and "admin.token" in done.stderr


def test_a_thingsboard_product_and_its_devices_logins_from_the_command_line(server: Any) -> None:
    product = as_json(
        server,
        "product",
        "create",
        "--name",
        "Air_station",
        "--protocol",
        "thingsboard",
        "--schemaless",
    )
    pk = product["productKey"]
    assert (product["protocol"], product["schemaless"]) == ("thingsboard", True)
    assert "thingsboard" in run(server, "product", "list").stdout
    station = ("--product", pk, "--name", "station-01")
    device = as_json(server, "device", "create", *station)
    assert len(device["accessToken"]) == 20
    credentials = as_json(server, "device", "credentials", *station)
    assert credentials["accessToken"] == device["accessToken"]
    other = ("--product", pk, "--name", "station-02")
    kept = as_json(server, "device", "create", *other, "--access-token", "moved-from-TB_1")
    assert kept["accessToken"] == "moved-from-TB_1"
    login = ("--client-id", "station-01", "--username", "air", "--password", "s3cret")
    basic = as_json(server, "device", "set-credentials", *station, *login)
    assert basic["mqttBasic"] == {"clientId": "station-01", "username": "air", "password": "s3cret"}
    fresh = as_json(server, "device", "set-credentials", *station, "--new-access-token")
    assert len(fresh["accessToken"]) == 20 and "mqttBasic" not in fresh
    nothing = run(server, "device", "set-credentials", *station, check=False)
    assert nothing.returncode == 1 and "400" in nothing.stderr
    table = run(server, "device", "create", "--product", pk, "--count", "2").stdout
    assert "accessToken" in table
