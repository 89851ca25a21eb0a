"""Configuration precedence: file < environment < flags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hongshan.config import load_settings
from hongshan.errors import ConfigError


def test_defaults() -> None:
    s = load_settings(environ={})
    assert (s.mqtt_port, s.http_port, s.data_dir) == (1883, 8080, "./hongshan-data")
    assert s.allow_anonymous is False


def test_precedence(tmp_path: Path) -> None:
    file = tmp_path / "hongshan.toml"
    file.write_text('mqtt_port = 1000\nhttp_port = 2000\ndata-dir = "/srv/x"\n')
    env = {"HONGSHAN_HTTP_PORT": "3000", "HONGSHAN_ALLOW_ANONYMOUS": "yes"}
    s = load_settings(file, environ=env, flags={"mqtt_port": None, "data_dir": "/srv/y"})
    assert s.mqtt_port == 1000  # file (flag not given)
    assert s.http_port == 3000  # environment beats file
    assert s.data_dir == "/srv/y"  # flag beats file
    assert s.allow_anonymous is True


def test_table_form(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("[hongshan]\nmax_inflight = 20\n")
    assert load_settings(file, environ={}).max_inflight == 20


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HONGSHAN_MQTT_PORT": "abc"}, "expected an integer"),
        ({"HONGSHAN_MQTT_PORT": "70000"}, "not a TCP port"),
        ({"HONGSHAN_MAP_ZOOM": "23"}, "map_zoom: 23 is out of 0..22"),
        ({"HONGSHAN_MAP_TILE_URL": "tiles.example/{z}/{x}/{y}.png"}, "an http\\(s\\) URL"),
        ({"HONGSHAN_ALLOW_ANONYMOUS": "maybe"}, "expected a boolean"),
        ({"HONGSHAN_TLS_PORT": "8883"}, "tls_cert"),
        ({"HONGSHAN_TRUSTED_PROXIES": "10.0.0.1, gateway"}, "'gateway' is no address"),
        ({"HONGSHAN_AUDIT_RETENTION_DAYS": "0"}, "audit_retention_days: must be positive"),
        ({"HONGSHAN_WS_BATCH_INTERVAL": "-0.1"}, "ws_batch_interval: must be 0 to 10"),
        ({"HONGSHAN_EVENT_LOOP": "trio"}, "event_loop: 'trio' is neither"),
        (
            {"HONGSHAN_ADMIN_PASSWORD": "a long password", "HONGSHAN_ADMIN_PASSWORD_HASH": "$a"},
            "admin_password and admin_password_hash: one or the other",
        ),
    ],
)
def test_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)


def test_trusted_proxies_are_a_list_in_the_file_and_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('trusted_proxies = ["10.0.0.2"]\n')
    assert load_settings(file, environ={}).trusted_proxies == ["10.0.0.2"]
    environ = {"HONGSHAN_TRUSTED_PROXIES": "10.0.0.2, 10.1.0.0/16"}
    assert load_settings(environ=environ).trusted_proxies == ["10.0.0.2", "10.1.0.0/16"]


def test_unknown_key_in_file(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text("mqtt_prot = 1\n")
    with pytest.raises(ConfigError, match="mqtt_prot"):
        load_settings(file, environ={})


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_the_server_runs_on_the_event_loop_it_is_told(
    spawn_server: Callable[..., Any], event_loop: str
) -> None:
    server = spawn_server("--event-loop", event_loop)
    assert any(line.rstrip().endswith(f"on {event_loop}") for line in server.log), server.log
