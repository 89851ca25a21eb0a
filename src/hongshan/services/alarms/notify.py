"""``AlarmNotifier``: the routes of alarms' notifications, and sending each change of an alarm
to the routes that want it — a webhook (signed and retried as a rule's webhook) or e-mail
over SMTP (aiosmtplib)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import aiosmtplib
import httpx
import msgspec

from hongshan.alarms.model import Alarm, Change
from hongshan.alarms.routes import RouteSpec, StoredRoute, route_problem, wants
from hongshan.config import Settings
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.services.rules.webhook import post_signed
from hongshan.things.model import EVERYWHERE, Reach, RegistryError

log = logging.getLogger("hongshan.alarms")

ALARM = "X-Hongshan-Alarm"  # the alarm's id
ROUTE = "X-Hongshan-Route"  # the route's id
CHANGE = "X-Hongshan-Change"  # raised, escalated, …
PER_TRY = 10.0  # seconds one try of a sending may take (an HTTP answer, an SMTP session)
MAX_SENDING = 1_000  # sendings under way at once; past it one is counted failed at once
_payload = msgspec.json.Decoder(dict[str, Any])


class RouteStore(Protocol):
    """Where routes are kept (``store.registry.alarms.RouteTable``)."""

    async def create(self, spec: RouteSpec, secret: str, tenant: str) -> StoredRoute: ...

    async def list_routes(self, reach: Reach = EVERYWHERE) -> list[StoredRoute]: ...

    async def update(self, route_id: int, spec: RouteSpec) -> StoredRoute: ...

    async def get(self, route_id: int) -> StoredRoute: ...

    async def delete(self, route_id: int) -> None: ...

    async def owed(self) -> list[tuple[int, int, str, bytes]]: ...

    async def sent(
        self, route_id: int, error: str | None, at: int, delivery_id: int | None = None
    ) -> None: ...


def _ms() -> int:
    return int(time.time() * 1000)


class AlarmNotifier:
    """Keeps the routes (checked, in the registry, and in memory for sending) and sends each
    change of an alarm to every route that wants it, in tasks of its own: a sending that
    fails is tried again (``retries``, ``backoff``), then counted on its route with its error
    (``lastError``) — it never holds up or stops the alarm's lifecycle. What it owes is kept
    (``alarm_deliveries``) in the transaction of the alarm's change (``wanting`` says which
    routes; the alarms' service keeps them) until it is sent or given up, so that what a
    stop or a crash interrupted is sent at the next start (``load``): at least once, never
    lost. Never decides what happens to an alarm (``AlarmService``)."""

    def __init__(
        self,
        store: RouteStore,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        tenant_of: Callable[[str], str | None],
        clock: Callable[[], int] = _ms,
    ) -> None:
        """``tenant_of``: a product's tenant (``Directory.tenant_of``), so that a route
        hears only its tenant's alarms."""
        self._store = store
        self._tenant_of = tenant_of
        self._http = http
        self._settings = settings
        self._zone = ZoneInfo(settings.time_zone)
        self._clock = clock
        self._routes: list[StoredRoute] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        """The routes, and the sending of what was owed when the platform last stopped."""
        await self._reload()
        routes = {route.id: route for route in self._routes}
        for delivery_id, route_id, change, payload in await self._store.owed():
            route = routes.get(route_id)
            if route is not None:  # (a route deleted takes what it was owed with it)
                body = _payload.decode(payload)
                alarm, said = msgspec.convert(body, Alarm), msgspec.convert(change, Change)
                self._spawn(self._send(route, alarm, said, body, delivery_id))

    async def _reload(self) -> None:
        self._routes = await self._store.list_routes()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the routes ------------------------------------------------------------------------

    async def create(self, spec: RouteSpec, tenant: str = DEFAULT_TENANT) -> StoredRoute:
        self._check(spec)
        stored = await self._store.create(spec, secrets.token_hex(16), tenant)
        await self._reload()
        return stored

    async def update(self, route_id: int, spec: RouteSpec) -> StoredRoute:
        self._check(spec)
        stored = await self._store.update(route_id, spec)
        await self._reload()
        return stored

    def _check(self, spec: RouteSpec) -> None:
        problem = route_problem(spec)
        if problem is not None:
            raise RegistryError(problem, "invalid")
        if spec.kind == "email" and not self._settings.smtp_host:
            raise RegistryError(
                "email: no SMTP server is set (smtp_host in the settings)", "invalid"
            )

    async def list_routes(self, reach: Reach = EVERYWHERE) -> list[StoredRoute]:
        return await self._store.list_routes(reach)

    async def get(self, route_id: int) -> StoredRoute:
        return await self._store.get(route_id)

    async def delete(self, route_id: int) -> None:
        await self._store.delete(route_id)
        await self._reload()

    # -- sending ---------------------------------------------------------------------------

    def wanting(self, alarm: Alarm, change: Change) -> list[StoredRoute]:
        """The routes that want ``change`` of ``alarm``: what it owes, which the alarm's
        service keeps with the change (``AlarmTable.keep``) before ``send``."""
        tenant = self._tenant_of(alarm.product_key)
        return [
            route
            for route in self._routes
            if route.tenant == tenant and wants(route, alarm, change)
        ]

    def send(
        self,
        routes: list[StoredRoute],
        alarm: Alarm,
        change: Change,
        payload: dict[str, Any],
        owed: list[int | None],
    ) -> None:
        """Start sending ``change`` of ``alarm`` (``payload``: as its stream says it) to
        ``routes``, kept as owed (``owed``: each route's delivery id; None: the route was
        deleted meanwhile, and is sent nothing)."""
        now = self._clock()
        for route, delivery_id in zip(routes, owed, strict=True):
            if delivery_id is None:
                continue
            if len(self._tasks) >= MAX_SENDING:
                busy = f"{MAX_SENDING} notifications under way already"
                self._spawn(self._store.sent(route.id, busy, now, delivery_id))
                continue
            self._spawn(self._send(route, alarm, change, payload, delivery_id))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self,
        route: StoredRoute,
        alarm: Alarm,
        change: Change,
        payload: dict[str, Any],
        delivery_id: int,
    ) -> None:
        try:
            if route.kind == "webhook":
                error = await self._post(route, alarm, change, payload)
            else:
                error = await self._mail(route, alarm, change)
        except Exception as exc:  # a fault of ours, or a library's: logged, counted
            log.error("alarm %s: route %s failed", alarm.id, route.name, exc_info=exc)
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            log.warning("alarm %s (%s): route %s: %s", alarm.id, change, route.name, error)
        try:
            await self._store.sent(route.id, error, self._clock(), delivery_id)
        except Exception as exc:  # (the store's failure: the sending itself is done)
            log.warning("alarm route %s: its count not kept: %s", route.name, exc)

    async def _post(
        self, route: StoredRoute, alarm: Alarm, change: Change, payload: dict[str, Any]
    ) -> str | None:
        assert route.url is not None
        headers = {ALARM: str(alarm.id), ROUTE: str(route.id), CHANGE: change}
        return await post_signed(
            self._http,
            route.url,
            msgspec.json.encode(payload),
            route.secret,
            headers,
            per_try=PER_TRY,
            retries=route.retries,
            backoff=route.backoff,
        )

    async def _mail(self, route: StoredRoute, alarm: Alarm, change: Change) -> str | None:
        s = self._settings
        if not s.smtp_host:
            return "email: no SMTP server is set (smtp_host in the settings)"
        message = EmailMessage()
        message["From"] = s.smtp_from
        message["To"] = ", ".join(route.to)
        message["Subject"] = subject(alarm, change)
        message.set_content(body(alarm, change, self._zone))
        wait = route.backoff
        problem = ""
        for attempt in range(route.retries + 1):
            if attempt:
                await asyncio.sleep(wait)
                wait *= 2
            try:
                await aiosmtplib.send(
                    message,
                    hostname=s.smtp_host,
                    port=s.smtp_port,
                    username=s.smtp_username,
                    password=s.smtp_password,
                    start_tls=s.smtp_starttls,
                    use_tls=s.smtp_tls,
                    timeout=PER_TRY,
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:  # (no use trying again)
                refused = ", ".join(r.recipient for r in exc.recipients)
                return f"email via {s.smtp_host}:{s.smtp_port}: refused {refused}"
            except (aiosmtplib.SMTPException, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            return None
        tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
        return f"email via {s.smtp_host}:{s.smtp_port}: {problem} after {tries}"


_SAID: dict[Change, str] = {
    "raised": "",
    "repeated": " (repeated)",
    "escalated": " (escalated)",
    "reminder": " (reminder: not acknowledged)",
    "acknowledged": " (acknowledged)",
    "cleared": " (cleared)",
    "assigned": " (assigned)",
    "noted": " (note)",
}


def subject(alarm: Alarm, change: Change) -> str:
    """``[CRITICAL] SpO2 low on clinic-1/oximeter-7``, and the change unless it is the raise."""
    where = f"{alarm.product_key}/{alarm.device_name}"
    return f"[{alarm.severity.upper()}] {alarm.type} on {where}{_SAID[change]}"


def body(alarm: Alarm, change: Change, zone: ZoneInfo) -> str:
    """The mail's text: what happened, the alarm's state and times, its details."""

    def at(ms: int | None) -> str:
        if ms is None:
            return "-"
        return (
            datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")
        )

    origin = alarm.originator.kind + (f" {alarm.originator.id}" if alarm.originator.id else "")
    lines = [
        f"{alarm.type} on {alarm.product_key}/{alarm.device_name}: {change}",
        "",
        f"Severity:      {alarm.severity.upper()}",
        f"Status:        {alarm.status}",
        f"First raised:  {at(alarm.first_raised_at)}",
        f"Last raised:   {at(alarm.last_raised_at)} ({alarm.repeats} repeats)",
        f"Raised by:     {origin}",
    ]
    if alarm.acknowledged_at is not None:
        lines.append(f"Acknowledged:  {at(alarm.acknowledged_at)} by {alarm.acknowledged_by}")
    if alarm.cleared_at is not None:
        lines.append(f"Cleared:       {at(alarm.cleared_at)} by {alarm.cleared_by}")
    if alarm.assignee:
        lines.append(f"Assignee:      {alarm.assignee}")
    lines += ["", "Details:", msgspec.json.format(msgspec.json.encode(alarm.details)).decode()]
    if alarm.notes:
        lines += ["", "Notes:"]
        lines += [f"  {at(note.at)} {note.by}: {note.text}" for note in alarm.notes]
    lines += [
        "",
        f"Alarm {alarm.id}: hongshan alarm show {alarm.id} / hongshan alarm ack {alarm.id}",
    ]
    return "\n".join(lines) + "\n"
