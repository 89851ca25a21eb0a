"""MQTT over WebSocket (MQTT 5.0 section 6): binary frames, subprotocol ``mqtt``.

The ``websockets`` library runs the WebSocket side; an adapter makes the connection look like
the asyncio transport ``MQTTConnection`` already speaks to, so there is one MQTT code path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from hongshan.broker.connection import LINGER_SECONDS, MQTTConnection

if TYPE_CHECKING:
    from hongshan.broker.server import Broker

log = logging.getLogger("hongshan.broker")


class WebSocketTransport(asyncio.Transport):
    def __init__(self, ws: ServerConnection) -> None:
        super().__init__()
        self._ws = ws
        self._outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closing = False
        self.reading = asyncio.Event()
        self.reading.set()
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        try:
            while (data := await self._outgoing.get()) is not None:
                await self._ws.send(data)
        except ConnectionClosed:
            pass
        finally:
            await self._ws.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._ws.remote_address
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing:
            self._outgoing.put_nowait(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._outgoing.put_nowait(None)

    def pause_reading(self) -> None:
        self.reading.clear()

    def resume_reading(self) -> None:
        self.reading.set()

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._outgoing.qsize()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


async def serve_websocket(
    broker: Broker, host: str, port: int
) -> tuple[int, Callable[[], Coroutine[Any, Any, None]]]:
    async def handler(ws: ServerConnection) -> None:
        transport = WebSocketTransport(ws)
        protocol = MQTTConnection(broker, "ws")
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

    server = await serve(
        handler,
        host,
        port,
        subprotocols=["mqtt"],  # type: ignore[list-item]  # websockets' Subprotocol is a str
        # One frame may carry several MQTT packets; the decoder bounds each packet, this bounds
        # the frame.
        max_size=max(16 * broker.settings.max_packet_size, 1 << 20),
        compression=None,
        open_timeout=broker.settings.connect_timeout,
        close_timeout=LINGER_SECONDS,
    )
    bound = next(iter(server.sockets)).getsockname()[1]

    async def close() -> None:
        server.close()

    return bound, close
