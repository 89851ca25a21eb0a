"""``hongshan alarm …`` as a user runs it: the installed command against a running server."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from test_api_commands import as_json, run

from alibaba_device import make_device, make_product
from installed import HONGSHAN


def notify(server: Any, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``hongshan alarm notify …`` (the API options go after the three words)."""
    command = [
        HONGSHAN, "alarm", "notify", args[0], "--server",
        f"http://127.0.0.1:{server.ports['http']}", "--data-dir", server.settings.data_dir,
        *args[1:],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_alarms_from_the_command_line(server: Any) -> None:
    pk = make_product(server).product_key
    make_device(server, pk, "oximeter-7")
    device = ("--product", pk, "--device", "oximeter-7")
    raised = as_json(
        server, "alarm", "raise", *device, "--type", "SpO2 low", "--severity", "critical",
        "--details", '{"spo2": 86}',
    )  # fmt: skip
    alarm_id = str(raised["id"])
    assert raised["status"] == "ACTIVE_UNACK" and raised["details"] == {"spo2": 86}
    table = run(server, "alarm", "list", "--status", "active").stdout
    assert "SpO2 low" in table and "critical" in table and "1 of 1" in table
    listed = as_json(server, "alarm", "list", "--min-severity", "major", "--device", "oximeter-7")
    assert [a["id"] for a in listed["items"]] == [raised["id"]]
    assert as_json(server, "alarm", "assign", alarm_id, "ana")["assignee"] == "ana"
    noted = as_json(server, "alarm", "note", alarm_id, "nurse on the way", "--by", "ana")
    assert noted["notes"][0]["text"] == "nurse on the way"
    acked = as_json(server, "alarm", "ack", alarm_id, "--by", "ana")
    assert acked["status"] == "ACTIVE_ACK" and acked["acknowledgedBy"] == "ana"
    again = run(server, "alarm", "ack", alarm_id, check=False)
    assert again.returncode == 1 and "409" in again.stderr and "ACTIVE_ACK" in again.stderr
    assert as_json(server, "alarm", "clear", alarm_id)["status"] == "CLEARED_ACK"
    assert as_json(server, "alarm", "show", alarm_id)["clearedBy"] == "cli"
    assert as_json(server, "alarm", "assign", alarm_id, "--nobody")["assignee"] is None
    missing = run(server, "alarm", "show", "999", check=False)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_notification_routes_from_the_command_line(server: Any) -> None:
    route = json.loads(notify(
        server, "add", "--name", "ops", "--webhook", "http://127.0.0.1:9/h",
        "--min-severity", "major", "--change", "raised", "--change", "cleared", "--json",
    ).stdout)  # fmt: skip
    assert route["changes"] == ["raised", "cleared"] and len(route["secret"]) == 32
    assert "ops" in notify(server, "list").stdout
    both = notify(
        server, "add", "--name", "x", "--webhook", "http://a", "--email",
        "a@b.example", check=False,
    )  # fmt: skip
    assert both.returncode != 0 and "one kind a route" in both.stderr
    no_smtp = notify(server, "add", "--name", "x", "--email", "a@b.example", check=False)
    assert no_smtp.returncode == 1 and "smtp_host" in no_smtp.stderr
    assert "deleted" in notify(server, "delete", str(route["id"])).stdout
    assert json.loads(notify(server, "list", "--json").stdout) == []


def test_a_rule_with_alarm_actions_from_the_command_line(server: Any, tmp_path: Any) -> None:
    rule_file = tmp_path / "hot.sql"
    rule_file.write_text('SELECT * FROM "$things/+/+/properties"')
    created = as_json(
        server, "rule", "create", "--name", "hot", "-f", str(rule_file),
        "--alarm", "Too hot:critical", "--alarm", "Odd: reading", "--clear-alarm", "Too cold",
    )  # fmt: skip
    said = [(a["type"], a["alarmType"], a["severity"], a["clear"]) for a in created["actions"]]
    assert said == [
        ("alarm", "Too hot", "critical", False),
        ("alarm", "Odd: reading", "major", False),
        ("alarm", "Too cold", "major", True),
    ]
    assert created["actions"][0]["deviceName"] is None  # (the message's device)
