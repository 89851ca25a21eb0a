"""Alarms end to end on a real server: a paho device posts, a rule raises an alarm, it is kept
and shown by REST, mailed through a real SMTP server (aiosmtpd) and POSTed to a real HTTP
receiver; repeats, acknowledgement, clearing by a rule, escalation and reminders with short
times across a restart, and a device's TSL alert event."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable
from typing import Any

from alarm_helpers import created, problem

from alibaba_device import STREETLIGHT, lamps, make_device, make_product, online, post
from broker_peers import Paho, eventually
from hongshan.things.tsl import ThingModel
from mail_receiver import MailReceiver
from registry_databases import RegistryDatabase
from thingsboard_device import rest
from webhook_receiver import WebhookReceiver


def hooked(receiver: WebhookReceiver, secret: str) -> dict[str, Any]:
    """The next webhook's body, its signature checked with the route's secret."""
    headers, body = receiver.get()
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hongshan-Signature"] == f"sha256={expected}"
    payload: dict[str, Any] = json.loads(body)
    assert headers["X-Hongshan-Change"] == payload["change"]
    assert headers["X-Hongshan-Alarm"] == str(payload["id"])
    return payload


def test_a_rule_raises_repeats_and_clears_an_alarm_mailed_and_posted(
    make_server: Callable[..., Any],
    paho_client: Any,
    mail: MailReceiver,
    receivers: Callable[..., WebhookReceiver],
) -> None:
    server = make_server(smtp_host="127.0.0.1", smtp_port=mail.port, smtp_from="town@example")
    hook = receivers()
    pk, secrets = lamps(server, "lamp-0001")
    with rest(server) as api:
        route = created(
            api.post(
                "/api/alarm-notifications",
                json={
                    "name": "ops",
                    "kind": "webhook",
                    "url": hook.url,
                    "changes": ["raised", "repeated", "acknowledged", "cleared"],
                },
            )
        )
        created(
            api.post(
                "/api/alarm-notifications",
                json={
                    "name": "night shift",
                    "kind": "email",
                    "to": ["ops@town.example"],
                    "minSeverity": "major",
                    "changes": ["raised"],
                },
            )
        )
        raising = created(
            api.post(
                "/api/rules",
                json={
                    "name": "overvoltage",
                    "sql": "SELECT deviceName() AS device, values.Voltage AS voltage "
                    f'FROM "$things/{pk}/+/properties" WHERE values.Voltage > 250',
                    "actions": [{"type": "alarm", "alarmType": "Overvoltage"}],
                },
            )
        )
        created(
            api.post(
                "/api/rules",
                json={
                    "name": "voltage back",
                    "sql": f'SELECT * FROM "$things/{pk}/+/properties" WHERE values.Voltage <= 250',
                    "actions": [{"type": "alarm", "alarmType": "Overvoltage", "clear": True}],
                },
            )
        )
        created(
            api.post(
                "/api/rules",
                json={
                    "name": "alarms out",
                    "sql": f'SELECT deviceName() AS device, * FROM "$things/{pk}/+/alarms"',
                    "actions": [{"type": "republish", "topic": "town/alarms"}],
                },
            )
        )
        watcher: Paho = paho_client(server.port).connect()
        assert watcher.subscribe("town/alarms", 1) == [1]
        lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])

        post(lamp, pk, "lamp-0001", {"Voltage": 260.5})
        sent = hooked(hook, route["secret"])
        assert sent["change"] == "raised" and sent["severity"] == "major"
        assert (sent["productKey"], sent["deviceName"]) == (pk, "lamp-0001")
        assert sent["details"] == {"device": "lamp-0001", "voltage": 260.5}
        assert sent["originator"] == {"kind": "rule", "id": str(raising["id"])}
        assert sent["by"] == f"rule:{raising['id']}"
        recipients, message = mail.get()
        assert recipients == ["ops@town.example"] and message["From"] == "town@example"
        assert message["Subject"] == f"[MAJOR] Overvoltage on {pk}/lamp-0001"
        text = message.get_content()
        assert "Status:        ACTIVE_UNACK" in text and '"voltage": 260.5' in text
        listed = api.get("/api/alarms", params={"status": "ACTIVE", "productKey": pk}).json()
        assert listed["total"] == 1
        alarm = listed["items"][0]
        assert alarm["id"] == sent["id"] and alarm["status"] == "ACTIVE_UNACK"

        post(lamp, pk, "lamp-0001", {"Voltage": 270})
        again = hooked(hook, route["secret"])
        assert again["change"] == "repeated" and again["repeats"] == 1
        assert again["details"]["voltage"] == 270 and again["id"] == alarm["id"]
        assert api.get("/api/alarms", params={"productKey": pk}).json()["total"] == 1

        acked = api.post(f"/api/alarms/{alarm['id']}/ack", json={"by": "ana"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "ACTIVE_ACK" and acked.json()["acknowledgedBy"] == "ana"
        acknowledged = hooked(hook, route["secret"])
        assert (acknowledged["change"], acknowledged["by"]) == ("acknowledged", "ana")
        problem(api.post(f"/api/alarms/{alarm['id']}/ack"), 409, "ACTIVE_ACK")

        post(lamp, pk, "lamp-0001", {"Voltage": 230})
        cleared = hooked(hook, route["secret"])
        assert cleared["change"] == "cleared" and cleared["status"] == "CLEARED_ACK"
        assert cleared["previousStatus"] == "ACTIVE_ACK"
        shown = api.get(f"/api/alarms/{alarm['id']}").json()
        assert shown["status"] == "CLEARED_ACK" and shown["clearedBy"].startswith("rule:")
        problem(api.post(f"/api/alarms/{alarm['id']}/ack"), 409, "CLEARED_ACK")
        problem(api.post(f"/api/alarms/{alarm['id']}/clear"), 409, "CLEARED_ACK")

        # the rules heard each change on the alarms' stream, as speaking for the device
        heard = [json.loads(m.payload) for m in watcher.take(4)]
        assert [h["change"] for h in heard] == ["raised", "repeated", "acknowledged", "cleared"]
        assert {h["device"] for h in heard} == {"lamp-0001"}
        # raised again after clearing: a new alarm
        post(lamp, pk, "lamp-0001", {"Voltage": 300})
        fresh = hooked(hook, route["secret"])
        assert fresh["change"] == "raised" and fresh["id"] != alarm["id"]
        assert mail.get()[1]["Subject"] == f"[MAJOR] Overvoltage on {pk}/lamp-0001"

        def counts() -> list[tuple[str, int, int]]:
            routes = api.get("/api/alarm-notifications").json()["items"]
            assert all("secret" not in route for route in routes)
            return [(route["name"], route["sent"], route["failed"]) for route in routes]

        # (each is counted once its answer came: after the receiver had it)
        eventually(lambda: counts() == [("ops", 5, 0), ("night shift", 2, 0)], what="counts")


def test_escalation_and_reminders_keep_their_timing_across_a_restart(
    make_server: Callable[..., Any], receivers: Callable[..., WebhookReceiver]
) -> None:
    hook = receivers()
    server = make_server()
    pk, _ = lamps(server, "oximeter-7")
    with rest(server) as api:
        route = created(
            api.post(
                "/api/alarm-notifications",
                json={
                    "name": "ward",
                    "kind": "webhook",
                    "url": hook.url,
                    "changes": ["escalated", "reminder"],
                },
            )
        )
        alarm = created(
            api.post(
                "/api/alarms",
                json={
                    "productKey": pk,
                    "deviceName": "oximeter-7",
                    "type": "SpO2 low",
                    "severity": "minor",
                    "details": {"spo2": 88},
                    "escalation": {"after": 3.0, "to": "critical", "remindEvery": 4.0},
                },
            )
        )
    assert alarm["originator"] == {"kind": "api", "id": "api"}
    server.stop()
    restarted_at = int(time.time() * 1000)
    server = make_server()
    # (both may fall due at once after a slow restart: sent side by side, in either order)
    got = {payload["change"]: payload for payload in (hooked(hook, route["secret"]) for _ in "ab")}
    escalated, reminder = got["escalated"], got["reminder"]
    assert escalated["severity"] == "critical" and escalated["previousSeverity"] == "minor"
    assert escalated["by"] == "escalation"
    # due 3 s after the first raise, not 3 s after the restart; the reminder 4 s after it
    assert alarm["firstRaisedAt"] + 3000 <= escalated["escalatedAt"] < restarted_at + 3000
    assert alarm["firstRaisedAt"] + 4000 <= reminder["remindedAt"] < restarted_at + 4000
    with rest(server) as api:
        shown = api.get(f"/api/alarms/{alarm['id']}").json()
        assert shown["status"] == "ACTIVE_UNACK" and shown["severity"] == "critical"
        acked = api.post(f"/api/alarms/{alarm['id']}/ack", json={"by": "nurse"})
        assert acked.status_code == 200 and acked.json()["status"] == "ACTIVE_ACK"


def test_a_devices_tsl_alert_event_raises_an_alarm(
    server: Any, paho_client: Any, receivers: Callable[..., WebhookReceiver]
) -> None:
    hook = receivers()
    pk, secrets = lamps(server, "lamp-0001")
    with rest(server) as api:
        route = created(
            api.post(
                "/api/alarm-notifications",
                json={"name": "faults", "kind": "webhook", "url": hook.url, "types": ["LampFault"]},
            )
        )
        lamp = online(server, paho_client, pk, "lamp-0001", secrets["lamp-0001"])
        body = {
            "id": "7",
            "version": "1.0",
            "params": {"FaultCode": 4, "Voltage": 0.0},
            "method": "thing.event.LampFault.post",
        }
        topic = f"/sys/{pk}/lamp-0001/thing/event/LampFault/post"
        assert lamp.publish(topic, json.dumps(body), 1) == 0
        raised = hooked(hook, route["secret"])
        assert raised["type"] == "LampFault" and raised["severity"] == "major"
        assert raised["originator"] == {"kind": "event", "id": "LampFault"}
        assert raised["details"] == {"FaultCode": 4, "Voltage": 0.0}
        assert lamp.publish(topic, json.dumps({**body, "id": "8"}), 1) == 0  # (a new message)
        eventually(
            lambda: (
                api.get("/api/alarms", params={"type": "LampFault"}).json()["items"][0]["repeats"]
                == 1
            ),
            what="a repeat",
        )
        # an info event (the property post is one) raises none
        post(lamp, pk, "lamp-0001", {"Voltage": 220})
        assert api.get("/api/alarms").json()["total"] == 1


def test_a_devices_tsl_error_event_raises_a_critical_alarm(
    server: Any, paho_client: Any, receivers: Callable[..., WebhookReceiver]
) -> None:
    hook = receivers()
    model = json.loads(STREETLIGHT.read_text())
    model["events"].append(
        {"identifier": "PowerLost", "name": "断电", "type": "error", "required": False,
         "method": "thing.event.PowerLost.post", "outputData": []}
    )  # fmt: skip
    pk = make_product(server, thing_model=ThingModel.from_json(json.dumps(model))).product_key
    secret = make_device(server, pk, "lamp-0001").device_secret
    with rest(server) as api:
        route = created(
            api.post(
                "/api/alarm-notifications",
                json={"name": "power", "kind": "webhook", "url": hook.url,
                      "minSeverity": "critical"},
            )
        )  # fmt: skip
        lamp = online(server, paho_client, pk, "lamp-0001", secret or "")
        body = {"id": "1", "version": "1.0", "params": {}, "method": "thing.event.PowerLost.post"}
        assert lamp.publish(f"/sys/{pk}/lamp-0001/thing/event/PowerLost/post", json.dumps(body),
                            1) == 0  # fmt: skip
        raised = hooked(hook, route["secret"])
        assert (raised["type"], raised["severity"]) == ("PowerLost", "critical")


def test_mail_that_cannot_be_sent_is_kept_on_its_route(make_server: Callable[..., Any]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    down = make_server(smtp_host="127.0.0.1", smtp_port=closed)
    pk, _ = lamps(down, "lamp-0001")
    with rest(down) as api:
        route = created(
            api.post(
                "/api/alarm-notifications",
                json={"name": "mail", "kind": "email", "to": ["ops@town.example"],
                      "retries": 1, "backoff": 0.01},
            )
        )  # fmt: skip
        alarm = created(
            api.post("/api/alarms", json={"productKey": pk, "deviceName": "lamp-0001",
                                          "type": "t"})
        )  # fmt: skip
        eventually(
            lambda: api.get(f"/api/alarm-notifications/{route['id']}").json()["failed"] == 1,
            what="the failure counted",
        )
        shown = api.get(f"/api/alarm-notifications/{route['id']}").json()
        assert shown["lastError"].startswith(f"email via 127.0.0.1:{closed}: ")
        assert shown["lastError"].endswith("after 2 tries")
        acked = api.post(f"/api/alarms/{alarm['id']}/ack")
        assert acked.status_code == 200 and acked.json()["status"] == "ACTIVE_ACK"


def test_open_alarms_survive_a_restart_on_either_registry(
    make_server: Callable[..., Any], registry_db: RegistryDatabase
) -> None:
    url = registry_db.setting
    server = make_server(registry_url=url)
    pk, _ = lamps(server, "lamp-0001")
    device = {"productKey": pk, "deviceName": "lamp-0001"}
    with rest(server) as api:
        kept = created(api.post("/api/alarms", json={**device, "type": "Pole leaning"}))
        created(api.post(f"/api/alarms/{kept['id']}/notes", json={"text": "seen", "by": "ana"}))
        done = created(api.post("/api/alarms", json={**device, "type": "Door open"}))
        api.post(f"/api/alarms/{done['id']}/clear")
    server.stop()
    server = make_server(registry_url=url)
    with rest(server) as api:
        active = api.get("/api/alarms", params={"status": "ACTIVE"}).json()
        assert [a["id"] for a in active["items"]] == [kept["id"]]
        assert active["items"][0]["notes"][0]["text"] == "seen"
        again = created(api.post("/api/alarms", json={**device, "type": "Pole leaning"}))
        assert again["id"] == kept["id"] and again["repeats"] == 1
        assert api.get("/api/alarms").json()["total"] == 2


def test_a_notification_a_stop_interrupted_is_sent_at_the_next_start(
    make_server: Callable[..., Any], receivers: Callable[..., WebhookReceiver]
) -> None:
    busy = receivers([503])  # (then 200)
    server = make_server()
    pk, _ = lamps(server, "lamp-0001")
    with rest(server) as api:
        route = created(
            api.post(
                "/api/alarm-notifications",
                json={"name": "slow", "kind": "webhook", "url": busy.url, "retries": 3,
                      "backoff": 120},
            )
        )  # fmt: skip
        alarm = created(
            api.post("/api/alarms", json={"productKey": pk, "deviceName": "lamp-0001",
                                          "type": "t"})
        )  # fmt: skip
    busy.get()  # its first try answered 503; the next is two minutes away: stop now
    server.stop()
    server = make_server()
    headers, body = busy.get()
    assert json.loads(body)["id"] == alarm["id"] and json.loads(body)["change"] == "raised"
    expected = hmac.new(route["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hongshan-Signature"] == f"sha256={expected}"
    with rest(server) as api:
        eventually(
            lambda: api.get(f"/api/alarm-notifications/{route['id']}").json()["sent"] == 1,
            what="counted sent",
        )
    assert server.run(server.platform.registry.alarm_routes.owed()) == []  # (sent: not owed)
    assert busy.count == 2
