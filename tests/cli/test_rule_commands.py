"""``hongshan rule …`` as a user runs it: the installed command against a running server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_api_commands import as_json, run

from broker_peers import Paho


def test_rules_from_the_command_line(server: Any, paho_client: Any, tmp_path: Path) -> None:
    rule_file = tmp_path / "rule.sql"
    rule_file.write_text('SELECT a, b FROM "town/in" WHERE a > 1\n')
    created = as_json(
        server,
        "rule",
        "create",
        "--name",
        "echo",
        "-f",
        str(rule_file),
        "--republish",
        "town/out/${b}",
        "--webhook",
        "http://127.0.0.1:9/hook",
        "--error-republish",
        "town/errors",
        "--max-per-second",
        "50",
    )
    rule_id = str(created["id"])
    assert [action["type"] for action in created["actions"]] == ["republish", "webhook"]
    assert created["errorAction"] == {"type": "republish", "topic": "town/errors", "qos": 0}
    assert created["maxPerSecond"] == 50 and len(created["secret"]) == 32
    assert "echo" in run(server, "rule", "list").stdout
    assert as_json(server, "rule", "show", rule_id)["sql"] == rule_file.read_text()
    assert as_json(server, "rule", "show", rule_id, "--secret")["secret"] == created["secret"]
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe("town/out/#", 1) == [1]
    sender: Paho = paho_client(server.port).connect()
    sender.publish("town/in", b'{"a": 1, "b": "low"}', 1)
    sender.publish("town/in", b'{"a": 2, "b": "high"}', 1)
    message = watcher.get()
    assert (message.topic, json.loads(message.payload)) == ("town/out/high", {"a": 2, "b": "high"})
    trace = run(server, "rule", "trace", rule_id).stdout
    assert "town/in: a > 1: false" in trace and "'b': 'high'" in trace
    assert as_json(server, "rule", "disable", rule_id)["enabled"] is False
    assert as_json(server, "rule", "enable", rule_id)["enabled"] is True
    assert "deleted" in run(server, "rule", "delete", rule_id).stdout
    missing = run(server, "rule", "show", rule_id, check=False)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_a_rule_that_is_no_rule_is_refused_on_the_command_line(server: Any, tmp_path: Path) -> None:
    rule_file = tmp_path / "bad.sql"
    rule_file.write_text('SELECT * FROM "town/in" WHERE')
    done = run(server, "rule", "create", "--name", "bad", "-f", str(rule_file), check=False)
    assert done.returncode == 1 and "400" in done.stderr and "line 1, column 30" in done.stderr
    device = run(
        server, "rule", "create", "--name", "x", "-f", str(rule_file), "--set", "nope", check=False
    )
    assert device.returncode != 0 and "PRODUCTKEY/DEVICENAME" in device.stderr
