"""The Alink dialect as the platform plugs it in: ``Alink``, one ``Dialect`` for the whole of
Alibaba Cloud IoT's device protocol.

It builds and owns the protocol's parts — property posts, events, replies and calls
(``dialect.AlinkDialect``), the device shadow, desired values, gateways and their sub-devices'
sessions, NTP, firmware reports, automatic subscriptions, dynamic registration (over MQTT, and
the answers to the HTTPS form the API serves), Alibaba's rules-engine data for the rules
(``rule_data``) — and puts them on the broker through its port
(``attach``): taps on Alink's topic filters, derived subscriptions, connect and disconnect
listeners. It answers the broker's two questions for its
devices: who they are (``authenticate``: the signed CONNECT) and what they may do (``access``:
their own topics; ``refuses_others``: no one else may publish their uplinks).

The rest of the platform it meets through the neutral messages on the bus (uplinks out,
``send`` for commands in), ``DeviceSessions`` (a device's coming and going, its own connection
or its gateway's) and the registry. Nothing outside ``dialects/alink`` names an Alink topic,
method or code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import msgspec

from hongshan.broker.auth import Access, Client, Credentials, Verdict
from hongshan.broker.message import Message, Refused
from hongshan.bus import Bus
from hongshan.dialects.alink import desired, gateway, ntp, ota, shadows
from hongshan.dialects.alink.auto_subscriptions import AutoSubscriptions
from hongshan.dialects.alink.device_auth import (
    DeviceDirectory,
    SignedConnectAuthenticator,
    device_access,
    device_client_id,
    device_of,
    registration_of,
)
from hongshan.dialects.alink.device_topics import DeviceTopics, direction_of
from hongshan.dialects.alink.dialect import TAPS, AlinkDialect, Taken, WasTaken
from hongshan.dialects.alink.messages import MalformedMessage
from hongshan.dialects.alink.registration import (
    REGISTER,
    HttpRegistration,
    device_token,
    token_client_id,
)
from hongshan.dialects.alink.rule_data import AlibabaRuleData
from hongshan.dialects.port import BrokerPort, DialectNeeds, Sessions, TapAnswer
from hongshan.errors import HongshanError
from hongshan.messages import (
    CommandResult,
    DeviceRef,
    Downlink,
    PushDesired,
    Registered,
    StatusChanged,
    Uplink,
)
from hongshan.mqtt.reason_codes import ReasonCode
from hongshan.things import model
from hongshan.things.model import Device, DeviceCredentials, TopicClass
from hongshan.things.presence import Way
from hongshan.things.tsl import ThingModel
from hongshan.twin.desired import Desired
from hongshan.twin.shadow import Shadow

log = logging.getLogger("hongshan.alink")

DeviceKey = tuple[str, str]
D = TypeVar("D")

REGISTRATION_LINGER = 5.0  # seconds a registering device has to read its answer
# what a tap answers for a payload its handler found malformed (answered already where it
# could): refused, 0x99 Payload format invalid
NOT_ALINK = Refused(ReasonCode.PAYLOAD_FORMAT_INVALID)
CLOCK_SKEW_WARNING = (
    "device_clock_skew is not set: a device's signed CONNECT, or a gateway's signed sub-device "
    "login, is accepted whatever its timestamp, so one captured on the network can be replayed. "
    "Set it (300 s is recommended) once your devices sign the current time."
)


class Documents(Protocol[D]):
    """One document per device, kept beside the registry (shadows, desired values)."""

    async def load(self) -> dict[DeviceKey, D]: ...

    def save(self, product_key: str, device_name: str, document: D) -> None: ...


class ProductView(Protocol):
    @property
    def protocol(self) -> model.Protocol: ...

    @property
    def topic_classes(self) -> tuple[TopicClass, ...]: ...


class AlinkRegistry(DeviceDirectory, gateway.GatewayDirectory, Protocol):
    """What the Alink dialect asks of the registry."""

    on_device_disabled: list[Callable[[str, str], None]]
    on_device_deleted: list[Callable[[str, str], None]]

    @property
    def shadows(self) -> Documents[Shadow]: ...

    @property
    def desired(self) -> Documents[Desired]: ...

    def product_view(self, product_key: str) -> ProductView | None: ...

    def thing_model_of(self, product_key: str) -> ThingModel | None: ...

    def is_online(self, product_key: str, device_name: str) -> bool: ...

    def device_known(self, product_key: str, device_name: str) -> bool: ...

    async def get_device(
        self, product_key: str, device_name: str, *, with_secret: bool = False
    ) -> Device: ...

    async def update_device(
        self, product_key: str, device_name: str, *, firmware: Mapping[str, str] | None = None
    ) -> object: ...


class Alink:
    """The Alink dialect, whole. Owns its parts and everything of Alibaba's protocol: topics
    and the rights of its devices' connections, automatic subscriptions, signed logins and
    registration, gateway and sub-device sessions, replies, system topics and status
    messages. Never sees another dialect's devices, the pipeline or the API: it publishes
    uplinks on the bus, serves commands (``send``) and tells ``DeviceSessions`` who came and
    went. ``attach`` puts it on a broker; until then it sends nothing."""

    name = "alink"

    def __init__(
        self,
        registry: AlinkRegistry,
        bus: Bus,
        sessions: Sessions,
        *,
        shadow_documents: dict[DeviceKey, Shadow],
        desired_documents: dict[DeviceKey, Desired],
        taken: Taken = lambda _device, _key: None,
        was_taken: WasTaken = lambda _device, _key: None,
        max_clock_skew: float | None = None,
        require_tls_for_securemode2: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``shadow_documents``, ``desired_documents``: what the registry kept of them
        (``open`` loads them); ``max_clock_skew``, ``require_tls_for_securemode2``: the
        settings of the same names (``SignedConnectAuthenticator``)."""
        self._registry = registry
        self._bus = bus
        self._sessions = sessions
        self._broker: BrokerPort | None = None
        online = registry.is_online
        devices = _AlinkDevices(registry)
        self._login = SignedConnectAuthenticator(
            devices,
            max_clock_skew=max_clock_skew,
            require_tls_for_securemode2=require_tls_for_securemode2,
            clock=clock,
        )
        self.things = AlinkDialect(
            thing_model=registry.thing_model_of,
            online=online,
            publish=self._publish,
            bus=bus,
            speaks_for=self._speaks_for,
            clock=clock,
            taken=taken,
            was_taken=was_taken,
        )
        self.shadows = shadows.ShadowService(
            shadow_documents,
            save=registry.shadows.save,
            publish=self._publish,
            online=online,
            clock=clock,
        )
        self.gateways = gateway.GatewayService(
            registry,
            self,
            self._publish,
            online=online,
            send_to=self._send_to,
            max_clock_skew=max_clock_skew,
            clock=clock,
        )
        self.desired = desired.DesiredService(
            desired_documents,
            save=registry.desired.save,
            publish=self._publish,
            push=self._push_desired,
            online=online,
            clock=clock,
        )
        self.registration = HttpRegistration(devices)
        self.ntp = ntp.NtpService(self._publish, clock)
        self.firmware = ota.FirmwareReports(bus, clock)
        self._clock = clock
        self.auto = AutoSubscriptions(self.gateways.carrier)
        self.rule_data = AlibabaRuleData(registry.thing_model_of, registry.device_known)

    @classmethod
    async def open(cls, needs: DialectNeeds) -> Alink:
        """The dialect of a platform (``DIALECTS``), with its shadows and desired values."""
        registry, settings = needs.registry, needs.settings
        if settings.device_clock_skew is None:
            log.warning(CLOCK_SKEW_WARNING)
        return cls(
            registry,
            needs.bus,
            needs.sessions,
            shadow_documents=await registry.shadows.load(),
            desired_documents=await registry.desired.load(),
            taken=needs.taken,
            was_taken=needs.was_taken,
            max_clock_skew=settings.device_clock_skew,
            require_tls_for_securemode2=settings.require_tls_for_securemode2,
        )

    # -- the Dialect ------------------------------------------------------------------------

    async def authenticate(self, credentials: Credentials) -> Verdict | None:
        return await self._login.authenticate(credentials)

    def access(self, client: Client) -> Access | None:
        return device_access(client, self._topic_classes)

    def refuses_others(self, topic: str) -> bool:
        return direction_of(topic, self._topic_classes) == "up"

    def attach(self, broker: BrokerPort) -> None:
        self._broker = broker
        for topic_filter in TAPS:
            broker.tap(topic_filter, self._thing_tap)
        for taps, handler in (
            (shadows.TAPS, self.shadows.on_message),
            (gateway.TAPS, self.gateways.on_message),
            (desired.TAPS, self.desired.on_message),
            (ntp.TAPS, self.ntp.on_message),
            (ota.TAPS, self.firmware.on_message),
        ):
            for topic_filter in taps:
                broker.tap(topic_filter, _refusing_malformed(handler))
        self.auto.attach(broker)
        broker.on_connected.append(self._connected)
        broker.on_disconnected.append(self._disconnected)
        self._bus.subscribe(self._status, kinds=(StatusChanged,))
        self._sessions.on_online.append(lambda device: self.desired.device_online(*device))
        self._registry.on_device_disabled.append(self._cut_off)
        self._registry.on_device_deleted.append(self._forget)

    async def send(self, command: Downlink) -> CommandResult:
        return await self.things.send(command)

    def stop_calls(self) -> None:
        self.things.stop_calls()

    def uplink_counts(self) -> dict[str, int]:
        return msgspec.structs.asdict(self.things.stats)

    # -- the broker's side ------------------------------------------------------------------

    def _port(self) -> BrokerPort:
        if self._broker is None:
            raise RuntimeError("the Alink dialect is not attached to a broker")
        return self._broker

    def _publish(self, topic: str, payload: bytes, qos: int) -> None:
        broker = self._broker  # (not _port(): a reply to every post comes this way)
        if broker is None:
            raise RuntimeError("the Alink dialect is not attached to a broker")
        broker.publish_from_server(topic, payload, qos)

    def _send_to(self, device: DeviceKey, topic: str, payload: bytes) -> object:
        return self._port().send_to(device_client_id(*device), topic, payload, qos=0)

    def _thing_tap(self, message: Message) -> TapAnswer:
        """A device's Alink message; a QoS 1 or 2 one is acknowledged once what it said is
        in the history (group commit: a few milliseconds), a resend once its first copy is.
        A payload that is no Alink message is refused: 0x99 Payload format invalid."""
        answer = self.things.on_message(message.topic, message.payload, message.qos)
        if answer is False:  # the usual: taken, nothing to wait for
            return None
        if isinstance(answer, MalformedMessage):
            return NOT_ALINK
        return answer

    def _status(self, uplink: Uplink) -> None:
        """A device came or went: Alibaba's status message, for a device of Alink's."""
        view = self._registry.product_view(uplink.device.product)
        if view is not None and view.protocol is model.Protocol.ALINK:
            self.things.on_status(uplink)

    def _topic_classes(self, product_key: str) -> tuple[TopicClass, ...]:
        view = self._registry.product_view(product_key)
        return view.topic_classes if view is not None else ()

    def _speaks_for(self, poster: DeviceKey, pk: str, dn: str) -> bool:
        """Whether ``poster`` may post for (pk, dn): the gateway it is logged in through."""
        return self.gateways.carrier.get((pk, dn)) == poster

    def _push_desired(self, pk: str, dn: str, values: dict[str, object]) -> None:
        """Desired values as a property set, not waited for, through the bus as every
        command goes (the device clears them once applied, as Alibaba's)."""
        command = PushDesired(device=DeviceRef(pk, dn), values=values)
        self._port().background(asyncio.ensure_future(self._bus.request(command)))

    # -- devices ----------------------------------------------------------------------------

    def _connected(self, client: Client, address: str) -> None:
        registering = registration_of(client)
        if registering is not None:
            task = asyncio.ensure_future(self._register(client.client_id, *registering))
            self._port().background(task)
            return
        device = device_of(client)
        if device is not None:
            self.auto.connected(client)
            self._sessions.came(device, Way.CONNECTION, address)

    def _disconnected(self, client: Client, why: str) -> None:
        device = device_of(client)
        if device is not None:
            self.gateways.gateway_gone(device)
            self._sessions.went(device, Way.CONNECTION, why)  # (a gateway may still carry it)

    async def _register(self, client_id: str, pk: str, dn: str, auth_type: str) -> None:
        """Answer a device's dynamic registration on its own connection (``registration``),
        then close it if the device does not (the SDKs do)."""
        broker = self._port()
        registry = self._registry
        this = broker.connection_of(client_id)
        linger = functools.partial(broker.disconnect_client, client_id, 0, only=this)
        asyncio.get_running_loop().call_later(REGISTRATION_LINGER, linger)
        answer: dict[str, str | None]
        try:
            if auth_type == REGISTER:
                device = await registry.get_device(pk, dn, with_secret=True)
                topic = "/ext/register"
                answer = {"productKey": pk, "deviceName": dn, "deviceSecret": device.device_secret}
            else:
                if not registry.device_known(pk, dn):
                    await registry.create_device(pk, dn)
                credentials = await registry.credentials(pk, dn)
                assert credentials is not None
                token_id = token_client_id(pk, dn)
                topic = "/ext/regnwl"
                answer = {
                    "clientId": token_id,
                    "productKey": pk,
                    "deviceName": dn,
                    "deviceToken": device_token(credentials.device_secret, token_id),
                }
        except HongshanError as exc:  # a device name Alibaba's rules refuse, say
            log.info("registration of %s&%s refused: %s", dn, pk, exc)
            broker.disconnect_client(client_id, ReasonCode.NOT_AUTHORIZED)
            return
        log.info("registered %s&%s (%s)", dn, pk, auth_type)
        self._bus.publish(
            Registered(device=DeviceRef(pk, dn), received=int(self._clock() * 1000), how=auth_type)
        )
        # QoS 0: sent now or never, so a secret is never queued in the broker's store
        broker.send_to(client_id, topic, msgspec.json.encode(answer), qos=0)

    def _cut_off(self, product_key: str, device_name: str) -> None:
        """A device disabled or deleted while online is disconnected (0x98)."""
        self.gateways.drop((product_key, device_name))
        client_id = device_client_id(product_key, device_name)
        if self._port().disconnect_client(client_id, ReasonCode.ADMINISTRATIVE_ACTION):
            log.info("disconnected %s: disabled or deleted", client_id)

    def _forget(self, product_key: str, device_name: str) -> None:
        """A deleted device: nothing of it stays in the dialect's memory."""
        self.shadows.forget(product_key, device_name)
        self.desired.forget(product_key, device_name)

    # -- a gateway's sub-devices (gateway.SubDeviceSessions) --------------------------------

    def sub_login(self, gateway: DeviceKey, sub: DeviceKey) -> None:
        """A sub-device online through its gateway: the gateway may use its topics, is
        subscribed to its system topics, and the sub-device is online at the gateway's address."""
        broker = self._port()
        carrier = device_client_id(*gateway)
        self.auto.changed()
        access = broker.access_of(carrier)
        if isinstance(access, DeviceTopics):
            access.carry(*sub, self._topic_classes(sub[0]))
        broker.access_changed(carrier)
        self._sessions.came(sub, Way.GATEWAY, broker.address_of(carrier), gateway=gateway)

    def sub_logout(self, gateway: DeviceKey, sub: DeviceKey) -> None:
        broker = self._port()
        carrier = device_client_id(*gateway)
        self.auto.changed()
        access = broker.access_of(carrier)
        if isinstance(access, DeviceTopics):
            access.drop(*sub)
        broker.access_changed(carrier)  # and whatever of the sub's it subscribed to itself
        # (its own connection may still hold it)
        self._sessions.went(sub, Way.GATEWAY, "logged out", gateway=gateway)


class _AlinkDevices:
    """The registry as Alink's logins and registrations see it: the devices of products that
    speak Alink, and no other's (a thingsboard product's device has a secret too, but logs in
    its own way)."""

    def __init__(self, registry: AlinkRegistry) -> None:
        self._registry = registry

    def _ours(self, product_key: str) -> bool:
        view = self._registry.product_view(product_key)
        return view is not None and view.protocol is model.Protocol.ALINK

    async def credentials(self, product_key: str, device_name: str) -> DeviceCredentials | None:
        if not self._ours(product_key):
            return None
        return await self._registry.credentials(product_key, device_name)

    async def registration_secret(self, product_key: str) -> str | None:
        if not self._ours(product_key):
            return None
        return await self._registry.registration_secret(product_key)

    def activated(self, product_key: str, device_name: str) -> bool | None:
        if not self._ours(product_key):
            return None
        return self._registry.activated(product_key, device_name)

    async def get_device(
        self, product_key: str, device_name: str, *, with_secret: bool = False
    ) -> Device:
        return await self._registry.get_device(product_key, device_name, with_secret=with_secret)


def _refusing_malformed(
    handler: Callable[[str, bytes], MalformedMessage | None],
) -> Callable[[Message], Refused | None]:
    """A broker tap for a part's handler, which takes (topic, payload). A payload the handler
    found malformed is refused as the Alink taps' are: 0x99 Payload format invalid (the handler
    has answered it where it could)."""

    def tap(message: Message) -> Refused | None:
        if handler(message.topic, message.payload) is None:
            return None
        return NOT_ALINK

    return tap
