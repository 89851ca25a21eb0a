"""The one place where components are built and wired: configuration in, running platform out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from hongshan.broker.auth import AllowAll, AllowAnonymous, Authenticator, Authorizer
from hongshan.broker.server import Broker
from hongshan.config import Settings
from hongshan.http import build_http_app
from hongshan.identity.acl import AclFile
from hongshan.identity.passwords import PasswordFileAuthenticator, read_users
from hongshan.store.sqlite.broker_state import SQLiteBrokerState

log = logging.getLogger("hongshan")

ANONYMOUS_WARNING = (
    "ANONYMOUS ACCESS IS ON (--allow-anonymous): any client that can reach this server may "
    "connect without a password. Use it for a sandbox only."
)


def build_access(settings: Settings) -> tuple[Authenticator, Authorizer]:
    authenticator: Authenticator
    if settings.password_file:
        authenticator = PasswordFileAuthenticator(
            read_users(settings.password_file), allow_anonymous=settings.allow_anonymous
        )
    elif settings.allow_anonymous:
        authenticator = AllowAnonymous()
    else:
        authenticator = PasswordFileAuthenticator({}, allow_anonymous=False)
        log.warning("no password_file and allow_anonymous is off: every client will be refused")
    if settings.allow_anonymous:
        log.warning(ANONYMOUS_WARNING)
    authorizer: Authorizer = AclFile.read(settings.acl_file) if settings.acl_file else AllowAll()
    return authenticator, authorizer


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = False
        self.ports: dict[str, int] = {}
        self._http: uvicorn.Server | None = None
        self.broker: Broker

    async def start(self) -> None:
        settings = self.settings
        data_dir = Path(settings.data_dir)
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        authenticator, authorizer = build_access(settings)
        store = SQLiteBrokerState(data_dir / "hongshan.db", loop=asyncio.get_running_loop())
        self.broker = Broker(
            settings, authenticator=authenticator, authorizer=authorizer, store=store
        )
        await self.broker.start()
        self.ports.update(self.broker.ports)
        config = uvicorn.Config(
            build_http_app(self),
            host=settings.host,
            port=settings.http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,  # keep the platform's logging as configured
        )
        self._http = uvicorn.Server(config)
        # startup() rather than serve(): serve() would take over SIGINT/SIGTERM for itself.
        config.load()
        self._http.lifespan = config.lifespan_class(config)
        await self._http.startup()
        for server in self._http.servers:
            self.ports["http"] = server.sockets[0].getsockname()[1]
        log.info("listening http %s:%d", settings.host, self.ports["http"])
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._http is not None:
            await self._http.shutdown()
        await self.broker.stop()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Platform]:
    """A started platform for the length of a ``with`` block (tests, embedding)."""
    platform = Platform(settings)
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT: stop accepting, disconnect clients, flush, return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as platform:
        ports = ", ".join(f"{name} {port}" for name, port in platform.ports.items())
        log.info("hongshan ready (%s), data in %s", ports, settings.data_dir)
        await stop.wait()
        log.info("shutting down")
