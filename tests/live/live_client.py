"""A client of the live API (``/api/ws``) for the tests: the ``websockets`` library's own
synchronous client against a running server, the admin token as a bearer header or as the
``bearer, <token>`` subprotocols a browser would send."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10.0


def admin_token(server: Any) -> str:
    return (Path(server.settings.data_dir) / "admin.token").read_text().strip()


def live_url(server: Any) -> str:
    return f"ws://127.0.0.1:{server.ports['http']}/api/ws"


def messages_of(frame: str | bytes) -> list[dict[str, Any]]:
    """The messages of one frame: itself, or a batch's items (docs/api-live.md)."""
    decoded: dict[str, Any] = json.loads(frame)
    if decoded.get("type") == "batch":
        items: list[dict[str, Any]] = decoded["items"]
        assert len(items) >= 2, decoded  # (one message goes alone)
        return items
    return [decoded]


class Live:
    """One socket: ``send`` a message, the ``next`` message (decoded, a batch's one by one),
    ``until`` a message of a type; ``frame`` reads one whole frame."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.waiting: list[dict[str, Any]] = []  # a batch's messages not yet read

    def send(self, **message: Any) -> None:
        self.connection.send(json.dumps(message))

    def frame(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The messages of the next frame (none may wait from an earlier one)."""
        assert not self.waiting, self.waiting
        return messages_of(self.connection.recv(timeout=timeout))

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if not self.waiting:
            self.waiting = messages_of(self.connection.recv(timeout=timeout))
        return self.waiting.pop(0)

    def until(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next message of type ``kind`` (with these fields), skipping others."""
        while True:
            message = self.next(timeout)
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message

    def subscribe(self, sub_id: str, topic: str, **scope: str) -> None:
        self.send(op="subscribe", id=sub_id, topic=topic, **scope)
        answer = self.next()
        assert answer == {"type": "subscribed", "id": sub_id}, answer

    def close(self) -> None:
        self.connection.close()


class LiveSockets:
    """Opens sockets for a test (``open``) and closes them after it (``close_all``)."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def open(self, server: Any, *, token: str | None = None, subprotocol: bool = False) -> Live:
        """A socket as the admin (or with ``token``): as a header, or as a browser's
        subprotocols."""
        token = admin_token(server) if token is None else token
        if subprotocol:
            opening = connect(
                live_url(server),
                subprotocols=["bearer", token],  # type: ignore[list-item]
                open_timeout=TIMEOUT,
            )
        else:
            opening = connect(
                live_url(server),
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=TIMEOUT,
            )
        return Live(self._stack.enter_context(opening))

    def close_all(self) -> None:
        self._stack.close()
