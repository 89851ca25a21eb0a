"""The one place where components are built and wired: configuration in, running platform out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from hongshan.api.dependencies import Health, Services
from hongshan.api.token import TOKEN_FILE, load_or_create_token
from hongshan.broker.auth import AllowAll, AllowAnonymous, Authenticator, Authorizer
from hongshan.broker.server import Broker
from hongshan.bus.local import LocalBus
from hongshan.config import Settings
from hongshan.dialects import DIALECTS, protocol_of
from hongshan.dialects.access import DialectAccess, DialectLogins
from hongshan.dialects.alink import desired, gateway, shadows
from hongshan.dialects.alink.dialect import AlinkDialect
from hongshan.dialects.alink.plugin import Alink
from hongshan.dialects.port import Dialect, DialectNeeds
from hongshan.errors import ConfigError
from hongshan.http import build_http_app
from hongshan.http_guard import HttpGuard, guarded_protocol
from hongshan.identity.acl import AclFile
from hongshan.identity.passwords import PasswordFileAuthenticator, read_users
from hongshan.identity.secret_box import SecretBox, load_or_create_key
from hongshan.messages import DeviceRef, StatusChanged
from hongshan.pipeline.history import HistoryStage
from hongshan.pipeline.uplink import stages_of_a_town
from hongshan.private_file import private_data_dir
from hongshan.services.commands import DeviceCommands
from hongshan.services.presence import DeviceSessions
from hongshan.store.history.retention import Retention
from hongshan.store.history.sqlite import SQLiteHistory

if TYPE_CHECKING:
    from hongshan.store.history.postgres import PostgresHistory
from hongshan.store.registry.store import SQLRegistry
from hongshan.store.sqlite.broker_state import SQLiteBrokerState
from hongshan.twin.properties import PropertyTwin

log = logging.getLogger("hongshan")

PROPERTY_SAVE_INTERVAL = 1.0  # seconds between saves of the latest property values
ANONYMOUS_WARNING = (
    "ANONYMOUS ACCESS IS ON (--allow-anonymous): any client that can reach this server may "
    "connect without a password. Use it for a sandbox only."
)


def build_access(settings: Settings) -> tuple[Authenticator, Authorizer]:
    """Who may connect and what they may do, from the users and ACL files (people and
    applications; the dialects are asked for their devices before these)."""
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
        self.registry: SQLRegistry
        self.history: SQLiteHistory | PostgresHistory
        self.broker_state: SQLiteBrokerState  # (health asks it how its writes go)
        self._closing = contextlib.AsyncExitStack()  # what started, stopped in reverse
        self.dialects: list[Dialect] = []
        self.twin = PropertyTwin()
        self.sessions: DeviceSessions  # (all offline at start: ``_after_restart``)
        self.admin_token = ""
        self.bus: LocalBus
        self.commands: DeviceCommands

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever did start is closed again
            raise

    async def _start(self) -> None:
        settings = self.settings
        data_dir = Path(settings.data_dir)
        # history and retained payloads are nobody else's to read (the token and key neither)
        databases = ["hongshan.db"]
        databases += [] if settings.registry_url else ["registry.db"]
        databases += [] if settings.history_url else ["history.db"]
        files = [TOKEN_FILE] if settings.secret_key_file else [TOKEN_FILE, "secret.key"]
        tightened = await asyncio.to_thread(private_data_dir, data_dir, databases, files)
        if tightened:
            log.warning(
                "%s: group or others could read %s; made this user's alone (0700/0600)",
                data_dir,
                ", ".join(tightened),
            )
        self.admin_token = await asyncio.to_thread(load_or_create_token, data_dir)
        history_file = data_dir / "history.db"
        try:
            zoneinfo.ZoneInfo(settings.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"time_zone: {settings.time_zone!r} is not a time zone (such as Asia/Shanghai)"
            ) from None
        retention = Retention(
            raw_days=settings.history_raw_days, rollup_days=settings.history_rollup_days
        )
        self.history = history = await _open_history(settings, retention, history_file)
        self._closing.push_async_callback(history.close)  # (after the broker: pushed first)
        history.start()
        pipeline = stages_of_a_town(twin=self.twin, history=HistoryStage(history))
        key_file = Path(settings.secret_key_file or data_dir / "secret.key")
        key = await asyncio.to_thread(load_or_create_key, key_file)
        registry_url = settings.registry_url or f"sqlite:///{data_dir / 'registry.db'}"
        self.registry = registry = await SQLRegistry.open(registry_url, SecretBox(key))
        self._closing.push_async_callback(registry.close)
        self.bus = bus = LocalBus(pipeline, protocol_of=protocol_of(registry))
        self.sessions = DeviceSessions(registry, bus)
        self.twin.restore(await registry.properties.load())
        await self._after_restart()
        saver = asyncio.get_running_loop().create_task(self._save_properties())
        self._closing.push_async_callback(self._stop_saving, saver)
        registry.on_device_deleted.append(self.twin.forget)
        registry.on_device_deleted.append(self.sessions.forget)
        needs = DialectNeeds(
            registry=registry,
            bus=bus,
            sessions=self.sessions,
            taken=lambda device, key: history.add_taken(device, key, _now_ms()),
            was_taken=history.was_taken,
            settings=settings,
        )
        self.dialects = [await build(needs) for _, build in DIALECTS]
        people, acl = build_access(settings)
        self.broker_state = store = SQLiteBrokerState(
            data_dir / "hongshan.db", loop=asyncio.get_running_loop()
        )
        self.broker = broker = Broker(
            settings,
            authenticator=DialectLogins(self.dialects, people),
            authorizer=DialectAccess(self.dialects, acl),
            store=store,
        )
        self.commands = DeviceCommands(bus, registry.thing_model_of, broker.background)
        for dialect in self.dialects:
            bus.serve(dialect.name, dialect.send)
            dialect.attach(broker)
        self._closing.push_async_callback(broker.stop)
        await broker.start()
        self.ports.update(self.broker.ports)
        config = uvicorn.Config(
            build_http_app(self._http_services()),
            host=settings.host,
            port=settings.http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            log_config=None,  # keep the platform's logging as configured
            http=guarded_protocol(
                HttpGuard(
                    header_timeout=settings.http_header_timeout,
                    body_timeout=settings.http_body_timeout,
                    keepalive_timeout=settings.http_keepalive_timeout,
                    send_timeout=settings.http_send_timeout,
                    max_per_address=settings.http_max_connections_per_address,
                )
            ),
            ws="none",  # (the API has no WebSocket route; MQTT over WebSocket is the broker's)
            timeout_keep_alive=max(1, round(settings.http_keepalive_timeout)),  # (guarded too)
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

    def _http_services(self) -> Services:
        """What the HTTP side is given (each handler names what it uses)."""
        health = Health(
            ready=lambda: self.ready,
            listeners=self.ports,
            broker=self.broker,
            stores={
                "history": self.history,
                "registry": self.registry,
                "broker_state": self.broker_state,
            },
        )
        return Services(
            admin_token=self.admin_token,
            registry=self.registry,
            history=self.history,
            twin=self.twin,
            commands=self.commands,
            shadows=self.shadows,
            desired_values=self.desired,
            gateways=self.gateways,
            health=health,
        )

    async def _after_restart(self) -> None:
        """What a crash (kill -9, a power cut) left behind, put right before devices connect:
        the latest values as the history committed them (the registry's copy is saved every
        second), and no device online that is not connected, each one that was logged offline
        at this start ("server restarted") unless its log already ended offline."""
        registry, history = self.registry, self.history
        latest = await history.latest_values()
        changed = self.twin.reconcile(
            {device: values for device, values in latest.items() if registry.device_known(*device)}
        )
        last = await history.last_status()
        stale = set(registry.online_devices())
        stale.update(device for device, state in last.items() if state == "online")
        now = _now_ms()
        for device in sorted(stale):
            if not registry.device_known(*device):
                continue  # (deleted since: its history stays, it has no status)
            registry.device_disconnected(*device)
            if last.get(device) != "offline":
                gone = StatusChanged(
                    device=DeviceRef(*device),
                    received=now,
                    online=False,
                    reason="server restarted",
                )
                self.bus.publish(gone)
        if stale:
            await history.committed()  # (said before anyone can ask)
        if changed or stale:
            log.info(
                "at start: %d latest values taken from the history, %d devices set offline",
                changed,
                len(stale),
            )

    async def stop(self) -> None:
        self.ready = False
        if self._http is not None:
            for dialect in self.dialects:
                dialect.stop_calls()  # answered 503 now: the HTTP shutdown waits for requests
            await self._http.shutdown()
        await self._closing.aclose()

    async def _save_properties(self) -> None:
        """Every second, the latest values of the devices that posted (``PropertyTwin``)."""
        while True:
            await asyncio.sleep(PROPERTY_SAVE_INTERVAL)
            self.registry.properties.save(self.twin.take_changes())

    async def _stop_saving(self, saver: asyncio.Task[None]) -> None:
        saver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await saver
        self.registry.properties.save(self.twin.take_changes())

    # The Alink dialect's own services, which the HTTP side (device shadow, desired values,
    # a sub-device's gateway) and the Alibaba SDK tests reach through the platform.

    def _alink(self) -> Alink:
        return next(dialect for dialect in self.dialects if isinstance(dialect, Alink))

    @property
    def alink(self) -> AlinkDialect:
        return self._alink().things

    @property
    def shadows(self) -> shadows.ShadowService:
        return self._alink().shadows

    @property
    def desired(self) -> desired.DesiredService:
        return self._alink().desired

    @property
    def gateways(self) -> gateway.GatewayService:
        return self._alink().gateways


async def _open_history(
    settings: Settings, retention: Retention, default_file: Path
) -> SQLiteHistory | PostgresHistory:
    """The history where ``history_url`` says: PostgreSQL, or the SQLite file by default."""
    url = settings.history_url
    if url is None:
        return await asyncio.to_thread(
            SQLiteHistory,
            default_file,
            loop=asyncio.get_running_loop(),
            retention=retention,
            time_zone=settings.time_zone,
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"history_url: expected postgresql://…, got {url!r}")
    try:
        from hongshan.store.history.postgres import PostgresHistory
    except ImportError as exc:  # asyncpg is in the postgres extra
        raise ConfigError(
            f"history_url: {exc}; install hongshan[postgres] for a PostgreSQL history"
        ) from None
    return await PostgresHistory.open(url, retention=retention, time_zone=settings.time_zone)


def _now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Platform]:
    """A started platform for the length of a ``with`` block (tests, embedding)."""
    platform = Platform(settings)
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


def tune_gc() -> None:
    """What exists once started (modules, the registry's caches) lives as long as the process:
    frozen out of the cyclic collector's sight. And its youngest generation is collected every
    50,000 allocations rather than 700: a town's connections and sessions are many long-lived
    objects, and with the default thresholds the full collections they trigger scan them all
    again and again while devices connect (the signed-CONNECT benchmark spent about a fifth of
    its time there)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT: stop accepting, disconnect clients, flush, return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as platform:
        tune_gc()
        ports = ", ".join(f"{name} {port}" for name, port in platform.ports.items())
        log.info("hongshan ready (%s), data in %s", ports, settings.data_dir)
        await stop.wait()
        log.info("shutting down")
