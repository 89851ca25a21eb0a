"""MQTT over TLS: a listener that admits each connection as it is accepted, then lets it
make its TLS handshake and hands it to an ``MQTTConnection``.

``create_server(ssl=...)`` would be shorter, but asyncio and uvloop tell the protocol of
nothing before the TLS handshake is done: a client stalled in the handshake would not count
against its address's max_pending_connections_per_address (see ``admission``). Nor does
``start_tls`` on an accepted plain transport do: uvloop starts reading only after
``connection_made`` returns, so the ClientHello can arrive before ``start_tls`` has taken the
transport over, and is lost. So this listener accepts the sockets itself (``sock_accept``),
admits each by its peer's address, and only then gives it to the loop with
``connect_accepted_socket(ssl=...)``: connect_timeout, counted from the accept, bounds the
handshake and the CONNECT after it together.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

from hongshan.broker.admission import Admission
from hongshan.broker.connection import MQTTConnection

if TYPE_CHECKING:
    from hongshan.broker.server import Broker

log = logging.getLogger("hongshan.broker")

# seconds before accepting again when the process is out of descriptors (asyncio's own
# servers wait as long: constants.ACCEPT_RETRY_DELAY)
ACCEPT_RETRY_DELAY = 1.0
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class TlsListener:
    """One listening socket for MQTT over TLS. Owns the socket, its accept loop and the
    handshakes under way; a connection whose handshake is done is its ``MQTTConnection``'s."""

    def __init__(self, broker: Broker, context: ssl.SSLContext) -> None:
        self._broker = broker
        self._context = context
        self._socket: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Future[Any]] = set()

    async def open(self, host: str, port: int, backlog: int = 4096) -> int:
        """Bind and start accepting; the port bound (``port`` 0: a free one)."""
        loop = asyncio.get_running_loop()
        family, _, _, _, address = (
            await loop.getaddrinfo(
                host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        )[0]
        listening = socket.create_server(address[:2], family=family, backlog=backlog)
        listening.setblocking(False)
        self._socket = listening
        self._accepting = loop.create_task(self._accept(listening), name="tls accept")
        bound: int = listening.getsockname()[1]
        return bound

    def close(self) -> None:
        """Stop accepting, and end the handshakes under way (connections made go on)."""
        if self._accepting is not None:
            self._accepting.cancel()
            self._accepting = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        for handshake in list(self._handshakes):
            handshake.cancel()

    async def _accept(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                accepted, peer = await loop.sock_accept(listening)
            except OSError as exc:
                if exc.errno not in _OUT_OF_DESCRIPTORS:
                    log.debug("TLS listener: accept failed: %s", exc)  # (the peer gave up)
                    continue
                log.error("TLS listener: cannot accept (%s); trying again in a second", exc)
                await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            admission = None
            if isinstance(peer, tuple) and len(peer) >= 2:
                admission = self._broker.admit(peer[0])
                if admission is None:
                    accepted.close()
                    continue
            self._handshake(accepted, admission)

    def _handshake(self, accepted: socket.socket, admission: Admission | None) -> None:
        """The loop makes the TLS handshake, within what is left of connect_timeout, and then
        the connection; if it fails (or the listener closes first), the socket is closed and
        its address's count given back."""
        loop = asyncio.get_running_loop()
        taken: list[MQTTConnection] = []  # once made, the loop's transport owns the socket

        def connection() -> MQTTConnection:
            taken.append(MQTTConnection(self._broker, "tls", admission))
            return taken[0]

        timeout = self._broker.settings.connect_timeout
        if admission is not None:
            timeout = max(admission.time_left(timeout), 0.001)
        handshake = asyncio.ensure_future(
            loop.connect_accepted_socket(
                connection, accepted, ssl=self._context, ssl_handshake_timeout=timeout
            )
        )
        self._handshakes.add(handshake)

        def done(handshake: asyncio.Future[Any]) -> None:
            self._handshakes.discard(handshake)
            failure = None if handshake.cancelled() else handshake.exception()
            if failure is None and not handshake.cancelled():
                return  # (the MQTTConnection holds the admission now)
            if not taken:  # (else the loop has closed its transport, and the socket)
                accepted.close()
            if admission is not None:
                admission.release()
            if isinstance(failure, OSError):  # failed, timed out or cut short by the peer
                log.debug("TLS handshake failed: %s", failure)
            elif failure is not None:
                log.error("TLS handshake failed", exc_info=failure)

        handshake.add_done_callback(done)
