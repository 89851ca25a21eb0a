"""The ThingsBoard dialect: ThingsBoard's MQTT device and gateway API, mapped onto the
platform's neutral messages (``topics`` lists the API).

In: telemetry and client attributes become ``PropertyValues`` (attributes are properties),
checked against the product's thing model (``values``); a QoS 1 message is acknowledged once
its values are committed, and its resend (DUP) after a lost PUBACK is kept once
(``uplinks``). An attribute request is answered from ``Attributes`` (client attributes: the
platform's latest values; shared: what was pushed); the SDK's own RPC ``getSessionLimits`` is
answered as ThingsBoard answers it, any other method a device calls with ``{"error": …}``; a
device's answer to a server-side RPC is the waiting call's (``Calls``) and a line of its
history. A gateway's sub-devices are admitted, created if need be, as it names them
(``gateway``).

Out: ``commands`` — shared attribute updates and server-side RPCs.

What ThingsBoard does not answer, a device is told by MQTT alone: a publish that is not JSON of
the API's shape, or whose keys or values do not fit the thing model, is refused whole (PUBACK
0x99 Payload format invalid on MQTT 5.0; a 3.1.1 device gets its plain PUBACK), logged and
counted (``stats``), and nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from hongshan import messages as m
from hongshan.broker.auth import Access, Client, Credentials, Verdict
from hongshan.broker.message import Message, Refused
from hongshan.bus import Bus
from hongshan.dialects.port import BrokerPort, DialectNeeds, Latest, Sessions, TapAnswer
from hongshan.dialects.thingsboard import login, payloads, topics
from hongshan.dialects.thingsboard.attributes import Attributes
from hongshan.dialects.thingsboard.calls import Calls
from hongshan.dialects.thingsboard.commands import REPLIED, Commands
from hongshan.dialects.thingsboard.directory import Device, DeviceDirectory, speaks_thingsboard
from hongshan.dialects.thingsboard.gateway import Link, Pending, Routes, device_name_for
from hongshan.dialects.thingsboard.payloads import MalformedPayload, Telemetry, Values
from hongshan.dialects.thingsboard.topics import Kind
from hongshan.dialects.thingsboard.uplinks import message_digest, property_values
from hongshan.dialects.thingsboard.values import Checked, Refusal, check, property_types, to_device
from hongshan.errors import HongshanError, ShuttingDown
from hongshan.log_lines import DEVICE
from hongshan.messages import CommandResult, DeviceRef
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.things.model import RegistryError
from hongshan.things.presence import Way

log = logging.getLogger("hongshan.thingsboard")

MALFORMED = Refused(ReasonCode.PAYLOAD_FORMAT_INVALID)
NOT_ITS_TOPIC = Refused(ReasonCode.NOT_AUTHORIZED)  # only a ThingsBoard device speaks here
# what the platform sends a device at, at most: the broker lowers it to the QoS the device
# subscribed with (``send_to``; the SDK subscribes at 1)
SENT_QOS = 1


class ThingsBoardStats(msgspec.Struct, kw_only=True):
    accepted: int = 0  # telemetry and attribute messages kept
    refused: int = 0  # … refused: keys or values the thing model does not take
    malformed: int = 0  # payloads that are not the API's JSON
    repeated: int = 0  # resends (DUP) of messages kept already, not kept again
    not_allowed: int = 0  # publishes on the API's topics by a client that is no device of it


def _consumed(message: Message) -> bool:
    """The second tap on the API's topics: whatever is published there is the dialect's
    alone. (The broker routes a message no tap consumed; one tap's True consumes it while the
    other's awaitable still holds its PUBACK.)"""
    return True


class ThingsBoard:
    """ThingsBoard's device API, whole: its devices' logins and topic rights, their
    connections and a gateway's sub-devices (``Link``, ``Routes``), what they publish, the
    commands sent to them (``Commands``) and their answers. It meets the broker through
    ``BrokerPort``, and the platform through the bus (uplinks out, commands in),
    ``DeviceSessions`` (comings and goings), the registry (``DeviceDirectory``) and the
    twin's latest values (its devices' client attributes). It keeps nothing on disk itself,
    and never hands a publish on the API's topics to another client: they name no device, so
    only the dialect knows whose they are."""

    name = "thingsboard"

    def __init__(
        self,
        *,
        directory: DeviceDirectory,
        bus: Bus,
        sessions: Sessions,
        latest: Latest,
        taken: Callable[[Device, bytes], None],
        was_taken: Callable[[Device, bytes], Awaitable[None] | None],
        max_payload_size: int,
        max_inflight: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``latest``: a device's latest values (its client attributes); ``taken`` and
        ``was_taken``: the history's idempotency keys (``DialectNeeds``); ``max_payload_size``
        and ``max_inflight``: the broker's largest packet and in-flight window, which the SDK
        is told as its session limits."""
        self._directory = directory
        self._bus = bus
        self._sessions = sessions
        self._taken = taken
        self._was_taken = was_taken
        self._limits = (max_payload_size, max_inflight)
        self._clock = clock
        self._broker: BrokerPort | None = None
        self._links: dict[str, Link] = {}  # client id -> its connection
        self._routes = Routes()
        self.attributes = Attributes(latest)
        self._calls = Calls(int(clock() * 1000) % 1_000_000_000)
        self._commands = Commands(
            directory=directory,
            bus=bus,
            routes=self._routes,
            calls=self._calls,
            attributes=self.attributes,
            send=self._send,
            clock=clock,
        )
        self._growing: set[tuple[str, str]] = set()  # (pk, key) being added to a thing model
        self.stats = ThingsBoardStats()
        self._handlers: dict[Kind, Callable[[Link, Message, str], TapAnswer]] = {
            Kind.TELEMETRY: self._on_telemetry,
            Kind.ATTRIBUTES: self._on_attributes,
            Kind.ATTRIBUTE_REQUEST: self._on_attribute_request,
            Kind.RPC_REQUEST: self._on_rpc_request,
            Kind.RPC_RESPONSE: self._on_rpc_response,
            Kind.GATEWAY_CONNECT: self._on_gateway_connect,
            Kind.GATEWAY_DISCONNECT: self._on_gateway_disconnect,
            Kind.GATEWAY_TELEMETRY: self._on_gateway_telemetry,
            Kind.GATEWAY_ATTRIBUTES: self._on_gateway_attributes,
            Kind.GATEWAY_ATTRIBUTE_REQUEST: self._on_gateway_attribute_request,
            Kind.GATEWAY_RPC: self._on_gateway_rpc,
        }

    @classmethod
    async def open(cls, needs: DialectNeeds) -> ThingsBoard:
        """The dialect of a platform (``DIALECTS``)."""
        settings = needs.settings
        return cls(
            directory=needs.registry,
            bus=needs.bus,
            sessions=needs.sessions,
            latest=needs.latest,
            taken=needs.taken,
            was_taken=needs.was_taken,
            max_payload_size=settings.max_packet_size,
            max_inflight=settings.max_inflight,
        )

    # -- the Dialect protocol ---------------------------------------------------------------

    async def authenticate(self, credentials: Credentials) -> Verdict | None:
        return await login.authenticate(self._directory, credentials)

    def access(self, client: Client) -> Access | None:
        found = login.device_of(client)
        if found is None:
            return None
        return topics.GATEWAY_RIGHTS if found[1] else topics.DEVICE_RIGHTS

    def refuses_others(self, topic: str) -> bool:
        """The API's topics name no device: nobody but the platform and its devices speaks
        on them."""
        return topic.startswith(topics.DEVICE_ME) or topic.startswith(topics.GATEWAY)

    def attach(self, broker: BrokerPort) -> None:
        self._broker = broker
        for topic_filter in topics.TAPS:
            broker.tap(topic_filter, self._on_publish)
            broker.tap(topic_filter, _consumed)
        broker.on_connected.append(self._connected)
        broker.on_disconnected.append(self._disconnected)
        self._directory.on_device_disabled.append(self._cut_off)
        self._directory.on_device_deleted.append(self._deleted)

    async def send(self, command: m.Downlink) -> CommandResult:
        return await self._commands.send(command)

    def stop_calls(self) -> None:
        """The platform is stopping: calls waiting for a device are given up at once (their
        callers are told ``ShuttingDown``, their history says so), and none is sent now."""
        self._commands.stopping = True
        self._calls.give_up(ShuttingDown("shutting down: the call was given up"))

    def uplink_counts(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.stats)

    # -- connections ------------------------------------------------------------------------

    def _connected(self, client: Client, address: str) -> None:
        found = login.device_of(client)
        if found is None:
            return
        device, gateway = found
        link = Link(client.client_id, device, gateway=gateway, address=address)
        self._links[client.client_id] = link
        self._routes.direct[device] = client.client_id
        self._sessions.came(device, Way.CONNECTION, address)

    def _disconnected(self, client: Client, why: str) -> None:
        link = self._links.pop(client.client_id, None)
        if link is None:
            return
        if self._routes.direct.get(link.device) == client.client_id:
            del self._routes.direct[link.device]
        for pending in link.pending.values():
            pending.drop()
        link.pending.clear()
        for name in list(link.carried):
            self._let_go(link, name, f"gateway: {why}")
        self._sessions.went(link.device, Way.CONNECTION, why)

    def _let_go(self, link: Link, name: str, why: str) -> None:
        device = link.carried.pop(name)
        carried = self._routes.carried.get(device)
        if carried is not None and carried[0] is link:
            del self._routes.carried[device]
        self._sessions.went(device, Way.GATEWAY, why, gateway=link.device)

    def _cut_off(self, product_key: str, device_name: str) -> None:
        """A device disabled or deleted while online: its connection is closed (0x98), a
        gateway carries it no more."""
        device = (product_key, device_name)
        client_id = self._routes.direct.get(device)
        if client_id is not None and self._broker is not None:
            self._broker.disconnect_client(client_id, ReasonCode.ADMINISTRATIVE_ACTION)
        carried = self._routes.carried.get(device)
        if carried is not None:
            self._let_go(carried[0], carried[1], "disabled")

    def _deleted(self, product_key: str, device_name: str) -> None:
        """(Cut off already: the registry tells ``on_device_disabled`` of a deletion too.)"""
        self.attributes.forget((product_key, device_name))
        self._calls.forget((product_key, device_name))

    # -- in: what devices publish -----------------------------------------------------------

    def _on_publish(self, message: Message) -> TapAnswer:
        link = self._links.get(message.sender)
        found = topics.classify(message.topic)
        if link is None or found is None:
            # a client that is no ThingsBoard device (a person's, an application's): these
            # topics name no device, so what it said would be taken as nobody's
            self.stats.not_allowed += 1
            return NOT_ITS_TOPIC
        row, request_id = found
        handler = self._handlers.get(row.kind)
        if handler is None or (row.gateway and not link.gateway):
            self.stats.not_allowed += 1
            return NOT_ITS_TOPIC
        about = DEVICE.set(link.device)  # (what is logged meanwhile says which device)
        try:
            return handler(link, message, request_id)
        except MalformedPayload as exc:
            self.stats.malformed += 1
            log.info("%s: %s: %s", _who(link.device), message.topic, exc)
            return MALFORMED
        finally:
            DEVICE.reset(about)

    def _on_telemetry(self, link: Link, message: Message, _: str) -> TapAnswer:
        return self._post(message, {link.device: payloads.telemetry(message.payload)})

    def _on_attributes(self, link: Link, message: Message, _: str) -> TapAnswer:
        values = payloads.attributes(message.payload)
        return self._post(message, {link.device: [(None, values)]})

    def _on_gateway_telemetry(self, link: Link, message: Message, _: str) -> TapAnswer:
        parts = payloads.gateway_telemetry(message.payload)
        return self._post(message, *self._named(link, parts))

    def _on_gateway_attributes(self, link: Link, message: Message, _: str) -> TapAnswer:
        parts = payloads.gateway_attributes(message.payload)
        entries: dict[str, list[Telemetry]] = {name: [(None, v)] for name, v in parts.items()}
        return self._post(message, *self._named(link, entries))

    def _named(
        self, link: Link, parts: dict[str, list[Telemetry]]
    ) -> tuple[dict[Device, list[Telemetry]], dict[Device, Pending]]:
        """A gateway's parts by device, and those of devices still being admitted; a name it
        was refused this session is left out."""
        named: dict[Device, list[Telemetry]] = {}
        admitting: dict[Device, Pending] = {}
        for name, entries in parts.items():
            device = self._sub_device(link, name, None)
            if device is None:
                continue
            named.setdefault(device, []).extend(entries)
            pending = link.pending.get(name)
            if pending is not None:
                admitting[device] = pending
        return named, admitting

    def _post(
        self,
        message: Message,
        parts: dict[Device, list[Telemetry]],
        admitting: Mapping[Device, Pending] | None = None,
    ) -> TapAnswer:
        """Values of one message, for one device or a gateway's several: all checked first
        (one refusal refuses the message whole), then published with the message's key
        (``taken``) — at once, or for a gateway's device being admitted (``admitting``) once
        it is. A resend (DUP) of what the history took is not kept again: its PUBACK waits
        for the first copy's commit."""
        keys: dict[Device, bytes] = {}
        if message.qos:
            topic, packet_id, payload = message.topic, message.packet_id, message.payload
            keys = {device: message_digest(device, topic, packet_id, payload) for device in parts}
        waits: list[Awaitable[None]] = []
        if message.dup:  # (sent before: taken already, or lost on its way)
            resent = {}
            for device, key in keys.items():
                first = self._was_taken(device, key)
                if first is not None:
                    resent[device] = first
            if resent:
                self.stats.repeated += 1
                waits.extend(resent.values())
                parts = {device: e for device, e in parts.items() if device not in resent}
                if not parts:
                    return _all(waits)
        checked: dict[Device, list[Telemetry]] = {}
        for device, entries in parts.items():
            kept = []
            for ts, values in entries:
                result = self._check(device, values)
                if isinstance(result, Refusal):
                    self.stats.refused += 1
                    log.info("%s: %s: %s: %s", _who(device), message.topic, result.key, result.why)
                    return MALFORMED
                if result.new:
                    self._grow(device[0], result.new)
                kept.append((ts, result.values))
            checked[device] = kept
        self.stats.accepted += 1
        now = int(self._clock() * 1000)
        for device, entries in checked.items():
            key = keys.get(device, b"")
            uplinks = property_values(device, entries, now=now, digest=key)
            if not uplinks:
                continue
            publish = functools.partial(self._publish_all, device, key, uplinks)
            pending = admitting.get(device) if admitting else None
            waiting: Awaitable[None] | None
            if pending is not None:
                waiting = pending.wait(publish)
                if waiting is None:
                    log.warning("%s: too much waits for it to be created: left out", _who(device))
            else:
                waiting = publish()
            if waiting is not None:
                waits.append(waiting)
        return _all(waits)

    def _publish_all(
        self, device: Device, key: bytes, uplinks: list[m.PropertyValues]
    ) -> Awaitable[None] | None:
        if key:
            self._taken(device, key)  # (committed with what the message said, in one turn)
        committed = None
        for uplink in uplinks:
            committed = self._bus.publish(uplink) or committed
        return committed  # (committed in order: the last one's commit is all of theirs)

    def _check(self, device: Device, values: Values) -> Checked | Refusal:
        view = self._directory.product_view(device[0])
        if view is None:
            return Refusal("", f"no product {device[0]}")
        return check(view.thing_model, values, schemaless=view.schemaless, product_key=device[0])

    def _grow(self, product_key: str, new: Values) -> None:
        """A schemaless product's new keys become properties (in the background: what the
        message said is kept at once, typed as the thing model will type it)."""
        keys = {k: v for k, v in new.items() if (product_key, k) not in self._growing}
        if not keys or self._broker is None:
            return
        self._growing.update((product_key, key) for key in keys)

        async def grow() -> None:
            try:
                await self._directory.add_first_seen_properties(product_key, keys)
            except HongshanError as exc:
                log.warning("product %s: %s not added: %s", product_key, list(keys), exc)
            finally:
                self._growing.difference_update((product_key, key) for key in keys)

        self._broker.background(asyncio.ensure_future(grow()))

    def _on_attribute_request(self, link: Link, message: Message, request_id: str) -> TapAnswer:
        client_keys, shared_keys = payloads.attribute_request(message.payload)
        client, shared = self._attributes_of(link.device, client_keys, shared_keys)
        topic = f"v1/devices/me/attributes/response/{request_id}"
        self._send(link.client_id, topic, payloads.attribute_response(client, shared))
        return None

    def _on_gateway_attribute_request(self, link: Link, message: Message, _: str) -> TapAnswer:
        request_id, name, client, keys = payloads.gateway_attribute_request(message.payload)
        device = self._sub_device(link, name, None)
        values: Values = {}
        if device is not None:
            found = self._attributes_of(device, keys if client else [], [] if client else keys)
            values = found[0] if client else found[1]
        answer = payloads.gateway_attribute_response(request_id, name, values)
        self._send(link.client_id, "v1/gateway/attributes/response", answer)
        return None

    def _attributes_of(
        self, device: Device, client_keys: list[str] | None, shared_keys: list[str] | None
    ) -> tuple[Values, Values]:
        client, shared = self.attributes.read(device, client_keys, shared_keys)
        view = self._directory.product_view(device[0])
        types = property_types(view.thing_model if view is not None else None)
        return to_device(types, client), to_device(types, shared)

    def _on_rpc_request(self, link: Link, message: Message, request_id: str) -> TapAnswer:
        """A device's own RPC (client-side): ``getSessionLimits``, which the SDK asks at every
        connect, is answered as ThingsBoard answers it; Hongshan serves no other method."""
        method, _ = payloads.rpc_request(message.payload)
        if method == "getSessionLimits":
            size, inflight = self._limits
            answer = payloads.session_limits(
                max_payload_size=size, max_inflight=inflight, gateway=link.gateway
            )
        else:
            log.info("%s: client-side RPC %r: no such method here", _who(link.device), method)
            answer = payloads.rpc_error(f"no handler for method {method!r}")
        self._send(link.client_id, f"v1/devices/me/rpc/response/{request_id}", answer)
        return None

    def _on_rpc_response(self, link: Link, message: Message, request_id: str) -> TapAnswer:
        output = payloads.rpc_response(message.payload)
        return self._answered(link.device, request_id, output, message)

    def _on_gateway_rpc(self, link: Link, message: Message, _: str) -> TapAnswer:
        name, request_id, output = payloads.gateway_rpc_reply(message.payload)
        device = link.carried.get(name)
        if device is None:
            log.info("%s: an RPC answer for %r, which it does not carry", _who(link.device), name)
            return None
        return self._answered(device, request_id, output, message)

    def _answered(
        self, device: Device, request_id: str, output: Any, message: Message
    ) -> TapAnswer:
        """A device's answer to a server-side RPC: the call's, and a line of its history."""
        service = self._calls.answer(device, request_id, output)
        if service is None:
            log.info("%s: an answer to RPC %s, which it was never sent", _who(device), request_id)
            return None
        digest = b""
        if message.qos:
            digest = message_digest(device, message.topic, message.packet_id, message.payload)
        return self._bus.publish(
            m.ServiceReplied(
                device=DeviceRef(*device),
                received=int(self._clock() * 1000),
                key=digest,
                call_id=request_id,
                service=service,
                code=REPLIED,
                output=output,
            )
        )

    # -- a gateway's devices ----------------------------------------------------------------

    def _on_gateway_connect(self, link: Link, message: Message, _: str) -> TapAnswer:
        """Acknowledged once the device is admitted (created if need be)."""
        name, kind = payloads.gateway_connect(message.payload)
        link.refused.discard(name)  # (asked again: a device enabled since is admitted)
        if self._sub_device(link, name, kind) is None:
            return None
        pending = link.pending.get(name)
        return pending.wait(lambda: None) if pending is not None else None

    def _on_gateway_disconnect(self, link: Link, message: Message, _: str) -> TapAnswer:
        name = payloads.gateway_disconnect(message.payload)
        pending = link.pending.pop(name, None)
        if pending is not None:
            pending.drop()
        if name in link.carried:
            self._let_go(link, name, "disconnect")
        return None

    def _sub_device(self, link: Link, name: str, kind: str | None) -> Device | None:
        """The device a gateway names: carried, being admitted, or admitted from now on
        (None: refused this session, or the gateway carries as many as it may)."""
        device = link.carried.get(name)
        if device is not None:
            return device
        pending = link.pending.get(name)
        if pending is not None:
            return pending.device
        if name in link.refused:
            return None
        if link.full():
            log.info(
                "%s: carries %d devices: %r left out", _who(link.device), len(link.carried), name
            )
            return None
        product = kind if kind and speaks_thingsboard(self._directory.product_view(kind)) else None
        device = (product or link.device[0], device_name_for(name))
        pending = link.pending[name] = Pending(device)
        if self._broker is not None:
            self._broker.background(asyncio.ensure_future(self._admit(link, name, pending)))
        return device

    async def _admit(self, link: Link, name: str, pending: Pending) -> None:
        """Create the device if need be, then carry it, unless it is disabled."""
        pk, dn = device = pending.device
        enabled = False
        try:
            if not self._directory.device_known(pk, dn):
                try:
                    await self._directory.create_device(pk, dn, gateway=link.device)
                    log.info("%s: created %s for %r", _who(link.device), _who(device), name)
                except RegistryError as exc:
                    if exc.kind != "conflict":  # (made meanwhile: it exists)
                        raise
            state = await self._directory.credentials(pk, dn)
            enabled = state is not None and state.enabled
        except HongshanError as exc:
            log.warning("%s: %r not admitted: %s", _who(link.device), name, exc)
        if link.pending.get(name) is not pending or self._links.get(link.client_id) is not link:
            return  # disconnected meanwhile (what waited for it was dropped then)
        del link.pending[name]
        if not enabled:
            log.info("%s: %s is disabled: what it says is left out", _who(link.device), name)
            if len(link.refused) < 1000:
                link.refused.add(name)
            pending.drop()
            return
        link.carried[name] = device
        self._routes.carried[device] = (link, name)
        self._sessions.came(device, Way.GATEWAY, link.address, gateway=link.device)
        pending.run()

    # -- out --------------------------------------------------------------------------------

    def _send(self, client_id: str, topic: str, payload: bytes) -> None:
        if self._broker is None:
            raise RuntimeError("the ThingsBoard dialect is not attached to a broker")
        self._broker.send_to(client_id, topic, payload, SENT_QOS)


def _all(waits: list[Awaitable[None]]) -> Awaitable[None] | None:
    if not waits:
        return None
    if len(waits) == 1:
        return waits[0]
    return _gathered(waits)


async def _gathered(waits: list[Awaitable[None]]) -> None:
    await asyncio.gather(*waits)


def _who(device: Device) -> str:
    return f"{device[1]}&{device[0]}"
