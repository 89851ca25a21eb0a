"""``hongshan command …`` as a user runs it: the installed command against a running server
and an Alink lamp on a paho client that answers."""

from __future__ import annotations

from typing import Any

from test_api_commands import as_json, run

from alibaba_device import lamps as streetlights
from broker_peers import eventually
from command_devices import Lamp


def test_commands_from_the_command_line(server: Any) -> None:
    pk, secrets = streetlights(server, "lamp-1", "lamp-2")
    lamp = Lamp(server.port, pk, "lamp-1", secrets["lamp-1"]).connect()
    try:
        sent = as_json(
            server, "command", "send", "--device", f"{pk}/lamp-1", "--set", '{"LightSwitch": 1}',
            "--wait", "5",
        )  # fmt: skip
        assert sent["state"] == "replied" and sent["origin"] == "cli" and sent["code"] == 200
        assert lamp.next_call()["params"] == {"LightSwitch": 1}
        called = as_json(
            server, "command", "send", "--device", f"{pk}/lamp-1", "--call", "SetSchedule",
            "--params", "{}",
        )  # fmt: skip
        assert called["service"] == "SetSchedule" and called["state"] == "replied"
        queued = as_json(
            server, "command", "send", "--device", f"{pk}/lamp-2", "--set", '{"LightSwitch": 0}',
            "--ttl", "600",
        )  # fmt: skip
        assert queued["state"] == "queued"
        batch = as_json(server, "command", "send", "--product", pk, "--set", '{"LightSwitch": 1}')
        assert batch["total"] == 2

        def progress() -> dict[str, int]:
            counts: dict[str, int] = as_json(server, "command", "batch", str(batch["id"]))["counts"]
            return counts

        eventually(lambda: progress() == {"replied": 1, "failed": 1}, what="batch done")
        table = run(server, "command", "list", "--device", f"{pk}/lamp-1").stdout
        assert "SetSchedule" in table and "replied" in table
        listed = as_json(server, "command", "list", "--state", "queued")
        assert [c["id"] for c in listed["items"]] == [queued["id"]]
        assert as_json(server, "command", "show", str(sent["id"]))["callId"] == sent["callId"]
        assert as_json(server, "command", "cancel", str(queued["id"]))["state"] == "cancelled"
        again = run(server, "command", "cancel", str(queued["id"]), check=False)
        assert again.returncode == 1 and "409" in again.stderr and "queued" in again.stderr
        bad = run(server, "command", "send", "--device", f"{pk}/lamp-1", check=False)
        assert bad.returncode == 2 and "--set or --call" in bad.stderr
        wrong = run(
            server, "command", "send", "--device", f"{pk}/lamp-1", "--set", '{"Brightness": 999}',
            check=False,
        )  # fmt: skip
        assert wrong.returncode == 1 and "Brightness" in wrong.stderr
    finally:
        lamp.stop()
