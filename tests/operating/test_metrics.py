"""Issue 15, operating it: ``GET /metrics`` of a real server, scraped over HTTP and read by
prometheus-client's parser. The figures move with what devices do: an MQTT publish, an Alink
post, a rule's fire, an alarm, a command; OpenMetrics when asked; a token needed, unless the
metrics have a listener of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from alibaba_device import lamps, online, post
from metric_scrapes import scrape, value
from thingsboard_device import rest

# what every scrape has, whatever the platform has seen (a family with no samples is there)
FAMILIES = {
    "hongshan_mqtt_messages_received",
    "hongshan_mqtt_messages_sent",
    "hongshan_mqtt_messages_dropped",
    "hongshan_mqtt_refused",
    "hongshan_mqtt_clients_connected",
    "hongshan_dialect_uplinks",
    "hongshan_dialect_replies",
    "hongshan_history_commit_seconds",
    "hongshan_history_lag_seconds",
    "hongshan_history_writes_in_flight",
    "hongshan_rules_running",
    "hongshan_rule_fired",
    "hongshan_rules_fired",
    "hongshan_alarm_changes",
    "hongshan_alarms_open",
    "hongshan_commands",
    "hongshan_websocket_clients",
    "hongshan_websocket_messages_sent",
    "hongshan_websocket_frames_sent",
    "hongshan_websocket_clients_dropped",
    "process_resident_memory_bytes",
}


def test_the_figures_move_with_what_devices_do(
    server: Any, api: httpx.Client, paho_client: Any
) -> None:
    families, before = scrape(api)
    assert families >= FAMILIES, FAMILIES - families
    pk, secrets = lamps(server, "lamp-0001", "lamp-0002")
    sql = f'SELECT * FROM "/{pk}/+/thing/event/property/post"'
    made = api.post(
        "/api/rules",
        json={"name": "lamps", "sql": sql, "actions": [{"type": "republish", "topic": "t/x"}]},
    )
    assert made.status_code == 201, made.text
    # a plain MQTT publish, and an Alink post (acknowledged: committed by then)
    plain = paho_client(server.port).connect()
    assert plain.publish("town/hello", b"hi", 1) == 0
    lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
    post(lamp, pk, "lamp-0001", {"LightSwitch": 1, "Brightness": 80})
    # an alarm raised, and a command to a device that is offline
    raised = api.post(
        "/api/alarms",
        json={"productKey": pk, "deviceName": "lamp-0001", "type": "Tilt", "severity": "major"},
    )
    assert raised.status_code == 201, raised.text
    called = api.post(
        f"/api/products/{pk}/devices/lamp-0002/properties", json={"params": {"Brightness": 4}}
    )
    assert called.status_code == 200, called.text
    _, after = scrape(api)

    def moved(name: str, **labels: Any) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("hongshan_mqtt_messages_received_total") >= 2
    assert moved("hongshan_mqtt_connections_opened_total") >= 2
    assert moved("hongshan_dialect_uplinks_total", dialect="alink", outcome="accepted") == 1
    assert moved("hongshan_history_commit_seconds_count") >= 1
    assert value(after, "hongshan_history_commit_seconds_bucket", le="+Inf") == value(
        after, "hongshan_history_commit_seconds_count"
    )
    assert value(after, "hongshan_rules_running") == 1
    assert value(after, "hongshan_rule_fired_total", rule="lamps") == 1
    assert value(after, "hongshan_rule_matched_total", rule="lamps") == 1
    assert moved("hongshan_alarm_changes_total", change="raised", severity="major") == 1
    assert value(after, "hongshan_alarms_open", severity="major") == 1
    assert moved("hongshan_dialect_replies_total", dialect="alink", outcome="offline") == 1
    assert moved("hongshan_commands_total", state="failed") == 1
    # a rule deleted takes its series with it; the totals keep what it counted
    assert api.delete(f"/api/rules/{made.json()['id']}").status_code in (200, 204)
    _, later = scrape(api)
    assert value(later, "hongshan_rules_running") == 0
    assert ("hongshan_rule_fired_total", frozenset({("rule", "lamps")})) not in later
    assert value(later, "hongshan_rules_fired_total") == 1
    assert value(later, "hongshan_rules_matched_total") == 1


def test_openmetrics_when_asked(api: httpx.Client) -> None:
    answer = api.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    names = {family.name for family in openmetrics_families(answer.text)}
    assert "hongshan_mqtt_messages_received" in names


def test_no_token_no_metrics(server: Any) -> None:
    answer = httpx.get(f"http://127.0.0.1:{server.ports['http']}/metrics", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_tenants_admin_may_not_read_every_tenants_figures(server: Any, api: httpx.Client) -> None:
    user = {"name": "town-admin", "password": "a long password 1", "role": "admin"}
    assert api.post("/api/users", json=user).status_code == 201
    base = f"http://127.0.0.1:{server.ports['http']}"
    login = {"username": user["name"], "password": user["password"]}
    token = httpx.post(base + "/api/auth/login", json=login).json()["accessToken"]
    refused = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403 and "every tenant" in refused.json()["detail"]


def test_a_listener_of_their_own_needs_no_token(make_server: Callable[..., Any]) -> None:
    server = make_server(metrics_port=0)
    port = server.ports["metrics"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as open_client:
        families, _ = scrape(open_client)
        assert families >= FAMILIES
        assert open_client.get("/api/health").status_code == 404  # only the metrics there
    with rest(server) as api:
        assert api.get("/metrics").status_code == 404  # and not on the API's listener
