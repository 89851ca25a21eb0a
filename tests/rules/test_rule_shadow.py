"""Shadow rules on a real server: a paho lamp posts, a shadow rule records what its webhook
would have got and calls it only once switched live (and stops again when shadowed)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from test_rule_engine import create

from alibaba_device import lamps, online, stamped_post
from broker_peers import Paho
from webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    made = WebhookReceiver()
    yield made
    made.close()


def test_a_shadow_rule_records_its_webhook_and_calls_it_once_live(
    server: Any,
    paho_client: Callable[..., Paho],
    api: httpx.Client,
    receiver: WebhookReceiver,
) -> None:
    pk, secrets = lamps(server, "lamp-1")
    lamp = online(server, paho_client, pk, "lamp-1", secrets["lamp-1"])
    rule = create(
        api,
        name="shadowed",
        sql=f'SELECT values.Brightness AS b FROM "$things/{pk}/+/properties"',
        actions=[{"type": "webhook", "url": receiver.url}],
        shadow=True,
    )
    assert rule["shadow"] is True
    now = int(time.time() * 1000)
    stamped_post(lamp, pk, "lamp-1", now, {"Brightness": 11})
    trace = api.get(f"/api/rules/{rule['id']}/trace").json()
    assert trace["counters"]["wouldFire"] == 1 and trace["counters"]["fired"] == 0
    (run,) = trace["runs"]
    assert run["shadow"] is True and run["output"] == {"b": 11}
    assert run["wouldDo"] == [
        {"type": "webhook", "url": receiver.url, "timeout": 5.0, "retries": 3, "backoff": 1.0}
        | {"body": {"b": 11}}
    ]
    live = api.post(f"/api/rules/{rule['id']}/enable?mode=live")
    assert live.status_code == 200 and live.json()["shadow"] is False
    stamped_post(lamp, pk, "lamp-1", now + 1, {"Brightness": 22})
    _, body = receiver.get()
    assert json.loads(body) == {"b": 22}  # the first it got: the shadow fire sent nothing
    assert receiver.count == 1
    trace = api.get(f"/api/rules/{rule['id']}/trace").json()
    assert trace["counters"]["fired"] == 1 and trace["counters"]["wouldFire"] == 0
    back = api.post(f"/api/rules/{rule['id']}/enable?mode=shadow").json()
    assert back["shadow"] is True
    assert api.get(f"/api/rules/{rule['id']}").json()["shadow"] is True
    bad = api.post(f"/api/rules/{rule['id']}/enable?mode=loud")
    assert bad.status_code == 400
