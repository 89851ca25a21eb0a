"""Bounds on what an HTTP client may hold: time to send a request's head and its body, time a
kept-alive connection may sit idle, and connections per address (slowloris).

uvicorn bounds none of these by itself: its keep-alive timer starts only after a response and
stops at the first byte that follows, so a client that sends a header line every few seconds
(or nothing at all) keeps its connection, and its file descriptor, for ever; two hundred of them
starved the broker and ``/api/health`` of descriptors. ``guarded_protocol`` is uvicorn's
httptools protocol (``Config(http=...)``) with one deadline per connection, by phase::

    connected ──first byte──▶ head ──headers complete──▶ body ──message complete──▶ responding
       │ header_timeout        │ header_timeout           │ body_timeout              │ (the app's)
       ▼                       ▼                          ▼                           ▼
     closed                  408, closed              408 (or closed if the    idle ──▶ head
                                                      response has begun)      keepalive_timeout

The head's time runs from the connection (the first request) or from the request's first byte
(later ones); bytes between requests that begin none (blank lines) do not restart the idle time.
A connection over the per-address cap is answered 503 at once and closed. A connection
upgraded to a WebSocket (the live API) keeps its place in its address's count until it closes
(``guarded_websocket``: uvicorn's sans-IO ``websockets`` protocol).

Sending has a deadline of its own, in any phase and on a WebSocket too: a client that takes
nothing of what is being sent to it for ``send_timeout`` seconds is cut off (nginx's
``send_timeout``: the time between two reads of the client, not for the whole response).
Without it a client that asked for a large CSV and never read held its connection, and the
app's task, for ever: uvicorn waits for the transport to drain, and a close waits for the
buffer to be written. Taking something is seen as the transport's write buffer shrinking
while the app waits for it to drain (asyncio's
``pause_writing``), or after the response's last bytes were handed to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
from collections import Counter
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from hongshan.failure_log import FailureLog

log = logging.getLogger("hongshan.http")

LOG_INTERVAL = 60.0  # seconds: at most one line per reason per interval about connections cut


class Phase(enum.Enum):
    CONNECTED = "connected"  # nothing of a request yet (the first one's head time runs)
    HEAD = "head"
    BODY = "body"
    RESPONDING = "responding"
    IDLE = "idle"  # between requests (keep-alive)


class HttpGuard:
    """The limits and what is shared between connections: how many each address holds, and
    how many were cut off since the last line logged. Owns no connection; never closes one."""

    def __init__(
        self,
        *,
        header_timeout: float,
        body_timeout: float,
        keepalive_timeout: float,
        max_per_address: int,
        send_timeout: float = 60.0,
    ) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self.send_timeout = send_timeout
        self.max_per_address = max_per_address
        self.held: Counter[str] = Counter()  # address -> open connections
        self._cut = FailureLog(
            log, "http: connections cut off", every=LOG_INTERVAL, level=logging.WARNING
        )

    def admit(self, address: str) -> bool:
        if self.held[address] >= self.max_per_address:
            self.cut_off("over the per-address cap", address)
            return False
        self.held[address] += 1
        return True

    def release(self, address: str) -> None:
        self.held[address] -= 1
        if self.held[address] <= 0:
            del self.held[address]

    def cut_off(self, why: str, address: str) -> None:
        """Noted; each reason said at most once per ``LOG_INTERVAL`` (a flood must not flood
        the log), with how many more came meanwhile."""
        self._cut.failed(f"{why} (the last from {address})", kind=why)


def _response(status: int, title: str, detail: str) -> bytes:
    body = msgspec.json.encode(
        {"type": "about:blank", "title": title, "status": status, "detail": detail}
    )
    head = (
        f"HTTP/1.1 {status} {title}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _SendWatch:
    """One connection's send deadline: started when its transport holds bytes the client has
    not taken, stopped when it takes them; once it took nothing for ``send_timeout``, the
    connection is reset. Owns the timer, never the connection."""

    def __init__(
        self,
        guard: HttpGuard,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.BaseTransport,
        address: str | None,
    ) -> None:
        self._guard = guard
        self._loop = loop
        self._transport: Any = transport
        self._address = address or ""
        self._deadline: asyncio.TimerHandle | None = None
        self._unsent = 0  # what was unsent when the deadline was set

    def start(self) -> None:
        if self._deadline is not None:
            return
        unsent = self._unsent_now()
        if unsent:
            self._unsent = unsent
            self._deadline = self._loop.call_later(self._guard.send_timeout, self._expired)

    def stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _unsent_now(self) -> int:
        size: int = self._transport.get_write_buffer_size()
        return size

    def _expired(self) -> None:
        self._deadline = None
        unsent = self._unsent_now()
        if not unsent:
            return
        if unsent < self._unsent:  # it took some: it has another send_timeout
            self.start()
            return
        self._guard.cut_off("taking nothing of a response", self._address)
        transport = self._transport
        # A reset, not a FIN after the unsent bytes: the kernel would otherwise keep the
        # closed socket and its full buffers for minutes (nginx's reset_timedout_connection).
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()  # (a close would wait for the buffer to be written)


def guarded_protocol(guard: HttpGuard) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol held to ``guard``'s limits."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        phase = Phase.CONNECTED
        address: str | None = None  # counted against its address while set
        deadline: asyncio.TimerHandle | None = None
        send_watch: _SendWatch | None = None  # (made when first needed)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = self.client[0] if self.client else ""
            if not guard.admit(address):
                limit = guard.max_per_address
                detail = f"this address holds {limit} connections already, the most allowed"
                transport.write(_response(503, "Service Unavailable", detail))
                transport.close()
                return
            self.address = address
            self._arm(guard.header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self.send_watch is not None:
                self.send_watch.stop()
            if self.address is not None:
                guard.release(self.address)
                self.address = None
            super().connection_lost(exc)

        def handle_websocket_upgrade(self) -> None:
            # The connection leaves this protocol for ``guarded_websocket``'s, which takes
            # over its place in the address's count (and gives it back when it closes).
            self._disarm()
            if self.send_watch is not None:
                self.send_watch.stop()
            if self.address is None:  # (not admitted: closed already)
                return
            self.address = None
            super().handle_websocket_upgrade()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self.phase is not Phase.CONNECTED:  # (the first head's time runs from connect)
                self._arm(guard.header_timeout)
            self.phase = Phase.HEAD

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self.phase = Phase.BODY
            self._arm(guard.body_timeout)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.phase = Phase.RESPONDING
            self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # (a pipelined request may be under way, or its head arriving: its phase stands)
            if self.phase is Phase.RESPONDING and (
                self.cycle is None or self.cycle.response_complete
            ):
                self.phase = Phase.IDLE
                self._arm(guard.keepalive_timeout)
            # (the last bytes may wait in the transport's buffer, uvicorn waits no more for
            # them; a close too waits for them to be written)
            self._send_watch().start()

        def pause_writing(self) -> None:
            super().pause_writing()
            self._send_watch().start()

        def resume_writing(self) -> None:
            super().resume_writing()
            self._send_watch().stop()  # (the client took what was above the low mark)

        def _send_watch(self) -> _SendWatch:
            if self.send_watch is None:
                self.send_watch = _SendWatch(guard, self.loop, self.transport, self.address)
            return self.send_watch

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self.deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _expired(self) -> None:
            self.deadline = None
            transport: Any = self.transport
            if transport.is_closing():
                return
            phase = self.phase
            if phase is Phase.HEAD or phase is Phase.CONNECTED:
                seconds, what = guard.header_timeout, "the request's head"
            elif phase is Phase.BODY:
                seconds, what = guard.body_timeout, "the request's body"
            else:  # idle: the keep-alive time is over, nothing was asked
                transport.close()
                return
            guard.cut_off(f"too slow with {what}", self.address or "")
            cycle = self.cycle
            answered = phase is Phase.BODY and cycle is not None and cycle.response_started
            if phase is not Phase.CONNECTED and not answered:
                # RFC 9110 15.5.9: 408, the server closes the connection
                detail = f"{what} did not arrive within {seconds:g} s"
                transport.write(_response(408, "Request Timeout", detail))
                if cycle is not None:
                    cycle.disconnected = True  # (the app's answer, if any, is not written)
            transport.close()

    return GuardedHttpProtocol


def guarded_websocket(guard: HttpGuard) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's sans-IO ``websockets`` protocol held to ``guard``'s limits: the connection it
    takes over from ``guarded_protocol`` stays counted against its address until it closes,
    and a client that takes nothing of what is sent to it for ``send_timeout`` is reset (a
    socket whose client stopped reading cannot even be sent its close frame). Its keep-alive
    is uvicorn's: a ping every ``ws_ping_interval``, closed 1011 without a pong in time."""

    class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
        address: str | None = None  # counted against its address while set
        send_watch: _SendWatch | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            # (admitted as an HTTP connection: the count goes on, it is not counted again)
            self.address = self.client[0] if self.client else ""
            self.send_watch = _SendWatch(guard, self.loop, transport, self.address)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.send_watch is not None:
                self.send_watch.stop()
            if self.address is not None:
                guard.release(self.address)
                self.address = None
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self.send_watch is not None:
                self.send_watch.start()

        def resume_writing(self) -> None:
            super().resume_writing()
            if self.send_watch is not None:
                self.send_watch.stop()

    return GuardedWebSocketProtocol
