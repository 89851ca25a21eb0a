"""The HTTP server the platform runs (uvicorn, guarded: ``http_guard``) around the app that
``http.build_http_app`` builds."""

from __future__ import annotations

import asyncio
import logging

import uvicorn
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from hongshan.api.auth import refused_upgrades
from hongshan.config import Settings
from hongshan.http_guard import HttpGuard, guarded_protocol, guarded_websocket

log = logging.getLogger("hongshan")


def served_in_turn(app: ASGIApp) -> ASGIApp:
    """``app`` beginning each request on the loop's next turn, behind what already waits.

    uvicorn starts a task for each request it reads; on uvloop the new task's first step runs
    ahead of the steps of requests already under way, so under load new requests are served
    first and older ones wait: with fifty clients the slowest answers (p99) came 3 to 10 times
    later than on asyncio's loop at the same rate (bench.api: the device list 84-105 ms against
    29 ms). One yield at the start puts a new request behind them (in process, uvloop: 87-166
    ms -> 24-32 ms). On asyncio's loop it changes nothing but a turn."""

    async def in_turn(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0)
        await app(scope, receive, send)

    return in_turn


class HttpServer:
    """uvicorn, started and stopped by the platform (``startup``/``shutdown``) rather than by
    its own ``serve``, which would take over SIGINT and SIGTERM for itself. Owns the listening
    socket and the connections' bounds; knows nothing of the routes."""

    def __init__(
        self,
        app: Litestar,
        settings: Settings,
        *,
        name: str = "http",
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        """``name``, ``host``, ``port``: another listener than the API's (the metrics')."""
        self._name = name
        self._host = settings.host if host is None else host
        guard = HttpGuard(
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            keepalive_timeout=settings.http_keepalive_timeout,
            send_timeout=settings.http_send_timeout,
            max_per_address=settings.http_max_connections_per_address,
        )
        self._config = uvicorn.Config(
            served_in_turn(refused_upgrades(app)),
            host=self._host,
            port=settings.http_port if port is None else port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,  # keep the platform's logging as configured
            http=guarded_protocol(guard),
            # the live API (/api/ws); MQTT over WebSocket is the broker's own listener
            ws=guarded_websocket(guard),
            ws_max_size=settings.ws_max_message_size,
            ws_ping_interval=settings.ws_ping_interval,
            ws_ping_timeout=settings.ws_ping_timeout,
            ws_per_message_deflate=False,  # (each frame compressed per socket: the feed's work)
            # the client is the peer: X-Forwarded-For is believed of trusted_proxies only, by
            # the audit trail (uvicorn would believe any local peer's)
            proxy_headers=False,
            timeout_keep_alive=max(1, round(settings.http_keepalive_timeout)),  # (guarded too)
        )
        self.guard = guard  # (tests read its count of connections per address)
        self._server: uvicorn.Server | None = None
        self.port = 0  # once started: the port it listens on

    async def start(self) -> None:
        config = self._config
        self._server = server = uvicorn.Server(config)
        config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup()
        for listening in server.servers:
            self.port = listening.sockets[0].getsockname()[1]
        log.info("listening %s %s:%d", self._name, self._host, self.port)

    async def shutdown(self) -> None:
        """Stop listening, wait for the requests in flight, close."""
        if self._server is not None:
            await self._server.shutdown()
