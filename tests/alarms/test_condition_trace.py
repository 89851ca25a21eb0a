"""An alarm condition's trace on a real server (``GET /api/alarm-conditions/{id}/trace``,
``hongshan alarm condition trace``): after live posts from a paho Alink lamp, its counters
and its last decisions — waiting for a duration's end, broken by a value, raised, cleared."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alarm_helpers import created
from test_alarm_conditions_live import conditions_cli, volts

from alibaba_device import lamps, online, post
from broker_peers import Paho, eventually
from thingsboard_device import rest


def test_the_trace_counts_and_keeps_the_last_decisions(
    server: Any, paho_client: Callable[..., Paho]
) -> None:
    pk, secrets = lamps(server, "lamp-1")
    condition = {
        "type": "Overvoltage",
        "create": [
            {"severity": "critical", **volts(">", 260)},
            {"severity": "major", **volts(">", 250, kind="duration", forMs=3_600_000)},
        ],
        "clear": volts("<=", 230),
    }
    with rest(server) as api:
        stored = created(api.post(f"/api/products/{pk}/alarm-conditions", json=condition))
        lamp = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
        for value in (255.0, 220.0, 270.0, 275.0, 225.0):
            post(lamp, pk, "lamp-1", {"Voltage": value})
        trace: dict[str, Any] = {}

        def heard_all() -> bool:
            trace.update(api.get(f"/api/alarm-conditions/{stored['id']}/trace").json())
            return bool(trace["counters"]["heard"] == 5 and trace["counters"]["cleared"])

        eventually(heard_all, what=f"five posts decided (have {trace})")
        assert trace["running"] is True
        assert trace["counters"] == {
            "heard": 5,
            "raised": 1,
            "repeated": 0,
            "cleared": 1,
            "clearedNone": 1,  # (220: the clear held with no alarm open)
            "timersStarted": 2,
            "timersCancelled": 2,
            "timersDone": 0,
        }
        decisions = trace["decisions"]
        assert [d["decision"] for d in decisions] == [
            "cleared",
            "broken",
            "raised",
            "waiting",
            "broken",
            "waiting",
        ]
        waiting = decisions[-1]
        assert waiting["condition"] == "create major" and waiting["deviceName"] == "lamp-1"
        assert waiting["until"] - waiting["at"] == 3_600_000
        assert decisions[2]["severity"] == "critical"
        shown = conditions_cli(server, "trace", str(stored["id"]))
        assert shown.returncode == 0, shown.stderr
        assert "heard 5, raised 1, repeated 0, cleared 1" in shown.stdout
        assert "waiting" in shown.stdout and "create major" in shown.stdout
        # disabled: not running, nothing kept
        changed = api.put(
            f"/api/alarm-conditions/{stored['id']}", json={**condition, "enabled": False}
        )
        assert changed.status_code == 200, changed.text
        idle = api.get(f"/api/alarm-conditions/{stored['id']}/trace").json()
        assert idle["running"] is False and idle["decisions"] == []
        assert api.get("/api/alarm-conditions/999/trace").status_code == 404
