"""A real SMTP server for e-mail in tests (aiosmtpd), on 127.0.0.1, port 0, in a thread."""

from __future__ import annotations

import email
import email.policy
import queue
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class _AnyPort(Controller):
    """aiosmtpd's Controller, bound to a port the kernel picks: its readiness check connects
    to ``self.port``, so that is set to the bound one first."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class MailReceiver:
    """Keeps every message delivered (with its envelope's recipients)."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[list[str], EmailMessage]] = queue.Queue()
        received = self.messages

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                received.put((list(envelope.rcpt_tos), parsed))
                return "250 OK"

        self._controller = _AnyPort(Handler(), hostname="127.0.0.1", port=0)
        self._controller.start()

    @property
    def port(self) -> int:
        port: int = self._controller.port
        return port

    def get(self, timeout: float = 10) -> tuple[list[str], EmailMessage]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no mail within {timeout} s") from None

    def close(self) -> None:
        self._controller.stop()
