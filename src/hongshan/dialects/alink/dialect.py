"""The Alink dialect: devices' property posts, events and replies in; calls to devices out.

Uplinks (``/sys/{pk}/{dn}/thing/event/property/post``, ``…/thing/event/{id}/post``) are checked
against the product's thing model. A message that fits becomes an ``Uplink`` for the pipeline
and is answered ``200`` on the ``_reply`` topic; one that does not is answered with the Alink
code and a message naming the identifier, and nothing of it goes further. A repeated message
(a device that did not see our reply and sent again: the same topic, id and payload, known by
a digest of them) is answered again and not passed on twice. A device that asks for no reply
(``"sys": {"ack": 0}``) gets none. A payload that is no Alink message at all
(``MalformedMessage``) is answered where its id can be read, and reported to the tap, which
refuses it (PUBACK 0x99): it goes nowhere.

A QoS 1 message may come again on a new connection when its PUBACK never reached the device:
the server was killed, or the store failed after the message was kept. Such messages are also
identified by a digest of topic, id and payload, handed out (``taken``) to be committed with
what they said; one the store says was taken (``was_taken``) is answered, not kept twice.

Downlinks: ``set_properties`` (``thing.service.property.set``) and ``invoke`` (a service:
asynchronously on ``…/thing/service/{id}``, or synchronously over RRPC on
``/ext/rrpc/{msgId}/sys/{pk}/{dn}/thing/service/{id}`` when the model says ``callType: sync``,
as Alibaba does) and ``rrpc`` (raw bytes on ``…/rrpc/request/{msgId}``, or over one of the
device's own topics — any other is refused, nothing sent). Each waits for the
device's reply when asked to, up to a timeout (at most ``MAX_WAIT``); at shutdown
(``stop_calls``) the calls still waiting are given up at once.

The dialect never sees a packet: the broker hands it (topic, payload) of each client's publish
through a tap, and it publishes through the function it was given. It is one part of the
dialect the platform plugs in (``plugin.Alink``), which builds it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from hongshan import messages as m
from hongshan.bus import Bus
from hongshan.dialects.alink import messages
from hongshan.dialects.alink.codes import code_of
from hongshan.dialects.alink.messages import (
    DEVICE_OFFLINE,
    REQUEST_INVALID,
    SUCCESS,
    TIMEOUT,
    MalformedMessage,
)
from hongshan.dialects.alink.topics import DeviceTopic, Topic, parse, sync_service_topic
from hongshan.dialects.alink.uplinks import (
    Refusal,
    event_uplink,
    history_uplinks,
    pack_uplinks,
    property_uplink,
)
from hongshan.errors import ShuttingDown
from hongshan.log_lines import DEVICE
from hongshan.messages import (
    DEFAULT_WAIT,
    MAX_WAIT,
    CommandResult,
    DeviceRef,
    Outcome,
    Problem,
    ProblemKind,
    Uplink,
)
from hongshan.pipeline.uplink import every
from hongshan.things.tsl import ThingModel

log = logging.getLogger("hongshan.alink")

# what the broker should hand the dialect (server-side subscriptions, "taps")
TAPS = ("/sys/+/+/thing/#", "/sys/+/+/rrpc/response/+", "/ext/rrpc/#")
# per device: the last accepted messages known again when repeated, as 8-byte digests (not
# the messages: a device's 32 posts of a megabyte each would otherwise be held as long as it
# stays online)
REMEMBERED_IDS = 32

_METHODS = {
    Topic.PROPERTY_POST: "thing.event.property.post",
    Topic.HISTORY_POST: "thing.event.property.history.post",
    Topic.PACK_POST: "thing.event.property.pack.post",
}

Publish = Callable[[str, bytes, int], None]
ProductModel = Callable[[str], ThingModel | None]
Online = Callable[[str, str], bool]
Device = tuple[str, str]
Taken = Callable[[Device, bytes], None]
WasTaken = Callable[[Device, bytes], "Awaitable[None] | None"]


def message_key(topic: str, msg_id: str, payload: bytes) -> bytes:
    """A taken message's identity across restarts (8 bytes: one device's resends are few)."""
    digest = hashlib.blake2b(topic.encode(), digest_size=8)
    digest.update(b"\0" + msg_id.encode() + b"\0")
    digest.update(payload)
    return digest.digest()


SET_METHOD = "thing.service.property.set"


def _service(method: str) -> str:
    """A call's service as the platform names it: ``set`` for a property set."""
    if method == SET_METHOD:
        return "set"
    return method.removeprefix("thing.service.")


def _method(request: messages.Request, found: DeviceTopic) -> str:
    """The method a reply names: the request's own, else the one its topic implies."""
    return request.method or _METHODS.get(found.topic) or f"thing.event.{found.identifier}.post"


class CallResult(msgspec.Struct, frozen=True, kw_only=True):
    """A device's answer to a call in Alink's words (or ours, when it gave none: 9200
    offline, 5005 timeout); ``send`` gives it to the platform as a ``CommandResult``."""

    msg_id: str
    outcome: Outcome
    code: int
    data: Any = None
    message: str = ""
    problems: list[Problem] = []  # the reply's data does not fit the model

    def neutral(self) -> CommandResult:
        return CommandResult(
            call_id=self.msg_id,
            outcome=self.outcome,
            code=self.code,
            output=self.data,
            message=self.message,
            problems=self.problems,
        )


def _offline(msg_id: str) -> CallResult:
    return CallResult(
        msg_id=msg_id, outcome=Outcome.OFFLINE, code=DEVICE_OFFLINE, message="device offline"
    )


def _not_own_topic(pk: str, dn: str) -> CommandResult:
    """An RRPC over a topic that is not the device's own (``/{pk}/{dn}/…``, a custom topic
    class's): refused, nothing sent."""
    message = f"topic must be one of the device's own: /{pk}/{dn}/…"
    return CommandResult(
        call_id="",
        outcome=Outcome.REFUSED,
        code=REQUEST_INVALID,
        message=message,
        problems=[Problem(kind=ProblemKind.INVALID, identifier="topic", message=message)],
    )


class AlinkStats(msgspec.Struct, kw_only=True):
    accepted: int = 0
    rejected: int = 0
    repeated: int = 0
    malformed: int = 0


class AlinkDialect:
    """Alink's thing messages, both ways: a device's posts, events and replies checked against
    its thing model, answered on ``…_reply`` and published on the bus as neutral uplinks; the
    platform's property sets, service calls and RRPC sent to the device, and each answer (or
    timeout) given back. Owns the calls waiting for an answer and the memory of recent
    messages (repeats); never sees a packet or a connection (``Alink``, the plug-in, owns
    those)."""

    def __init__(
        self,
        *,
        thing_model: ProductModel,
        online: Online,
        publish: Publish,
        bus: Bus,
        speaks_for: Callable[[tuple[str, str], str, str], bool] = lambda _poster, _pk, _dn: False,
        clock: Callable[[], float] = time.time,
        taken: Taken = lambda _device, _key: None,
        was_taken: WasTaken = lambda _device, _key: None,
    ) -> None:
        """``speaks_for(poster, pk, dn)``: may ``poster`` post for device (pk, dn) in a
        history or pack post (a gateway, for a sub-device logged in through it)."""
        self._thing_model = thing_model
        self._online = online
        self._publish = publish
        self._bus = bus
        self._speaks_for = speaks_for
        self._clock = clock
        self._taken = taken
        self._was_taken = was_taken
        self._stopping = False  # stop_calls() was called: no call waits or is sent
        # device -> the message_key of its recent accepted messages, oldest first (a dict
        # for its order); a repeat's reply is made again, as it is the same "success"
        self._accepted: dict[tuple[str, str], dict[int, None]] = {}
        self._waiting: dict[tuple[str, str, str], asyncio.Future[CallResult]] = {}
        self._custom_rrpc: dict[str, tuple[str, str, str]] = {}  # wrapped topic -> the call
        self._ids = itertools.count(int(clock() * 1000) % 1_000_000_000)
        self._status_second = -1
        self._status_stamps = ("", "")
        self.stats = AlinkStats()

    # -- in ---------------------------------------------------------------------------------

    def on_message(
        self, topic: str, payload: bytes, qos: int = 0
    ) -> bool | Awaitable[None] | MalformedMessage:
        """Handle a device's message. True when it was the answer to an RRPC call of ours,
        which is then not delivered to subscribers (the device would get its own answer); for
        a resend of a QoS 1 message already taken, what its acknowledgement must wait for
        (the outcome of the transaction that holds the first copy); ``MalformedMessage`` for
        a payload that is no Alink message (answered already where its id could be read),
        which its publisher is to be told was refused and which goes no further."""
        found = parse(topic)
        if found is not None:
            if found.topic is Topic.RRPC_RESPONSE:
                return self._resolve(found, found.identifier, messages.SUCCESS, payload)
            # (what is logged while it is handled, here or below, says which device)
            about = DEVICE.set((found.product_key, found.device_name))
            try:
                held = self._on_device_message(topic, found, payload, qos)
            finally:
                DEVICE.reset(about)
            return False if held is None else held
        sync = sync_service_topic(topic)
        if sync is not None:
            msg_id, call = sync
            return self._on_reply(topic, call, payload, qos, msg_id=msg_id) or False
        custom = self._custom_rrpc.get(topic)
        if custom is not None:  # the device's answer to an RRPC over one of its own topics
            pk, dn, msg_id = custom
            rrpc = DeviceTopic(product_key=pk, device_name=dn, topic=Topic.RRPC_RESPONSE)
            return self._resolve(rrpc, msg_id, SUCCESS, payload)
        return False

    def _on_device_message(
        self, topic: str, found: DeviceTopic, payload: bytes, qos: int = 0
    ) -> Awaitable[None] | MalformedMessage | None:
        if found.topic in (Topic.SERVICE_REPLY, Topic.PROPERTY_SET_REPLY):
            return self._on_reply(topic, found, payload, qos)
        try:
            request = messages.decode_request(payload)
        except MalformedMessage as exc:
            self.stats.malformed += 1
            log.info("%s: not an Alink request: %s", topic, exc)
            method = _METHODS.get(found.topic) or f"thing.event.{found.identifier}.post"
            return messages.refuse(exc, topic, method, self._publish)
        msg_id = str(request.id)
        device = (found.product_key, found.device_name)
        # remembered by Python's own hash of the three (keyed SipHash, so a collision cannot be
        # made on purpose; in C, where the digest a restart needs costs a microsecond a post)
        seen = hash((topic, msg_id, payload))
        key = message_key(topic, msg_id, payload) if qos else b""
        taken = self._was_taken(device, key) if qos else None
        remembered = self._accepted.get(device)
        # a repeat is the same message again (a device that missed our reply): the same topic,
        # id and payload; firmware that sends every post with the same id ("123", from the
        # examples) is not repeating
        if (remembered is not None and seen in remembered) or taken is not None:
            # (taken: a QoS 1 message whose PUBACK was lost to a crash or a failed commit)
            self.stats.repeated += 1
            if request.wants_reply:
                method = _method(request, found)
                reply = messages.reply_bytes(request.id, SUCCESS, method, "success")
                self._publish(topic + "_reply", reply, 0)
            return taken
        made = self._uplinks(found, request.params, msg_id, key)
        method = _method(request, found)
        committed: Awaitable[None] | None = None
        if isinstance(made, Refusal):
            self.stats.rejected += 1
            log.info("%s: refused %s: %s %s", "&".join(device), method, made.code, made.message)
            reply = messages.reply_bytes(request.id, made.code, method, made.message)
        else:
            self.stats.accepted += 1
            reply = messages.reply_bytes(request.id, SUCCESS, method, "success")
            self._remember(device, seen)
            if qos:
                self._taken(device, key)
            if isinstance(made, list):
                committed = every([self._bus.publish(uplink) for uplink in made])
            else:
                committed = self._bus.publish(made)
        if request.wants_reply:
            self._publish(topic + "_reply", reply, 0)
        return committed

    def _uplinks(
        self, found: DeviceTopic, params: Any, msg_id: str, key: bytes
    ) -> Uplink | list[Uplink] | Refusal:
        pk, dn = found.product_key, found.device_name
        now = int(self._clock() * 1000)
        kind = found.topic
        if kind is Topic.PROPERTY_POST:
            return property_uplink(self._thing_model(pk), pk, dn, params, msg_id, now, key)
        if kind is Topic.EVENT_POST:
            model = self._thing_model(pk)
            return event_uplink(model, pk, dn, found.identifier, params, msg_id, now, key)
        speaks = functools.partial(self._speaks_for, (pk, dn))
        if kind is Topic.HISTORY_POST:
            return history_uplinks(self._thing_model, (pk, dn), params, msg_id, now, speaks, key)
        return pack_uplinks(self._thing_model, (pk, dn), params, msg_id, now, speaks, key)

    def _remember(self, device: tuple[str, str], key: int) -> None:
        remembered = self._accepted.get(device)
        if remembered is None:
            remembered = self._accepted[device] = {}
        remembered[key] = None
        if len(remembered) > REMEMBERED_IDS:
            del remembered[next(iter(remembered))]  # the oldest (dicts keep insertion order)

    def _on_reply(
        self,
        topic: str,
        found: DeviceTopic,
        payload: bytes,
        qos: int,
        msg_id: str | None = None,
    ) -> Awaitable[None] | MalformedMessage | None:
        try:
            reply = messages.decode_reply(payload)
        except MalformedMessage as exc:  # (a reply is not answered: refused, and counted)
            self.stats.malformed += 1
            log.info("%s&%s: not an Alink reply: %s", found.device_name, found.product_key, exc)
            return messages.unraised(exc)
        msg_id = msg_id or str(reply.id)
        committed = self._bus.publish(
            m.ServiceReplied(
                device=DeviceRef(found.product_key, found.device_name),
                received=int(self._clock() * 1000),
                key=message_key(topic, msg_id, payload) if qos else b"",
                call_id=msg_id,
                service=found.identifier or "set",
                code=reply.code,
                output=reply.data,
                message=reply.message or "",
            )
        )
        self._resolve(found, msg_id, reply.code, reply.data, reply.message)
        return committed

    def _resolve(
        self,
        found: DeviceTopic,
        msg_id: str,
        code: int,
        data: Any,
        message: str | None = None,
    ) -> bool:
        """Complete the call ``msg_id`` of this device; False when none is waiting."""
        future = self._waiting.pop((found.product_key, found.device_name, msg_id), None)
        if future is None or future.done():
            return False
        problems: list[Problem] = []
        if found.topic is Topic.SERVICE_REPLY and code == SUCCESS:
            model = self._thing_model(found.product_key)
            if model is not None:
                problems = model.check_service_output(found.identifier, data or {})
        future.set_result(
            CallResult(
                msg_id=msg_id,
                outcome=Outcome.REPLIED,
                code=code,
                data=data,
                message=message or "",
                problems=problems,
            )
        )
        return True

    # -- out --------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return str(next(self._ids))

    async def send(self, command: m.Downlink) -> CommandResult:
        """Carry a command to a device and its answer back. What does not fit the thing model
        is refused here too, whoever sent it: ``DeviceCommands`` checks the API's calls, but
        desired values pushed when a device comes online were set against the model of then."""
        pk, dn = command.device.product, command.device.device
        refused = self._refusal(command)
        if refused is not None:
            return refused
        match command:
            case m.SetProperties() | m.PushDesired():
                result = await self.set_properties(pk, dn, command.values, wait=command.timeout)
            case m.CallService():
                result = await self.invoke(
                    pk, dn, command.service, command.params, wait=command.timeout
                )
            case m.RawCall():
                if command.topic is not None and not command.topic.startswith(f"/{pk}/{dn}/"):
                    return _not_own_topic(pk, dn)
                timeout = command.timeout or DEFAULT_WAIT
                result = await self.rrpc(pk, dn, command.payload, wait=timeout, topic=command.topic)
            case _:
                raise TypeError(f"not a command the Alink dialect carries: {command!r}")
        return result.neutral()

    def _refusal(self, command: m.Downlink) -> CommandResult | None:
        model = self._thing_model(command.device.product)
        match command:
            case m.SetProperties() | m.PushDesired() if model is not None:
                problems = model.check_property_set(command.values)
            case m.CallService() if model is not None:
                problems = model.check_service_input(command.service, command.params)
            case _:
                return None
        if not problems:
            return None
        first = problems[0]
        return CommandResult(
            call_id=command.call_id,
            outcome=Outcome.REFUSED,
            code=code_of(first),
            message=first.message,
            problems=problems,
        )

    async def set_properties(
        self, pk: str, dn: str, params: dict[str, Any], *, wait: float | None = None
    ) -> CallResult:
        """Ask a device to set properties; ``wait`` seconds for its reply (None: do not wait)."""
        topic = f"/sys/{pk}/{dn}/thing/service/property/set"
        return await self._call(pk, dn, topic, SET_METHOD, params, wait)

    async def invoke(
        self,
        pk: str,
        dn: str,
        identifier: str,
        params: dict[str, Any],
        *,
        wait: float | None = DEFAULT_WAIT,
    ) -> CallResult:
        """Call a service: synchronously over RRPC when the model says ``callType: sync``."""
        model = self._thing_model(pk)
        service = model.service_map.get(identifier) if model is not None else None
        method = f"thing.service.{identifier}"
        if service is not None and service.call_type == "sync":
            msg_id = self._next_id()
            topic = f"/ext/rrpc/{msg_id}/sys/{pk}/{dn}/thing/service/{identifier}"
            return await self._call(
                pk, dn, topic, method, params, wait or DEFAULT_WAIT, msg_id=msg_id
            )
        topic = f"/sys/{pk}/{dn}/thing/service/{identifier}"
        return await self._call(pk, dn, topic, method, params, wait)

    async def rrpc(
        self, pk: str, dn: str, payload: bytes, *, wait: float, topic: str | None = None
    ) -> CallResult:
        """RRPC: raw bytes to the device, its raw answer in ``CallResult.data``. Without
        ``topic``, Alibaba's original form (``…/rrpc/request/{msgId}``, answered on
        ``…/rrpc/response/{msgId}``); with one of the device's own topics, RRPC over that
        topic (``/ext/rrpc/{msgId}{topic}``, answered on the same topic)."""
        self._may_call(wait)
        if not self._online(pk, dn):
            return _offline("")
        msg_id = self._next_id()
        future = self._expect(pk, dn, msg_id)
        if topic is None:
            self._publish(f"/sys/{pk}/{dn}/rrpc/request/{msg_id}", payload, 0)
        else:
            wrapped = f"/ext/rrpc/{msg_id}{topic}"
            self._custom_rrpc[wrapped] = (pk, dn, msg_id)
            self._publish(wrapped, payload, 0)
        try:
            return await self._wait(pk, dn, msg_id, future, wait, None)
        finally:
            if topic is not None:
                self._custom_rrpc.pop(f"/ext/rrpc/{msg_id}{topic}", None)

    async def _call(
        self,
        pk: str,
        dn: str,
        topic: str,
        method: str,
        params: Any,
        wait: float | None,
        *,
        msg_id: str | None = None,
    ) -> CallResult:
        self._may_call(wait or None)
        msg_id = msg_id or self._next_id()
        if not self._online(pk, dn):
            return _offline(msg_id)
        future = self._expect(pk, dn, msg_id) if wait else None
        self._publish(topic, messages.call_bytes(msg_id, method, params), 1)
        self._bus.publish(
            m.CommandSent(
                device=DeviceRef(pk, dn),
                received=int(self._clock() * 1000),
                call_id=msg_id,
                service=_service(method),
                params=params,
                sets_properties=method == SET_METHOD,
            )
        )
        if future is None:
            return CallResult(msg_id=msg_id, outcome=Outcome.SENT, code=SUCCESS, message="sent")
        assert wait is not None
        return await self._wait(pk, dn, msg_id, future, wait, method)

    def _may_call(self, wait: float | None) -> None:
        """Before anything is sent: not while stopping, and no wait past ``MAX_WAIT`` (the
        API answers such a wait 400 first; this guards the platform's own callers)."""
        if self._stopping:
            raise ShuttingDown("shutting down: no call is sent to a device now")
        if wait is not None and not 0 < wait <= MAX_WAIT:
            raise ValueError(f"wait: {wait} s is not within 0 to {MAX_WAIT:g} s")

    def _expect(self, pk: str, dn: str, msg_id: str) -> asyncio.Future[CallResult]:
        future: asyncio.Future[CallResult] = asyncio.get_running_loop().create_future()
        self._waiting[pk, dn, msg_id] = future
        return future

    async def _wait(
        self,
        pk: str,
        dn: str,
        msg_id: str,
        future: asyncio.Future[CallResult],
        wait: float,
        method: str | None,  # None: a raw RRPC call, which has no line in the history
    ) -> CallResult:
        try:
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            return CallResult(
                msg_id=msg_id,
                outcome=Outcome.TIMED_OUT,
                code=TIMEOUT,
                message="the device did not answer",
            )
        except ShuttingDown:
            if method is not None:
                self._bus.publish(
                    m.CommandGivenUp(
                        device=DeviceRef(pk, dn),
                        received=int(self._clock() * 1000),
                        call_id=msg_id,
                        service=_service(method),
                        why="shutting down",
                        sets_properties=method == SET_METHOD,
                    )
                )
            raise
        finally:
            self._waiting.pop((pk, dn, msg_id), None)

    def stop_calls(self) -> None:
        """The platform is stopping: every call waiting for a device's answer is given up at
        once (its caller is told ``ShuttingDown``, its history line says so), and none is
        sent from now on. Before the HTTP server's shutdown, which waits for every request in
        flight: a call waiting out its timeout would hold the whole shutdown."""
        self._stopping = True
        waiting, self._waiting = self._waiting, {}
        for (pk, dn, msg_id), future in waiting.items():
            if not future.done():
                future.set_exception(
                    ShuttingDown(
                        f"shutting down: the call {msg_id} to {dn}&{pk} was given up "
                        "before the device answered"
                    )
                )

    # -- status -----------------------------------------------------------------------------

    def on_status(self, uplink: Uplink) -> None:
        """A device came or went (``StatusChanged`` on the bus): Alibaba's status message."""
        if isinstance(uplink, m.StatusChanged):
            pk, dn = uplink.device.product, uplink.device.device
            self.device_status(pk, dn, online=uplink.online, address=uplink.address)

    def device_status(self, pk: str, dn: str, online: bool, address: str = "") -> None:
        """Publish Alibaba's device status message on ``/as/mqtt/status/{pk}/{dn}``: ``time``
        in the server's local time and ``utcTime`` in UTC, as Alibaba writes them. ``lastTime``
        is Alibaba's last communication before the change; we give the change's own time."""
        now = self._clock()
        second = int(now)
        if second != self._status_second:  # formatted once a second, not once a device
            self._status_second = second
            self._status_stamps = messages.status_stamps(second)
        millis = f".{int(now * 1000) % 1000:03d}"
        local = self._status_stamps[0] + millis
        utc = self._status_stamps[1] + millis + "Z"
        status = messages.Status(
            status="online" if online else "offline",
            iot_id=f"{pk}.{dn}",
            product_key=pk,
            device_name=dn,
            time=local,
            utc_time=utc,
            last_time=local,
            utc_last_time=utc,
            client_ip=address.rsplit(":", 1)[0] if address else None,
        )
        self._publish(f"/as/mqtt/status/{pk}/{dn}", messages.encode(status), 1)
        if not online:
            self._accepted.pop((pk, dn), None)
