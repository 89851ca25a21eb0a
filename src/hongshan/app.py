"""The one place where components are built and wired: configuration in, running platform out.

``Platform.start`` builds the stores, the bus and its pipeline, the services, the dialects
(``hongshan.dialects.DIALECTS``), the broker and the HTTP server, in that order, wiring each to
what it needs; ``stop`` closes what started, in reverse. Nothing here speaks a device protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import time
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from hongshan.api.dependencies import ConsoleMap, Health, Services
from hongshan.api.token import TOKEN_FILE, load_or_create_token
from hongshan.broker.server import Broker
from hongshan.bus.local import LocalBus
from hongshan.config import Settings
from hongshan.dialects import DIALECTS, protocol_of
from hongshan.dialects.access import DialectAccess, DialectLogins
from hongshan.dialects.alink.plugin import Alink
from hongshan.dialects.port import Dialect, DialectNeeds
from hongshan.http import build_http_app, build_metrics_app
from hongshan.http_server import HttpServer
from hongshan.identity.access_tokens import KEY_FILE, AccessTokens, load_or_create_session_key
from hongshan.identity.lockout import Lockout, LockoutPolicy
from hongshan.identity.people import people_access, warn_of_unknown_tenants
from hongshan.identity.secret_box import SecretBox, load_or_create_key
from hongshan.messages import EventRaised, PropertyValues, ServiceReplied, StatusChanged
from hongshan.pipeline.firmware import FirmwareStage
from hongshan.pipeline.history import HistoryStage
from hongshan.pipeline.uplink import stages_of_a_town
from hongshan.private_file import private_data_dir
from hongshan.rules.sun import Place
from hongshan.services.alarms.condition_backtest import ConditionBacktester
from hongshan.services.alarms.condition_book import AlarmConditionBook
from hongshan.services.alarms.conditions import AlarmConditions
from hongshan.services.alarms.notify import AlarmNotifier
from hongshan.services.alarms.service import AlarmService
from hongshan.services.commands import DeviceCommands
from hongshan.services.fanout import DeviceSelection, FanOut
from hongshan.services.live import LIVE_KINDS, LiveFeed
from hongshan.services.metrics import MeasuredParts, platform_registry
from hongshan.services.pacing import Pacer, Pacing
from hongshan.services.people.audit import AuditLog
from hongshan.services.people.keys import ApiKeys
from hongshan.services.people.users import People
from hongshan.services.presence import DeviceSessions
from hongshan.services.restart import repair_after_restart
from hongshan.services.rules.backtest import Backtester
from hongshan.services.rules.book import RuleBook
from hongshan.services.rules.engine import RuleEngine
from hongshan.services.rules.running import ActionNeeds
from hongshan.services.rules.sources import PlatformStreams
from hongshan.services.scenes.backtest import SceneBacktester
from hongshan.services.scenes.book import SceneBook
from hongshan.services.scenes.engine import Clock, LoopClock, SceneEngine
from hongshan.store.history.backend import open_history
from hongshan.store.registry.store import SQLRegistry
from hongshan.store.sqlite.broker_state import SQLiteBrokerState
from hongshan.twin.properties import PropertyTwin
from hongshan.twin.saver import PropertySaver

if TYPE_CHECKING:
    from hongshan.dialects.alink import desired, gateway, shadows
    from hongshan.dialects.alink.dialect import AlinkDialect
    from hongshan.store.history.postgres import PostgresHistory
    from hongshan.store.history.sqlite import SQLiteHistory

log = logging.getLogger("hongshan")


class Platform:
    """A running Hongshan: builds every part, wires them, starts and stops them. Owns their
    lifetimes and nothing of their work; the HTTP app and tests reach the parts through it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = False
        self.stopping = False  # (set as stop begins: readiness says "stopping", not "starting")
        self.ports: dict[str, int] = {}
        self.admin_token = ""
        self.twin = PropertyTwin()
        self.dialects: list[Dialect] = []
        self.history: SQLiteHistory | PostgresHistory
        self.registry: SQLRegistry
        self.people: People
        self.bus: LocalBus
        self.sessions: DeviceSessions  # (all offline at start: ``repair_after_restart``)
        self.commands: DeviceCommands
        self.fan_out: FanOut
        self.broker_state: SQLiteBrokerState  # (health asks it how its writes go)
        self.broker: Broker
        self.rules: RuleEngine
        self.rule_book: RuleBook
        self.alarms: AlarmService
        self.scenes: SceneEngine
        self.scene_book: SceneBook
        self._scene_backtests: SceneBacktester
        self._condition_backtests: ConditionBacktester
        self.alarm_conditions: AlarmConditions
        self.alarm_condition_book: AlarmConditionBook
        self.live_feed: LiveFeed
        self.api_keys: ApiKeys
        self.audit: AuditLog
        self.scene_clock: Clock = LoopClock()  # (tests give one of their own before start)
        self._http: HttpServer | None = None
        self._closing = contextlib.AsyncExitStack()  # what started, stopped in reverse

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever did start is closed again
            raise

    async def _start(self) -> None:
        settings = self.settings
        data_dir = Path(settings.data_dir)
        self.admin_token = await _private_data(settings, data_dir)
        # the stores
        self.history = history = await open_history(settings, data_dir / "history.db")
        self._closing.push_async_callback(history.close)  # (after the broker: pushed first)
        history.start()
        key_file = Path(settings.secret_key_file or data_dir / "secret.key")
        key = await asyncio.to_thread(load_or_create_key, key_file)
        registry_url = settings.registry_url or f"sqlite:///{data_dir / 'registry.db'}"
        self.registry = registry = await SQLRegistry.open(registry_url, SecretBox(key))
        self._closing.push_async_callback(registry.close)
        self.people = await _people(settings, data_dir, registry)
        # the bus and its pipeline, the devices' sessions, the latest values
        firmware = FirmwareStage(
            lambda pk, dn, versions: registry.update_device(pk, dn, firmware=versions)
        )
        pipeline = stages_of_a_town(
            twin=self.twin, history=HistoryStage(history), firmware=firmware
        )
        self.bus = bus = LocalBus(pipeline, protocol_of=protocol_of(registry.directory))
        self.sessions = sessions = DeviceSessions(registry, bus)
        self.twin.restore(await registry.properties.load())
        await repair_after_restart(registry, history, self.twin, bus)
        saver = PropertySaver(self.twin, registry.properties)
        saver.start()
        self._closing.push_async_callback(saver.stop)
        registry.on_device_deleted.append(self.twin.forget)
        registry.on_device_deleted.append(sessions.forget)
        # the dialects, then the broker that asks them who connects and what they may do
        needs = DialectNeeds(
            registry=registry,
            bus=bus,
            sessions=sessions,
            taken=lambda device, key: history.add_taken(device, key, int(time.time() * 1000)),
            was_taken=history.was_taken,
            latest=lambda device: self.twin.peek(*device),
            settings=settings,
        )
        self.dialects = [await build(needs) for _, build in DIALECTS]
        people, acl = people_access(settings, registry.directory.tenant_of)
        warn_of_unknown_tenants(acl, {t.id for t in await registry.tenants.list_tenants()})
        self.broker_state = store = SQLiteBrokerState(
            data_dir / "hongshan.db", loop=asyncio.get_running_loop()
        )
        self.broker = broker = Broker(
            settings,
            authenticator=DialectLogins(self.dialects, people),
            authorizer=DialectAccess(self.dialects, acl),
            store=store,
        )
        # one pace for batches and for the queues of devices that come back
        pacer = Pacer(
            Pacing(max_in_flight=settings.command_max_in_flight, per_second=settings.command_rate)
        )
        self.commands = commands = DeviceCommands(
            bus,
            registry.directory.thing_model_of,
            registry.commands,
            online=registry.directory.is_online,
            pacer=pacer,
            keep_days=settings.command_retention_days,
            keep_rows=settings.command_retention_rows,
            reply_within=settings.command_reply_timeout,
        )
        self.fan_out = fan_out = FanOut(
            commands, registry.commands, DeviceSelection(registry).devices, pacer
        )
        for dialect in self.dialects:
            bus.serve(dialect.name, dialect.send)
            dialect.attach(broker)
        bus.subscribe(commands.on_uplink, kinds=(StatusChanged, ServiceReplied))
        await commands.open()
        self._closing.push_async_callback(commands.close)
        self._closing.push_async_callback(fan_out.close)
        # the rules, run on what clients publish and on the bus's uplinks (stopped after the
        # broker: pushed before it)
        self._rule_sources = sources = (PlatformStreams(), self._alink().rule_data)
        self.rules = rules = RuleEngine(
            sources=sources,
            publish=broker.publish_from_server,
            latest=self.twin.peek,
            tags=registry.tags.tags_of,
            tenant_of=registry.directory.tenant_of,
        )
        self._closing.push_async_callback(rules.stop)
        broker.on_published.append(rules.on_published)
        bus.subscribe(rules.on_uplink)
        # the alarms: raised by rules, events and the API; heard by the rules, notified
        notifier = AlarmNotifier(
            registry.alarm_routes, rules.http, settings, tenant_of=registry.directory.tenant_of
        )
        self.alarms = alarms = AlarmService(
            registry.alarms,
            notifier,
            things=registry.directory,
            hear=rules.on_platform,
            keep_days=settings.alarm_retention_days,
        )
        await alarms.load()
        self._closing.push_async_callback(alarms.stop)
        bus.subscribe(alarms.on_uplink, kinds=(EventRaised,))
        # what rules' and scenes' actions are built with
        action_needs = ActionNeeds(
            republish=rules.republish,
            forward=rules.feed,
            commands=self.commands,
            http=rules.http,
            fan_out=self.fan_out,
            alarms=alarms,
        )
        self.rule_book = RuleBook(
            registry.rules,
            rules,
            sources=sources,
            things=registry.directory,
            needs=action_needs,
        )
        await self.rule_book.load()
        # the scenes, triggered by the bus's uplinks and their clock (stopped after the
        # broker, before the rules' HTTP client closes)
        place = None
        if settings.latitude is not None and settings.longitude is not None:
            place = Place(settings.latitude, settings.longitude)
        directory = registry.directory
        zone = zoneinfo.ZoneInfo(settings.time_zone)

        def devices_of(pk: str) -> list[tuple[str, str]]:
            return [key for key in directory.devices if key[0] == pk]

        self.scenes = scenes = SceneEngine(
            clock=self.scene_clock,
            zone=zone,
            place=place,
            latest=self.twin.peek,
            members=registry.groups.members,
            devices_of=devices_of,
            history=history,
            waits=registry.scenes,
        )
        self._scene_backtests = SceneBacktester(
            history, zone=zone, place=place, members=registry.groups.members, devices_of=devices_of
        )
        self._closing.push_async_callback(scenes.stop)
        bus.subscribe(scenes.on_uplink)
        self.scene_book = SceneBook(
            registry.scenes,
            scenes,
            things=directory,
            groups=registry.groups,
            needs=action_needs,
        )
        await self.scene_book.load()
        # products' alarm conditions, on the bus's property posts and the scenes' clock
        self.alarm_conditions = conditions = AlarmConditions(
            clock=self.scene_clock,
            alarms=alarms,
            latest=self.twin.peek,
            tags=registry.tags,
            devices_of=devices_of,
            history=history,
        )
        self._condition_backtests = ConditionBacktester(
            history, tags=registry.tags, devices_of=devices_of
        )
        self._closing.push_async_callback(conditions.stop)
        registry.on_device_deleted.append(conditions.forget)
        bus.subscribe(conditions.on_uplink, kinds=(PropertyValues,))
        self.alarm_condition_book = AlarmConditionBook(
            registry.alarm_conditions, conditions, things=directory
        )
        await self.alarm_condition_book.load()
        conditions.start()
        # the live API's feed: values and status from the bus, alarms' and commands' changes
        self.live_feed = live_feed = LiveFeed(
            registry.directory,
            registry.tags,
            queue_limit=settings.ws_queue_limit,
            max_subscriptions=settings.ws_max_subscriptions,
            max_per_principal=settings.ws_max_sockets_per_principal,
            batch_interval=settings.ws_batch_interval,
        )
        live_feed.start()
        self._closing.push_async_callback(live_feed.stop)
        bus.subscribe(live_feed.on_uplink, kinds=LIVE_KINDS)
        alarms.on_change.append(live_feed.on_alarm)
        commands.on_change.append(live_feed.on_command)
        self._closing.push_async_callback(broker.stop)
        await broker.start()
        self.ports.update(broker.ports)
        # the alarms' timers once the rules and the broker run: what fell due while the
        # platform was down is done now, and the rules hear it
        alarms.start()
        # who may use the API besides the admin token (integrations' keys), and the record of
        # what was changed through it (written until the HTTP side has stopped)
        self.api_keys = ApiKeys(registry.api_keys)
        await self.api_keys.load()
        self.audit = AuditLog(registry.audit, keep_days=settings.audit_retention_days)
        self.audit.start()
        self._closing.push_async_callback(self.audit.stop)
        # the metrics, on the API or on a listener of their own
        metrics = platform_registry(self._measured())
        in_api: CollectorRegistry | None = metrics
        if settings.metrics_port is not None:
            listener = HttpServer(
                build_metrics_app(metrics),
                settings,
                name="metrics",
                host=settings.metrics_host,
                port=settings.metrics_port,
            )
            self._closing.push_async_callback(listener.shutdown)
            await listener.start()
            self.ports["metrics"] = listener.port
            in_api = None
        # the REST API and the health probes
        self._http = HttpServer(build_http_app(self._http_services(in_api)), settings)
        await self._http.start()
        self.ports["http"] = self._http.port
        self.ready = True

    def _measured(self) -> MeasuredParts:
        """What the metrics read (at each scrape)."""
        return MeasuredParts(
            broker=self.broker,
            dialects=self.dialects,
            command_results=self.bus.results,
            commit_times=self.history.commit_times,
            rules=self.rules,
            alarms=self.alarms,
            commands=self.commands,
            live_feed=self.live_feed,
        )

    def _http_services(self, metrics: CollectorRegistry | None) -> Services:
        """What the HTTP side is given (each handler names what it uses)."""
        health = Health(
            ready=lambda: self.ready,
            stopping=lambda: self.stopping,
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
            people=self.people,
            registry=self.registry,
            history=self.history,
            twin=self.twin,
            commands=self.commands,
            fan_out=self.fan_out,
            shadows=self.shadows,
            desired_values=self.desired,
            gateways=self.gateways,
            device_registration=self._alink().registration,
            rules=self.rule_book,
            alarms=self.alarms,
            alarm_conditions=self.alarm_condition_book,
            condition_backtests=self._condition_backtests,
            backtests=Backtester(self.history, self._rule_sources, tags=self.registry.tags.tags_of),
            scenes=self.scene_book,
            scene_backtests=self._scene_backtests,
            live_feed=self.live_feed,
            health=health,
            metrics=metrics,
            api_keys=self.api_keys,
            audit=self.audit,
            trusted_proxies=tuple(self.settings.trusted_proxies),
            console_map=self._console_map(),
        )

    def _console_map(self) -> ConsoleMap:
        """The console's map opens at the town's place when one is set."""
        s = self.settings
        shown = ConsoleMap(
            tile_url=s.map_tile_url, tile_attribution=s.map_tile_attribution, zoom=s.map_zoom
        )
        if s.latitude is not None and s.longitude is not None:
            shown = dataclasses.replace(shown, center=(s.latitude, s.longitude))
        return shown

    async def stop(self) -> None:
        self.ready = False
        self.stopping = True
        if self._http is not None:
            for dialect in self.dialects:
                dialect.stop_calls()  # answered 503 now: the HTTP shutdown waits for requests
            await self._http.shutdown()
        await self._closing.aclose()

    # The Alink dialect's own services, which the HTTP side (device shadow, desired values,
    # a sub-device's gateway, dynamic registration) and the Alibaba SDK tests reach through
    # the platform.

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


async def _private_data(settings: Settings, data_dir: Path) -> str:
    """The data directory made this user's alone, and the admin token read (or made)."""
    # history and retained payloads are nobody else's to read (the token and key neither)
    databases = ["hongshan.db"]
    databases += [] if settings.registry_url else ["registry.db"]
    databases += [] if settings.history_url else ["history.db"]
    files = [TOKEN_FILE, KEY_FILE]
    files += [] if settings.secret_key_file else ["secret.key"]
    tightened = await asyncio.to_thread(private_data_dir, data_dir, databases, files)
    if tightened:
        log.warning(
            "%s: group or others could read %s; made this user's alone (0700/0600)",
            data_dir,
            ", ".join(tightened),
        )
    return await asyncio.to_thread(load_or_create_token, data_dir)


async def _people(settings: Settings, data_dir: Path, registry: SQLRegistry) -> People:
    """The users and their sessions, loaded; on the first start, the user ``admin`` made (its
    password said here, once, when it was generated)."""
    key = await asyncio.to_thread(load_or_create_session_key, data_dir)
    policy = LockoutPolicy(
        per_user=settings.login_max_failures_per_user,
        per_address=settings.login_max_failures_per_address,
        window=settings.login_failure_window_minutes * 60,
        lock=settings.login_lockout_minutes * 60,
    )
    people = People(
        registry.users,
        registry.sessions,
        AccessTokens(key, settings.access_token_minutes * 60, time.time),
        # (wall time, not monotonic: a lock kept in the registry is read back after a restart)
        Lockout(policy, time.time),
        registry.lockouts,
        refresh_lifetime=settings.refresh_token_days * 86400,
        clock=time.time,
    )
    await people.load()
    generated = await people.first_admin(settings.admin_password, settings.admin_password_hash)
    if generated is not None:
        log.warning(
            "FIRST START: made the user 'admin' (role admin) with the password %s -- it is "
            "shown this once only. Log in and change it (PUT /api/users/admin/password, or "
            "'hongshan user passwd admin'); set HONGSHAN_ADMIN_PASSWORD (or its hash, "
            "HONGSHAN_ADMIN_PASSWORD_HASH) to choose it instead",
            generated,
        )
    return people


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
        on = type(loop).__module__.split(".")[0]  # (uvloop, or asyncio)
        log.info("hongshan ready (%s), data in %s, on %s", ports, settings.data_dir, on)
        await stop.wait()
        log.info("shutting down")
