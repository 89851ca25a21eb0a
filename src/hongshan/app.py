"""The one place where components are built and wired: configuration in, running platform out."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import uvicorn

from hongshan import messages as m
from hongshan.api.dependencies import Health, Services
from hongshan.api.token import TOKEN_FILE, load_or_create_token
from hongshan.broker.auth import AllowAll, AllowAnonymous, Authenticator, Authorizer, Client
from hongshan.broker.message import Message, Refused
from hongshan.broker.server import Broker
from hongshan.bus.local import LocalBus
from hongshan.config import Settings
from hongshan.dialects.alink import desired, gateway, ntp, ota, shadows
from hongshan.dialects.alink import dialect as alink
from hongshan.dialects.alink.device_auth import (
    DeviceAuthorizer,
    SignedConnectAuthenticator,
    device_client_id,
    device_of,
    registration_of,
)
from hongshan.dialects.alink.device_topics import (
    AUTO_SUBSCRIBE,
    DeviceTopics,
    auto_subscription_patterns,
)
from hongshan.dialects.alink.messages import MalformedMessage
from hongshan.errors import ConfigError, HongshanError
from hongshan.http import build_http_app
from hongshan.http_guard import HttpGuard, guarded_protocol
from hongshan.identity.acl import AclFile
from hongshan.identity.passwords import PasswordFileAuthenticator, read_users
from hongshan.identity.registration import REGISTER, device_token, token_client_id
from hongshan.identity.secret_box import SecretBox, load_or_create_key
from hongshan.mqtt.memo import TopicMemo
from hongshan.mqtt.reason_codes import ReasonCode
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
from hongshan.things.model import TopicClass
from hongshan.things.presence import Way
from hongshan.twin.properties import PropertyTwin

log = logging.getLogger("hongshan")

PROPERTY_SAVE_INTERVAL = 1.0  # seconds between saves of the latest property values
REGISTRATION_LINGER = 5.0  # seconds a registering device has to read its answer
ANONYMOUS_WARNING = (
    "ANONYMOUS ACCESS IS ON (--allow-anonymous): any client that can reach this server may "
    "connect without a password. Use it for a sandbox only."
)


# what a dialect tap answers for a payload its handler found malformed (answered already where
# it could be): refused, 0x99 Payload format invalid
NOT_ALINK = Refused(ReasonCode.PAYLOAD_FORMAT_INVALID)
CLOCK_SKEW_WARNING = (
    "device_clock_skew is not set: a device's signed CONNECT, or a gateway's signed sub-device "
    "login, is accepted whatever its timestamp, so one captured on the network can be replayed. "
    "Set it (300 s is recommended) once your devices sign the current time."
)


def build_access(settings: Settings) -> tuple[Authenticator, Authorizer]:
    """Who may connect and what they may do, from the users and ACL files (people and
    applications; devices are added in front of these by ``Platform``)."""
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
        self.alink: alink.AlinkDialect
        self.shadows: shadows.ShadowService
        self.gateways: gateway.GatewayService
        self.desired: desired.DesiredService
        self.twin = PropertyTwin()
        self.sessions: DeviceSessions  # (all offline at start: ``_after_restart``)
        self._auto_subscribed: set[str] = set()  # device client ids with _ss=1
        self._owners_changed = 0  # bumped when who receives automatic subscriptions changes
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
        self.bus = bus = LocalBus(pipeline, protocol_of=_protocol_of(registry))
        self.sessions = DeviceSessions(registry, bus)
        self.twin.restore(await registry.properties.load())
        await self._after_restart()
        saver = asyncio.get_running_loop().create_task(self._save_properties())
        self._closing.push_async_callback(self._stop_saving, saver)
        people, acl = build_access(settings)
        authenticator = SignedConnectAuthenticator(
            registry,
            fallback=people,
            max_clock_skew=settings.device_clock_skew,
            require_tls_for_securemode2=settings.require_tls_for_securemode2,
        )
        if settings.device_clock_skew is None:
            log.warning(CLOCK_SKEW_WARNING)
        authorizer = DeviceAuthorizer(self._topic_classes, acl)
        self.broker_state = store = SQLiteBrokerState(
            data_dir / "hongshan.db", loop=asyncio.get_running_loop()
        )
        self.broker = broker = Broker(
            settings, authenticator=authenticator, authorizer=authorizer, store=store
        )
        publish = broker.publish_from_server
        self.commands = DeviceCommands(bus, registry.thing_model_of, broker.background)
        self.alink = alink.AlinkDialect(
            thing_model=registry.thing_model_of,
            online=registry.is_online,
            publish=publish,
            bus=bus,
            speaks_for=lambda poster, pk, dn: self.gateways.carrier.get((pk, dn)) == poster,
            taken=lambda device, key: history.add_taken(device, key, _now_ms()),
            was_taken=history.was_taken,
        )
        bus.serve("alink", self.alink.send)
        bus.subscribe(self.alink.on_status, kinds=(m.StatusChanged,))
        self.shadows = shadows.ShadowService(
            await registry.shadows.load(),
            save=registry.shadows.save,
            publish=publish,
            online=registry.is_online,
        )
        self.gateways = gateway.GatewayService(
            registry,
            self,
            publish,
            online=registry.is_online,
            send_to=lambda device, topic, payload: broker.send_to(
                device_client_id(*device), topic, payload, qos=0
            ),
            max_clock_skew=settings.device_clock_skew,
        )
        self.desired = desired.DesiredService(
            await registry.desired.load(),
            save=registry.desired.save,
            publish=publish,
            push=lambda pk, dn, values: self.commands.push_desired(m.DeviceRef(pk, dn), values),
            online=registry.is_online,
        )
        self.sessions.on_online.append(lambda device: self.desired.device_online(*device))
        ntp_service = ntp.NtpService(publish)
        firmware = ota.FirmwareReports(
            lambda pk, dn, versions: registry.update_device(pk, dn, firmware=versions)
        )
        for topic_filter in alink.TAPS:
            broker.tap(topic_filter, self._alink_tap)
        for taps, handler in (
            (shadows.TAPS, self.shadows.on_message),
            (gateway.TAPS, self.gateways.on_message),
            (desired.TAPS, self.desired.on_message),
            (ntp.TAPS, ntp_service.on_message),
            (ota.TAPS, firmware.on_message),
        ):
            for topic_filter in taps:
                broker.tap(topic_filter, _from_devices(handler))
        for topic_filter, pk_at, dn_at in auto_subscription_patterns():
            # (seven patterns: 2 MiB of topic names each holds a town's 10,000 devices' topics)
            known: TopicMemo[tuple[int, str | None]] = TopicMemo(65_536, 2 * 1024 * 1024)
            resolve = functools.partial(self._auto_subscriber, pk_at, dn_at, known)
            broker.derive(topic_filter, resolve)
        broker.on_connected.append(self._device_connected)
        broker.on_disconnected.append(self._device_disconnected)
        registry.on_device_disabled.append(self._cut_off)
        registry.on_device_deleted.append(self._forget)
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
                gone = m.StatusChanged(
                    device=m.DeviceRef(*device),
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
            self.alink.stop_calls()  # answered 503 now: the HTTP shutdown waits for requests
            await self._http.shutdown()
        await self._closing.aclose()

    def _alink_tap(self, message: Message) -> bool | Awaitable[None] | Refused | None:
        """A device's Alink message; a QoS 1 or 2 one is acknowledged once what it said is
        in the history (group commit: a few milliseconds), a resend once its first copy is.
        A payload that is no Alink message is refused: 0x99 Payload format invalid."""
        answer = self.alink.on_message(message.topic, message.payload, message.qos)
        if answer is True:
            return True
        if isinstance(answer, MalformedMessage):
            return NOT_ALINK
        return answer or None

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

    # -- devices ----------------------------------------------------------------------------

    def _topic_classes(self, product_key: str) -> tuple[TopicClass, ...]:
        view = self.registry.product_view(product_key)
        return view.topic_classes if view is not None else ()

    def _device_connected(self, client: Client, address: str) -> None:
        registering = registration_of(client)
        if registering is not None:
            task = asyncio.ensure_future(self._register(client.client_id, *registering))
            self.broker.background(task)
            return
        device = device_of(client)
        if device is not None:
            auto = AUTO_SUBSCRIBE in client.labels
            if auto != (client.client_id in self._auto_subscribed):
                self._owners_changed += 1
                if auto:
                    self._auto_subscribed.add(client.client_id)
                else:
                    self._auto_subscribed.discard(client.client_id)
            self.sessions.came(device, Way.CONNECTION, address)

    def _device_disconnected(self, client: Client, why: str) -> None:
        device = device_of(client)
        if device is not None:
            self.gateways.gateway_gone(device)
            self.sessions.went(device, Way.CONNECTION, why)  # (a gateway may still carry it)

    async def _register(self, client_id: str, pk: str, dn: str, auth_type: str) -> None:
        """Answer a device's dynamic registration on its own connection (identity.registration),
        then close it if the device does not (the SDKs do)."""
        loop = asyncio.get_running_loop()
        this = self.broker.connection_of(client_id)
        linger = functools.partial(self.broker.disconnect_client, client_id, 0, only=this)
        loop.call_later(REGISTRATION_LINGER, linger)
        try:
            if auth_type == REGISTER:
                device = await self.registry.get_device(pk, dn, with_secret=True)
                topic, answer = (
                    "/ext/register",
                    {
                        "productKey": pk,
                        "deviceName": dn,
                        "deviceSecret": device.device_secret,
                    },
                )
            else:
                if not self.registry.device_known(pk, dn):
                    await self.registry.create_device(pk, dn)
                credentials = await self.registry.credentials(pk, dn)
                assert credentials is not None
                token_id = token_client_id(pk, dn)
                topic, answer = (
                    "/ext/regnwl",
                    {
                        "clientId": token_id,
                        "productKey": pk,
                        "deviceName": dn,
                        "deviceToken": device_token(credentials.device_secret, token_id),
                    },
                )
        except HongshanError as exc:  # a device name Alibaba's rules refuse, say
            log.info("registration of %s&%s refused: %s", dn, pk, exc)
            self.broker.disconnect_client(client_id, ReasonCode.NOT_AUTHORIZED)
            return
        log.info("registered %s&%s (%s)", dn, pk, auth_type)
        # QoS 0: sent now or never, so a secret is never queued in the broker's store
        self.broker.send_to(client_id, topic, msgspec.json.encode(answer), qos=0)

    def _auto_subscriber(
        self,
        pk_at: int,
        dn_at: int,
        known: TopicMemo[tuple[int, str | None]],
        topic: str,
    ) -> str | None:
        """Who receives ``topic`` by Alibaba's automatic subscriptions: the gateway carrying
        the device it names, else that device if its SDK asked for them (``_ss=1``). Its
        session, persistent ones included, keeps them until it connects without asking.
        Answers are remembered per topic (``known``, bounded by its topics' bytes: a device
        publishing to ever new long topics must not grow it) until who-gets-what changes."""
        remembered = known.get(topic)
        if remembered is not None and remembered[0] == self._owners_changed:
            return remembered[1]
        levels = topic.split("/", dn_at + 1)  # only as far as the device's levels
        device = (levels[pk_at], levels[dn_at])
        carrier = self.gateways.carrier.get(device)
        owner: str | None
        if carrier is not None:
            owner = device_client_id(*carrier)
        else:
            client_id = device_client_id(*device)
            owner = client_id if client_id in self._auto_subscribed else None
        known.remember(topic, (self._owners_changed, owner))
        return owner

    # a gateway's sub-devices (gateway.SubDeviceSessions)

    def sub_login(self, gateway: tuple[str, str], sub: tuple[str, str]) -> None:
        """A sub-device online through its gateway: the gateway may use its topics, is
        subscribed to its system topics, and the sub-device is online at the gateway's address."""
        carrier = device_client_id(*gateway)
        self._owners_changed += 1
        access = self.broker.access_of(carrier)
        if isinstance(access, DeviceTopics):
            access.carry(*sub, self._topic_classes(sub[0]))
        self.broker.access_changed(carrier)
        self.sessions.came(sub, Way.GATEWAY, self.broker.address_of(carrier), gateway=gateway)

    def sub_logout(self, gateway: tuple[str, str], sub: tuple[str, str]) -> None:
        carrier = device_client_id(*gateway)
        self._owners_changed += 1
        access = self.broker.access_of(carrier)
        if isinstance(access, DeviceTopics):
            access.drop(*sub)
        self.broker.access_changed(carrier)  # and whatever of the sub's it subscribed to itself
        # (its own connection may still hold it)
        self.sessions.went(sub, Way.GATEWAY, "logged out", gateway=gateway)

    def _forget(self, product_key: str, device_name: str) -> None:
        """A deleted device: nothing of it stays in memory (its rows went with it)."""
        for keeper in (self.twin, self.shadows, self.desired):
            keeper.forget(product_key, device_name)
        self.sessions.forget(product_key, device_name)

    def _cut_off(self, product_key: str, device_name: str) -> None:
        """A device disabled or deleted while online is disconnected (0x98)."""
        self.gateways.drop((product_key, device_name))
        client_id = device_client_id(product_key, device_name)
        if self.broker.disconnect_client(client_id, ReasonCode.ADMINISTRATIVE_ACTION):
            log.info("disconnected %s: disabled or deleted", client_id)


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


def _protocol_of(registry: SQLRegistry) -> Callable[[str], str | None]:
    """Which dialect a product's devices speak (None: no such product)."""

    def protocol_of(product_key: str) -> str | None:
        view = registry.product_view(product_key)
        return view.protocol.value if view is not None else None

    return protocol_of


def _now_ms() -> int:
    return int(time.time() * 1000)


def _from_devices(
    handler: Callable[[str, bytes], MalformedMessage | None],
) -> Callable[[Message], Refused | None]:
    """A broker tap for a dialect's handler, which takes (topic, payload). A payload the
    handler found malformed is refused as the Alink dialect's are: 0x99 Payload format invalid
    (the handler has answered it where it could)."""

    def tap(message: Message) -> Refused | None:
        if handler(message.topic, message.payload) is None:
            return None
        return NOT_ALINK

    return tap


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
