"""A rule's alarm action, as the rules engine runs it: its settings checked when the rule is
stored, a message that speaks for no device failing it, and a rule raising an alarm on its own
alarm's stream stopped at the depth limit."""

from __future__ import annotations

import json
from typing import Any

import httpx
from alarm_helpers import created, problem

from alibaba_device import lamps
from broker_peers import Paho, eventually
from hongshan.services.rules.engine import MAX_DEPTH


def rule(name: str, sql: str, *actions: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"name": name, "sql": sql, "actions": list(actions), **more}


def test_an_alarm_action_that_cannot_work_is_refused(server: Any, api: httpx.Client) -> None:
    pk, _ = lamps(server, "lamp-0001")
    sql = 'SELECT * FROM "town/in"'
    for action, words in [
        ({"type": "alarm", "alarmType": ""}, "alarmType is 1 to 128"),
        ({"type": "alarm", "alarmType": "t", "severity": "dire"}, "severity"),
        ({"type": "alarm", "alarmType": "t", "productKey": pk}, "both productKey and deviceName"),
        ({"type": "alarm", "alarmType": "t", "productKey": pk, "deviceName": "nope"},
         "no device nope"),
        ({"type": "alarm", "alarmType": "t", "escalation": {"remindEvery": 0}}, "remindEvery 0"),
    ]:  # fmt: skip
        problem(api.post("/api/rules", json=rule("r", sql, action)), 400, words)


def test_a_message_of_no_device_fails_the_action_unless_it_names_one(
    server: Any, paho_client: Any, api: httpx.Client
) -> None:
    pk, _ = lamps(server, "lamp-0001")
    watcher: Paho = paho_client(server.port).connect()
    assert watcher.subscribe("town/errors", 1) == [1]
    anonymous = created(
        api.post(
            "/api/rules",
            json=rule(
                "raw", 'SELECT * FROM "town/in"', {"type": "alarm", "alarmType": "Raw"},
                errorAction={"type": "republish", "topic": "town/errors"},
            ),
        )
    )  # fmt: skip
    created(
        api.post(
            "/api/rules",
            json=rule(
                "named", 'SELECT * FROM "town/in"',
                {"type": "alarm", "alarmType": "Named", "productKey": pk,
                 "deviceName": "lamp-0001", "severity": "minor"},
            ),
        )
    )  # fmt: skip
    sender: Paho = paho_client(server.port).connect()
    sender.publish("town/in", b'{"level": 3}', 1)
    report = json.loads(watcher.get().payload)
    assert report["ruleId"] == anonymous["id"] and report["action"] == "alarm"
    assert "town/in speaks for no device" in report["error"]
    eventually(lambda: api.get("/api/alarms").json()["total"] == 1, what="the named alarm")
    named = api.get("/api/alarms").json()["items"][0]
    assert (named["type"], named["deviceName"], named["details"]) == (
        "Named", "lamp-0001", {"level": 3}
    )  # fmt: skip


def test_a_rule_raising_on_its_own_alarms_stream_stops_at_the_depth_limit(
    server: Any, api: httpx.Client
) -> None:
    pk, _ = lamps(server, "lamp-0001")
    looping = created(
        api.post(
            "/api/rules",
            json=rule(
                "echo", f'SELECT * FROM "$things/{pk}/+/alarms"',
                {"type": "alarm", "alarmType": "Echo"},
            ),
        )
    )  # fmt: skip
    created(
        api.post("/api/alarms", json={"productKey": pk, "deviceName": "lamp-0001", "type": "x"})
    )

    def echo() -> dict[str, Any] | None:
        found = api.get("/api/alarms", params={"type": "Echo"}).json()["items"]
        return found[0] if found else None

    def stopped() -> bool:
        trace = api.get(f"/api/rules/{looping['id']}/trace").json()
        return bool(trace["counters"]["looped"] == 1)

    eventually(stopped, what="the loop stopped")
    last = echo()
    assert last is not None and last["repeats"] == MAX_DEPTH  # (fires 0 to MAX_DEPTH deep)
    trace = api.get(f"/api/rules/{looping['id']}/trace").json()
    assert trace["counters"]["fired"] == MAX_DEPTH + 1
