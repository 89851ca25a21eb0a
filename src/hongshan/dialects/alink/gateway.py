"""Gateways: the topology of their sub-devices and the sub-devices' sessions.

A gateway (a product of node type ``gateway``) vouches for each sub-device with the
sub-device's own signature — ``sign`` = HMAC(deviceSecret, ``clientId…deviceName…productKey…
timestamp…``), as in a CONNECT — and then carries its messages on its own connection:

=============================================  =========================================
``/sys/{gw}/thing/topo/add``                   bind sub-devices (signed) to the gateway
``/sys/{gw}/thing/topo/delete``                unbind them (and log them out)
``/sys/{gw}/thing/topo/get``                   the gateway's sub-devices
``/sys/{gw}/thing/sub/register``               secrets for new sub-devices (dynamic
                                               registration, if their product allows it)
``/ext/session/{gw}/combine/login``            one sub-device online (signed)
``/ext/session/{gw}/combine/batch_login``      several (``params.deviceList``)
``/ext/session/{gw}/combine/logout``           one offline
``/ext/session/{gw}/combine/batch_logout``     several
=============================================  =========================================

each answered on its ``_reply`` topic with ``code`` 200 or Alibaba's code. A sub-device may log
in only through the gateway it is bound to, only while enabled.

Alibaba signs a sub-device's topology add and login like a CONNECT: clientId, deviceName,
productKey and timestamp (milliseconds), with the sub-device's secret. A signature is therefore
only as fresh as its timestamp: one is required, and with ``device_clock_skew`` it must be that
close to now, as for a CONNECT — else a gateway that saw another's request could replay it.
And a sub-device has one gateway at a time: binding it to a second one is refused until the
first removes it (topology delete), so a replayed request cannot take a sub-device over. For a
gateway that cannot (broken, gone), an operator unbinds the sub-device (``unbind``: the REST API's
``DELETE …/devices/{dn}/gateway``, ``hongshan device unbind``); the gateway is then told on its
``/sys/{gw}/thing/topo/change`` (status 1, deleted), as Alibaba tells it of changes made in the
cloud.

Once logged in, the gateway may publish and subscribe on the sub-device's topics and is
subscribed to its system topics; when the gateway logs it out, unbinds it or goes offline
itself, the sub-device goes offline.

Registry work is asynchronous; each gateway's requests are handled one at a time, in order.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from hongshan.dialects.alink import messages
from hongshan.dialects.alink.messages import AUTH_FAILED, REQUEST_INVALID, SUCCESS, MalformedMessage
from hongshan.dialects.alink.registration import NOT_ALLOWED, registration_refusal
from hongshan.errors import HongshanError
from hongshan.identity.alibaba import timestamp_fresh, verify_fields
from hongshan.things.model import Device, DeviceCredentials, DeviceFilter, NodeType

log = logging.getLogger("hongshan.gateway")

TAPS = ("/sys/+/+/thing/topo/+", "/sys/+/+/thing/sub/register", "/ext/session/+/+/combine/+")

DEVICE_DISABLED = 522  # Alibaba: device forbidden
DEVICE_NOT_FOUND = 6100  # Alibaba: device not found
TOPO_NOT_EXIST = 6401  # Alibaba: topo relation not exist
TOPO_SELF = 6402  # Alibaba: a device cannot be its own sub-device
GATEWAY_OFFLINE = 520  # the gateway's session ended while its request was handled
NOT_A_GATEWAY = 6204  # the publishing device's product is not a gateway product
MAX_BATCH = 100  # sub-devices in one request
TOPO_DELETED = 1  # thing.topo.change status: 0 created, 1 deleted, 2 enabled, 8 disabled

DeviceKey = tuple[str, str]


class GatewayDirectory(Protocol):
    """What the gateway protocol needs of the registry."""

    async def credentials(self, product_key: str, device_name: str) -> DeviceCredentials | None: ...

    def node_type(self, product_key: str) -> NodeType | None: ...

    async def get_device(self, product_key: str, device_name: str) -> Device: ...

    async def unbind_gateway(
        self, sub: DeviceKey, gateway: DeviceKey | None = None
    ) -> DeviceKey | None: ...

    async def bind_gateway(self, gateway: DeviceKey, subs: list[DeviceKey]) -> list[DeviceKey]: ...

    async def list_devices(self, where: DeviceFilter) -> list[Device]: ...

    async def registration_secret(self, product_key: str) -> str | None: ...

    def activated(self, product_key: str, device_name: str) -> bool | None: ...

    async def create_device(self, product_key: str, device_name: str | None = None) -> Device: ...


class SubDeviceSessions(Protocol):
    """What the platform does when a sub-device comes online through a gateway, or leaves."""

    def sub_login(self, gateway: DeviceKey, sub: DeviceKey) -> None: ...

    def sub_logout(self, gateway: DeviceKey, sub: DeviceKey) -> None: ...


class _Refused(HongshanError):
    """A gateway's request refused, answered with ``protocol_code`` (an Alink code)."""

    protocol_code: int

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.protocol_code = code


class GatewayService:
    def __init__(
        self,
        directory: GatewayDirectory,
        sessions: SubDeviceSessions,
        publish: Callable[[str, bytes, int], None],
        *,
        online: Callable[[str, str], bool],
        send_to: Callable[[DeviceKey, str, bytes], object],
        max_clock_skew: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``send_to(gateway, topic, payload)``: to that gateway's connection alone (answers
        that carry secrets); ``online``: whether a device is connected; ``max_clock_skew``
        (seconds): how far a sub-device's signed timestamp may be from now (the CONNECT's
        ``device_clock_skew``; None: no window)."""
        self._max_clock_skew = max_clock_skew
        self._clock = clock
        self._directory = directory
        self._sessions = sessions
        self._publish = publish
        self._online = online
        self._send_to = send_to
        self._locks: dict[DeviceKey, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.logged_in: dict[DeviceKey, set[DeviceKey]] = {}  # gateway -> its online subs
        self.carrier: dict[DeviceKey, DeviceKey] = {}  # sub -> the gateway it is online through
        # ids of the platform's own requests to gateways (Alibaba: a string of 0 to 4294967295)
        self._ids = itertools.count(int(clock() * 1000) % 1_000_000_000)

    # -- in ---------------------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> MalformedMessage | None:
        """A gateway's request, handled in the background; one that is no Alink request is
        answered and returned at once (``messages.refuse``), for its tap to refuse."""
        levels = topic.split("/")
        if len(levels) != 7 or levels[-1].endswith("_reply"):
            return None
        if levels[1] == "sys" and levels[4:6] in (["thing", "topo"], ["thing", "sub"]):
            action = levels[5] + "/" + levels[6]
        elif levels[1] == "ext" and levels[2] == "session" and levels[5] == "combine":
            action = "session/" + levels[6]
        else:
            return None
        try:
            request = messages.decode_request(payload)
        except MalformedMessage as exc:
            log.info("%s: not an Alink request: %s", topic, exc)
            return messages.refuse(exc, topic, _METHODS.get(action, action), self._publish)
        gateway = (levels[2], levels[3]) if levels[1] == "sys" else (levels[3], levels[4])
        task = asyncio.ensure_future(self._handle(gateway, topic, action, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _handle(
        self, gateway: DeviceKey, topic: str, action: str, request: messages.Request
    ) -> None:
        lock = self._locks.setdefault(gateway, asyncio.Lock())
        async with lock:
            method = request.method or _METHODS.get(action, action)
            try:
                if self._directory.node_type(gateway[0]) is not NodeType.GATEWAY:
                    raise _Refused(NOT_A_GATEWAY, "the device is not a gateway")
                data = await self._do(gateway, action, request.params)
            except _Refused as refused:
                code, message, data = refused.protocol_code, str(refused), None
                log.info("%s&%s: %s refused: %s %s", gateway[1], gateway[0], action, code, message)
            except HongshanError as exc:  # a device name Alibaba's rules refuse, say
                code, message, data = REQUEST_INVALID, f"request parameter error: {exc}", None
            except Exception:
                log.exception("%s: %s failed", topic, action)
                code, message, data = 500, "server error", None
            else:
                code, message = SUCCESS, "success"
            if request.wants_reply:
                body = messages.reply_bytes(request.id, code, method, message, data)
                if action == "sub/register":  # secrets: for the gateway's eyes only
                    self._send_to(gateway, topic + "_reply", body)
                else:
                    self._publish(topic + "_reply", body, 0)

    async def _do(self, gateway: DeviceKey, action: str, params: Any) -> Any:
        if action == "topo/add":
            # every signature is checked before anything is bound: all or nothing
            signed = [await self._check_signed(item, None) for item in _items(params)]
            return await self._bind(gateway, signed)
        if action == "topo/delete":
            return [await self._unbind(gateway, item) for item in _items(params)]
        if action == "sub/register":
            return [await self._register(item) for item in _items(params)]
        if action == "topo/get":
            subs = await self._directory.list_devices(DeviceFilter(gateway=gateway, limit=10_000))
            return [{"productKey": d.product_key, "deviceName": d.device_name} for d in subs]
        if action == "session/login":
            if not isinstance(params, dict):
                raise _Refused(REQUEST_INVALID, "params must be an object")
            sub = await self._check_signed(params, params.get("signMethod"))
            return await self._login(gateway, sub)
        if action == "session/batch_login":
            if not isinstance(params, dict) or not isinstance(params.get("deviceList"), list):
                raise _Refused(REQUEST_INVALID, "params.deviceList must be a list")
            method = params.get("signMethod")
            items = _items(params["deviceList"])
            signed = [await self._check_signed(item, method) for item in items]
            return [await self._login(gateway, sub) for sub in signed]
        if action == "session/logout":
            sub = _key(params)
            await self._check_bound(gateway, [sub])
            return self._logout(gateway, sub)
        if action == "session/batch_logout":
            leaving = [_key(item) for item in _items(params)]
            await self._check_bound(gateway, leaving)  # all or nothing
            return [self._logout(gateway, sub) for sub in leaving]
        raise _Refused(REQUEST_INVALID, f"unknown request {action}")

    async def _check_signed(self, item: dict[str, Any], method: Any) -> DeviceKey:
        sub = _key(item)
        credentials = await self._directory.credentials(*sub)
        if credentials is None:
            raise _Refused(DEVICE_NOT_FOUND, f"device not found: {sub[1]}&{sub[0]}")
        fields = {"productKey": sub[0], "deviceName": sub[1]}
        for name in ("clientId", "timestamp"):
            if name in item:
                fields[name] = str(item[name])
        timestamp = fields.get("timestamp")
        if timestamp is None:
            # without one, the signature never changes: a password anyone who saw it may reuse
            raise _Refused(
                REQUEST_INVALID, f"request parameter error: {sub[1]}&{sub[0]}: timestamp missing"
            )
        method = item.get("signmethod") or item.get("signMethod") or method or "hmacmd5"
        sign = item.get("sign")
        if not isinstance(sign, str) or not verify_fields(
            credentials.device_secret, str(method), fields, sign
        ):
            raise _Refused(AUTH_FAILED, f"request auth error: {sub[1]}&{sub[0]}")
        if not timestamp_fresh(timestamp, self._clock(), self._max_clock_skew):
            # Alibaba answers an expired signature as a failed one (401)
            log.info("%s&%s: signed timestamp %s outside the allowed skew", *sub[::-1], timestamp)
            raise _Refused(AUTH_FAILED, f"request auth error: {sub[1]}&{sub[0]}: timestamp")
        if not credentials.enabled:
            raise _Refused(DEVICE_DISABLED, f"device forbidden: {sub[1]}&{sub[0]}")
        return sub

    async def _bind(self, gateway: DeviceKey, subs: list[DeviceKey]) -> list[dict[str, str]]:
        for sub in subs:
            if sub == gateway:
                raise _Refused(TOPO_SELF, "topo relation cannot add by self")
            if self._directory.node_type(sub[0]) is not NodeType.SUBDEVICE:
                raise _Refused(REQUEST_INVALID, f"{sub[1]}&{sub[0]} is not a sub-device")
        taken = await self._directory.bind_gateway(gateway, subs)
        if taken:
            # one gateway at a time (Alibaba's topology): the one that has it deletes the
            # topology first; nothing of this request was bound (all or nothing)
            names = ", ".join(f"{dn}&{pk}" for pk, dn in taken)
            raise _Refused(
                REQUEST_INVALID,
                f"request parameter error: bound to another gateway: {names}; "
                "delete that topology first",
            )
        return [{"productKey": pk, "deviceName": dn} for pk, dn in subs]

    async def _unbind(self, gateway: DeviceKey, item: dict[str, Any]) -> dict[str, str]:
        sub = _key(item)
        await self._check_bound(gateway, [sub])
        self._logout(gateway, sub)
        await self._directory.unbind_gateway(sub, gateway)
        return {"productKey": sub[0], "deviceName": sub[1]}

    async def _register(self, item: dict[str, Any]) -> dict[str, str]:
        """A sub-device's secret, created now if need be — only for a sub-device product that
        allows dynamic registration, and only for a device that never came online."""
        pk, dn = _key(item)
        if self._directory.node_type(pk) is not NodeType.SUBDEVICE:
            raise _Refused(REQUEST_INVALID, f"{dn}&{pk} is not a sub-device")
        # the gateway vouches for it: no signature, and made now if it does not exist
        refusal = await registration_refusal(self._directory, pk, dn, create=True, signature=None)
        if refusal == NOT_ALLOWED:
            raise _Refused(AUTH_FAILED, f"product {pk} does not allow dynamic registration")
        if refusal is not None:
            raise _Refused(AUTH_FAILED, f"{dn}&{pk}: {refusal}")
        if self._directory.activated(pk, dn) is None:
            await self._directory.create_device(pk, dn)
        credentials = await self._directory.credentials(pk, dn)
        assert credentials is not None
        return {
            "iotId": f"{pk}.{dn}",
            "productKey": pk,
            "deviceName": dn,
            "deviceSecret": credentials.device_secret,
        }

    async def _check_bound(self, gateway: DeviceKey, subs: list[DeviceKey]) -> None:
        """Refuse (6401) unless every one of ``subs`` is bound to ``gateway``: a gateway acts
        only for its own sub-devices."""
        bound = await self._directory.list_devices(DeviceFilter(gateway=gateway, limit=10_000))
        keys = {(d.product_key, d.device_name) for d in bound}
        for sub in subs:
            if sub not in keys:
                raise _Refused(TOPO_NOT_EXIST, f"topo relation not exist: {sub[1]}&{sub[0]}")

    async def _login(self, gateway: DeviceKey, sub: DeviceKey) -> dict[str, str]:
        await self._check_bound(gateway, [sub])
        if not self._online(*gateway):
            # it went while we checked: a login now would outlive it
            raise _Refused(GATEWAY_OFFLINE, "the gateway is no longer connected")
        previous = self.carrier.get(sub)
        if previous is not None and previous != gateway:
            self._logout(previous, sub)
        # again when already logged in: the gateway may be a new connection that needs the rights
        self.carrier[sub] = gateway
        self.logged_in.setdefault(gateway, set()).add(sub)
        self._sessions.sub_login(gateway, sub)
        return {"productKey": sub[0], "deviceName": sub[1]}

    def _logout(self, gateway: DeviceKey, sub: DeviceKey) -> dict[str, str]:
        if self.carrier.get(sub) == gateway:
            del self.carrier[sub]
            self.logged_in.get(gateway, set()).discard(sub)
            self._sessions.sub_logout(gateway, sub)
        return {"productKey": sub[0], "deviceName": sub[1]}

    # -- the platform's side ----------------------------------------------------------------

    def gateway_gone(self, gateway: DeviceKey) -> None:
        """The gateway's connection ended: its sub-devices go offline with it."""
        for sub in sorted(self.logged_in.pop(gateway, set())):
            self.carrier.pop(sub, None)
            self._sessions.sub_logout(gateway, sub)

    async def unbind(self, sub: DeviceKey) -> DeviceKey | None:
        """An operator takes a sub-device out of its gateway's topology (Alibaba's
        RemoveThingTopo), for a gateway that is gone for good, say: the sub-device is logged
        out if it is online through it, the gateway is told on its ``thing/topo/change``, and
        another gateway may add it. Returns the gateway it was taken from, None when it had
        none; ``RegistryError`` when there is no such device."""
        for _ in range(3):  # (again only if another gateway took it meanwhile)
            gateway = (await self._directory.get_device(*sub)).gateway
            if gateway is None:
                return None
            # in the gateway's turn, so never between its login's topology check and the login
            async with self._locks.setdefault(gateway, asyncio.Lock()):
                if await self._directory.unbind_gateway(sub, gateway) is None:
                    continue
                self.drop(sub)
                self._topology_changed(gateway, TOPO_DELETED, [sub])
                return gateway
        return None

    def _topology_changed(self, gateway: DeviceKey, status: int, subs: list[DeviceKey]) -> None:
        """Tell ``gateway`` what the platform changed in its topology, as Alibaba does
        ("Notify the gateway of topology changes": ``thing.topo.change`` with ``status`` and
        ``subList``), at QoS 1 so that a gateway with a persistent session learns it when it is
        back."""
        params = {
            "status": status,
            "subList": [{"productKey": pk, "deviceName": dn} for pk, dn in subs],
        }
        topic = f"/sys/{gateway[0]}/{gateway[1]}/thing/topo/change"
        self._publish(topic, messages.call_bytes(self._next_id(), "thing.topo.change", params), 1)

    def _next_id(self) -> str:
        return str(next(self._ids))

    def drop(self, sub: DeviceKey) -> None:
        """A sub-device disabled or deleted: its session ends."""
        gateway = self.carrier.get(sub)
        if gateway is not None:
            self._logout(gateway, sub)

    async def idle(self) -> None:
        """Wait for the requests being handled (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


_METHODS = {
    "topo/add": "thing.topo.add",
    "topo/delete": "thing.topo.delete",
    "topo/get": "thing.topo.get",
    "sub/register": "thing.sub.register",
    "session/login": "combine.login",
    "session/batch_login": "combine.batch.login",
    "session/logout": "combine.logout",
    "session/batch_logout": "combine.batch.logout",
}


def _items(params: Any) -> list[dict[str, Any]]:
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise _Refused(REQUEST_INVALID, "params must be a list of objects")
    if len(params) > MAX_BATCH:
        raise _Refused(REQUEST_INVALID, f"at most {MAX_BATCH} sub-devices per request")
    return params


def _key(item: Any) -> DeviceKey:
    if not isinstance(item, dict):
        raise _Refused(REQUEST_INVALID, "a sub-device is an object")
    pk, dn = item.get("productKey"), item.get("deviceName")
    if not isinstance(pk, str) or not isinstance(dn, str) or not pk or not dn:
        raise _Refused(REQUEST_INVALID, "productKey and deviceName are required")
    return pk, dn
