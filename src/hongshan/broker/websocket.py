"""MQTT over WebSocket (MQTT 5.0 section 6): binary frames, subprotocol ``mqtt``.

The ``websockets`` library runs the WebSocket side; an adapter makes the connection look like
the asyncio transport ``MQTTConnection`` already speaks to, so there is one MQTT code path. A
connection counts against its address's pending connections from the TCP accept, its
WebSocket handshake included (``admission``)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hongshan.broker.admission import Admission
from hongshan.broker.connection import LINGER_SECONDS, WRITE_HIGH_WATER, MQTTConnection

if TYPE_CHECKING:
    from hongshan.broker.server import Broker

log = logging.getLogger("hongshan.broker")


class WebSocketTransport(asyncio.Transport):
    """Writes become binary WebSocket messages, sent in order by one task. Like a TCP transport
    it tells its protocol to pause writing when too much waits to be sent (a stalled browser
    tab must not grow the server), and a close that the peer does not answer is cut short."""

    def __init__(self, ws: ServerConnection) -> None:
        super().__init__()
        self._ws = ws
        self._protocol: asyncio.BaseProtocol | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._wakeup = asyncio.Event()
        self._closing = False
        self.reading = asyncio.Event()
        self.reading.set()
        loop = asyncio.get_running_loop()
        self._sender = loop.create_task(self._send_loop())
        self._abort_timer: asyncio.TimerHandle | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self._protocol is not None
        return self._protocol

    async def _send_loop(self) -> None:
        try:
            while True:
                while not self._chunks:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                # packets need not line up with WebSocket messages (MQTT-6.0.0-2)
                data = b"".join(self._chunks)
                self._chunks.clear()
                await self._ws.send(data)
                self._buffered -= len(data)
                if self._paused and self._buffered <= WRITE_HIGH_WATER // 4:
                    self._paused = False
                    if self._protocol is not None:
                        self._protocol.resume_writing()
        except ConnectionClosed:
            pass
        finally:
            await self._ws.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._ws.remote_address
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._chunks.append(bytes(data))
        self._buffered += len(data)
        self._wakeup.set()
        if not self._paused and self._buffered > WRITE_HIGH_WATER:
            self._paused = True
            if self._protocol is not None:
                self._protocol.pause_writing()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._wakeup.set()
            self.reading.set()  # let the reading loop see the end
            self._abort_timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self.abort)

    def abort(self) -> None:
        self._closing = True
        self.reading.set()
        self._sender.cancel()
        self._ws.transport.abort()

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # WRITE_HIGH_WATER, as for TCP

    async def finished(self) -> None:
        """Wait for the last bytes and the closing handshake, at most LINGER_SECONDS."""
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), LINGER_SECONDS)
        except (TimeoutError, ConnectionClosed):
            self.abort()
        if self._abort_timer is not None:
            self._abort_timer.cancel()


def admitted_connection(broker: Broker) -> type[ServerConnection]:
    """websockets' server connection, admitted (or closed) at the TCP accept, before its
    WebSocket handshake: a client stalled in the handshake holds a socket like one that never
    sends CONNECT, and counts as one."""

    class AdmittedConnection(ServerConnection):
        admission: Admission | None = None  # handed to its MQTTConnection after the handshake

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # (starts the handshake: it sees the close)
            peer = transport.get_extra_info("peername")
            if isinstance(peer, tuple) and len(peer) >= 2:
                self.admission = broker.admit(peer[0])
                if self.admission is None:
                    transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            if self.admission is not None:  # (lost in the handshake; else a no-op)
                self.admission.release()

    return AdmittedConnection


async def serve_websocket(
    broker: Broker, host: str, port: int
) -> tuple[int, Callable[[], Coroutine[Any, Any, None]]]:
    async def handler(ws: ServerConnection) -> None:
        transport = WebSocketTransport(ws)
        protocol = MQTTConnection(broker, "ws", getattr(ws, "admission", None))
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        try:
            async for frame in ws:
                if isinstance(frame, str):
                    log.info("websocket client sent a text frame; MQTT needs binary (6.0)")
                    break
                protocol.data_received(frame)
                if transport.is_closing():
                    break
                await transport.reading.wait()
        except ConnectionClosed:
            pass
        finally:
            transport.close()
            protocol.connection_lost(None)
            await transport.finished()

    server = await serve(
        handler,
        host,
        port,
        subprotocols=["mqtt"],  # type: ignore[list-item]  # websockets' Subprotocol is a str
        # One frame may carry several MQTT packets; the decoder bounds each packet, this bounds
        # the frame.
        max_size=max(16 * broker.settings.max_packet_size, 1 << 20),
        compression=None,
        # (from the accept, as for every listener; what is left of it then bounds the CONNECT)
        open_timeout=broker.settings.connect_timeout,
        create_connection=admitted_connection(broker),
        close_timeout=LINGER_SECONDS,
    )
    bound = next(iter(server.sockets)).getsockname()[1]

    async def close() -> None:
        server.close()  # closes every WebSocket connection, each within close_timeout
        try:
            await asyncio.wait_for(server.wait_closed(), 2 * LINGER_SECONDS)
        except TimeoutError:
            log.warning("websocket listener: connections still open at shutdown")

    return bound, close
