"""Lamps for the command tests: Alink devices on paho clients, signed in with Alibaba's
automatic subscriptions (``_ss=1``, as the Link SDKs do), that answer the platform's property
sets and service calls — at once, never, or when the test lets them."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from alibaba_device import signed_login
from broker_peers import Paho


class Lamp:
    """One device on a paho client. ``answering``: it replies to each call as it comes (code
    200); else it keeps the calls (``calls``) until ``answer_held`` is called. Every call it
    received is in ``received`` (payloads, in order)."""

    def __init__(self, port: int, pk: str, dn: str, secret: str, *, answering: bool = True):
        client_id, username, password = signed_login(pk, dn, secret)
        client_id = client_id[:-1] + ",_ss=1|"  # Alibaba's automatic subscriptions
        self.paho = Paho(port, client_id=client_id, username=username, password=password)
        self.pk, self.dn = pk, dn
        self.answering = answering
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.held: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.paho.client.on_message = self._on_message

    def connect(self) -> Lamp:
        self.paho.connect()
        return self

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        if "/thing/service/" not in message.topic or message.topic.endswith("_reply"):
            return
        body = json.loads(message.payload)
        self.received.put(body)
        with self._lock:
            if not self.answering:
                self.held.append((message.topic, body))
                return
        self._reply(message.topic, body)

    def _reply(self, topic: str, body: dict[str, Any], code: int = 200) -> None:
        reply = {"id": body["id"], "code": code, "data": {}}
        self.paho.client.publish(topic + "_reply", json.dumps(reply), 0)

    def answer_held(self, *, from_now_on: bool = True) -> None:
        with self._lock:
            held, self.held = self.held, []
            self.answering = from_now_on
        for topic, body in held:
            self._reply(topic, body)

    def reply_late(self, call_id: str, method_topic: str = "thing/service/property/set") -> None:
        topic = f"/sys/{self.pk}/{self.dn}/{method_topic}"
        self._reply(topic, {"id": call_id})

    def next_call(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.dn}: no call within {timeout} s") from None

    def stop(self) -> None:
        self.paho.stop()
