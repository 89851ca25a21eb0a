"""What the HTTP side is given: ``Services``, built by the app, and handed to each handler by
Litestar's dependency injection, by name. A handler names what it uses as a parameter —
``registry: Provided[SQLRegistry]``, ``commands: Provided[DeviceCommands]`` — and is given
nothing else: no handler sees the platform, and nothing here imports the app.

What a dialect keeps for its devices (their shadows, desired values and gateways) and what it
answers them over HTTP (dynamic registration) is named by
the narrow protocols the API calls, so that it does not matter which part builds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeAlias, TypeVar

from litestar.di import Dependency, Provide
from litestar.params import SkipValidationMarker
from litestar.types import Scope as AsgiScope
from prometheus_client import CollectorRegistry

from hongshan.api.scope import Scope
from hongshan.identity.principals import Principal
from hongshan.identity.visibility import Visibility
from hongshan.services.alarms.condition_backtest import ConditionBacktester
from hongshan.services.alarms.condition_book import AlarmConditionBook
from hongshan.services.alarms.service import AlarmService
from hongshan.services.commands import DeviceCommands
from hongshan.services.fanout import FanOut
from hongshan.services.live import LiveFeed
from hongshan.services.people.audit import AuditLog
from hongshan.services.people.keys import ApiKeys
from hongshan.services.people.users import People
from hongshan.services.rules.backtest import Backtester
from hongshan.services.rules.book import RuleBook
from hongshan.services.scenes.backtest import SceneBacktester
from hongshan.services.scenes.book import SceneBook
from hongshan.store.history.model import HistoryStore
from hongshan.store.registry.store import SQLRegistry
from hongshan.twin.desired import Desired
from hongshan.twin.properties import PropertyTwin
from hongshan.twin.shadow import Shadow

T = TypeVar("T")

Provided: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]
"""A handler's parameter given by the app under the parameter's name (a field of
``Services``). Not validated per request (it is our object, not a client's input) and not a
parameter of the OpenAPI document."""

DeviceKey = tuple[str, str]  # (productKey, deviceName)


class DeviceShadows(Protocol):
    """Devices' shadows (Alibaba's device shadow): the document, and the platform's side of
    it, the desired state."""

    def get(self, pk: str, dn: str) -> Shadow: ...

    def set_desired(
        self, pk: str, dn: str, desired: dict[str, Any] | str, version: int | None = None
    ) -> Shadow:
        """``"null"`` values (or the whole) clear attributes; ``version`` defaults to the next
        one. An online device is sent the document at once. Raises ``ShadowError``."""


class DesiredValues(Protocol):
    """Property values a device should take, with versions."""

    def get(self, pk: str, dn: str) -> Desired: ...

    def set(
        self, pk: str, dn: str, items: dict[str, Any], versions: dict[str, int] | None = None
    ) -> Desired:
        """Values checked against the thing model already; raises ``VersionConflict``. An
        online device is sent them at once, else when it comes back."""


class GatewayTopology(Protocol):
    """Which gateway carries which sub-device."""

    async def unbind(self, sub: DeviceKey) -> DeviceKey | None:
        """Take ``sub`` out of its gateway's topology (logging it out if it is online
        through it, and telling the gateway); the gateway it was taken from, None when it had
        none; ``RegistryError`` when there is no such device."""


class DeviceRegistration(Protocol):
    """Devices' dynamic registration over HTTP (Alibaba's HTTPS form), answered by the dialect
    whose protocol defines it."""

    async def answer(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The body to answer a device's form with (the protocol's code says how it went)."""


class WritingStore(Protocol):
    @property
    def problem(self) -> str | None:
        """Why the store's last write failed, until one succeeds."""


class BrokerFigures(Protocol):
    def sys_values(self) -> dict[str, str]:
        """The broker's counters, as it publishes them on ``$SYS``."""


@dataclass(frozen=True, kw_only=True)
class Health:
    """What the health probes read. ``ready``, ``stopping`` and ``listeners`` are live: the
    platform is ready, and knows its HTTP port, only once its HTTP server is up, and stops
    being ready as its stop begins."""

    ready: Callable[[], bool]
    stopping: Callable[[], bool]
    listeners: Mapping[str, int]  # name -> port
    broker: BrokerFigures
    stores: Mapping[str, WritingStore]  # in the order the body names them


@dataclass(frozen=True, kw_only=True)
class ConsoleMap:
    """How the console draws the town (the settings ``map_*``): an XYZ tile URL template and
    its credit line, or none (``tile_url`` ""): the demo district shipped with the console;
    where the map opens (degrees north, east) and at which zoom."""

    tile_url: str = ""
    tile_attribution: str = ""
    center: tuple[float, float] = (31.49, 120.43)  # the shipped district, in Hongshan (Wuxi)
    zoom: int = 16


@dataclass(frozen=True, kw_only=True)
class Services:
    """Everything the HTTP side uses. Each field but the admin token (which the guard reads)
    and the metrics (a route of their own) is given to the handlers that name it. No field is
    named like a request's parameter or body field: Litestar takes a validation error keyed
    by a dependency's name for a fault of the server's and answers 500 (a shadow change's
    body has ``desired``, hence ``desired_values``); tests/api checks the names against the
    OpenAPI document."""

    admin_token: str
    people: People
    registry: SQLRegistry
    history: HistoryStore
    twin: PropertyTwin
    commands: DeviceCommands
    fan_out: FanOut
    shadows: DeviceShadows
    desired_values: DesiredValues
    gateways: GatewayTopology
    device_registration: DeviceRegistration
    rules: RuleBook
    alarms: AlarmService
    alarm_conditions: AlarmConditionBook
    condition_backtests: ConditionBacktester
    backtests: Backtester
    scenes: SceneBook
    scene_backtests: SceneBacktester
    live_feed: LiveFeed
    health: Health
    # the platform's metrics, served at /metrics behind the guard; None: on a listener of
    # their own (``metrics_port``), not by the API
    metrics: CollectorRegistry | None = None
    api_keys: ApiKeys
    audit: AuditLog
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks (settings.trusted_proxies)
    console_map: ConsoleMap = ConsoleMap()


NOT_PROVIDED = frozenset({"admin_token", "metrics", "trusted_proxies"})


def providers(services: Services) -> dict[str, Provide]:
    """A provider per service, under the name handlers give it, ``principal``: who sent the
    request (set by the guard, ``api.auth``), and ``access``: what it may reach
    (``api.scope.Scope``)."""
    given = {
        field.name: Provide(_constant(getattr(services, field.name)), sync_to_thread=False)
        for field in dataclasses.fields(services)
        if field.name not in NOT_PROVIDED
    }
    visibility = Visibility(services.registry.tags, services.registry.directory.tenant_of)
    directory = services.registry.directory

    def access(scope: AsgiScope) -> Scope:
        return Scope(_principal(scope), visibility, directory)

    return {
        **given,
        "principal": Provide(_principal, sync_to_thread=False),
        "access": Provide(access, sync_to_thread=False),
    }


def _principal(scope: AsgiScope) -> Principal:
    principal = scope.get("user")
    if not isinstance(principal, Principal):  # (a route without the guard named it)
        raise RuntimeError("no principal: the route is not guarded by api.auth.require_role")
    return principal


def _constant(value: object) -> Callable[[], object]:
    def provide() -> object:
        return value

    return provide
