"""What a rule does when it fires: one small class per kind of action, with one method.

An action is built once per rule from its settings (``rules.definition``) and what it needs
(``ActionNeeds``), and ``start(output, fired)`` is called for each fire with the object the
rule SELECTed: it does its work at once and answers None (republish), or answers the coroutine
that does it (a command, a webhook), which the engine awaits beside the others. Either way a
failure is an exception — ``ActionFailed`` for one it foresaw — and the engine counts it, keeps
it in the rule's trace and hands it to the rule's error action; the other actions go on.
An alarm action raises or clears an alarm by the alarms' service (``AlarmDesk``); a rule
action hands the output to another rule's input by the engine (``Forwarder``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hongshan.alarms.model import Alarm, Escalation, Originator, Severity
from hongshan.errors import HongshanError, RemoteProtocolError
from hongshan.messages import DEFAULT_WAIT, DeviceRef, Outcome
from hongshan.messages.commands import CommandKind
from hongshan.mqtt.topics import validate_topic_name
from hongshan.rules.definition import (
    AlarmAction,
    ForwardAction,
    InvokeAction,
    RepublishAction,
    SetAction,
)
from hongshan.rules.values import UNDEFINED, to_string
from hongshan.services.commands import DeviceCommands
from hongshan.services.fanout import FanOut
from hongshan.things.model import Reach, RegistryError

Pending = Coroutine[Any, Any, None]


class ActionFailed(HongshanError):
    """An action of a rule that could not be done (a webhook that kept failing, a device
    offline, a topic its template cannot fill); kept in the rule's trace, never answered."""


@dataclass(frozen=True, slots=True)
class Fired:
    """One fire of a rule (or a run of a scene's step: ``by`` "scene"): the message it ran on,
    what it made, how many republishes deep the message is (0: a device's or the platform's
    own), and the device the message speaks for (None: a topic that names none)."""

    rule_id: int
    rule_name: str
    topic: str
    payload: Any
    output: dict[str, Any]
    depth: int
    device: DeviceRef | None = None
    by: Literal["rule", "scene"] = "rule"

    @property
    def origin(self) -> str:
        """Who made what the action does: ``rule:<id>`` or ``scene:<id>`` (a command's
        origin, an alarm's raiser)."""
        return f"{self.by}:{self.rule_id}"


class Action(Protocol):
    kind: str  # its ``type``: "republish", "set", "invoke", "webhook", "alarm", "rule"

    def start(self, output: dict[str, Any], fired: Fired) -> Pending | None:
        """Do it with ``output``: None when done, or the coroutine that does it."""


Republisher = Callable[[str, dict[str, Any], int, int, str], None]
"""(topic, output, qos, depth, tenant): the engine publishes it, and runs the tenant's rules
on it; ``ActionFailed`` for a topic of another tenant's device."""


_FIELD = re.compile(r"\$\{([^}]*)\}")


class TopicTemplate:
    """A topic with ``${field}`` (or ``${a.b}``) filled from the rule's output; a field the
    output lacks, or a value that makes no topic name, fails the action."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._fixed = _FIELD.search(template) is None

    def fill(self, output: dict[str, Any]) -> str:
        if self._fixed:
            return self.template
        return _FIELD.sub(lambda match: _field_text(output, match.group(1)), self.template)


def _field_text(output: dict[str, Any], name: str) -> str:
    value: Any = output
    for step in name.split("."):
        value = value.get(step, UNDEFINED) if type(value) is dict else UNDEFINED
    text = to_string(value)
    if text is UNDEFINED:
        raise ActionFailed(f"${{{name}}}: the rule's output has no value there")
    return str(text)


class Republish:
    """Publish the output as JSON on a topic (templated), as the platform: subscribers get it,
    and the rules listening there run on it, one republish deeper."""

    kind = "republish"

    def __init__(self, spec: RepublishAction, republish: Republisher, tenant: str) -> None:
        self._topic = TopicTemplate(spec.topic)
        self._qos = spec.qos
        self._republish = republish
        self._tenant = tenant  # the rule's or scene's

    def start(self, output: dict[str, Any], fired: Fired) -> None:
        topic = self._topic.fill(output)
        try:
            validate_topic_name(topic)
        except RemoteProtocolError as exc:
            raise ActionFailed(f"republish to {topic!r}: {exc}") from None
        self._republish(topic, output, self._qos, fired.depth + 1, self._tenant)


Forwarder = Callable[[str, dict[str, Any], Fired, str], None]
"""(rule name, output, fired, tenant): the engine runs that rule alone on the output, one
deeper; ``ActionFailed`` when no rule of that name is running in that tenant."""


class ForwardToRule:
    """Hand the output to another rule's input: the engine runs that rule (only it) on it,
    one step deeper, and publishes nothing."""

    kind = "rule"

    def __init__(self, spec: ForwardAction, forward: Forwarder, tenant: str) -> None:
        self._rule = spec.rule
        self._forward = forward
        self._tenant = tenant  # the forwarding rule's or scene's: a rule of its own only

    def start(self, output: dict[str, Any], fired: Fired) -> None:
        self._forward(self._rule, output, fired, self._tenant)


_DONE = (Outcome.SENT, Outcome.REPLIED)


class _Command:
    """A set or an invoke: to one device by ``DeviceCommands`` (checked against its thing
    model there; sent, not waited for: a reply comes on ``$things/{pk}/{dn}/replies``), an
    offline device failing the action; or to the devices of a group, product, tag or
    district as a batch by ``FanOut`` (the action is done once the batch is kept; its
    commands' ends are in their records and on ``$things/…/commands``). Either way the
    commands' origin is ``rule:<id>``."""

    kind: str

    def __init__(
        self,
        spec: SetAction | InvokeAction,
        service: str,
        fixed: dict[str, Any] | None,
        commands: DeviceCommands,
        fan_out: FanOut,
        tenant: str,
    ) -> None:
        """``tenant``: the rule's or scene's, whose devices alone a group, product, tag or
        district reaches."""
        target = spec.target()
        self._reach = Reach(tenant=tenant)
        self._fixed = fixed
        self._target = target
        self._device = (
            DeviceRef(target.product_key, target.device_name)
            if target.product_key is not None and target.device_name is not None
            else None
        )
        self._service = service
        self._commands = commands
        self._fan_out = fan_out

    def start(self, output: dict[str, Any], fired: Fired) -> Pending:
        return self._send(output if self._fixed is None else self._fixed, fired.origin)

    async def _send(self, output: dict[str, Any], origin: str) -> None:
        kind = CommandKind.SET if self.kind == "set" else CommandKind.CALL
        if self._device is None:
            try:
                await self._fan_out.send(
                    self._target, kind, self._service, output, wait=DEFAULT_WAIT, ttl=None,
                    origin=origin, reach=self._reach,
                )  # fmt: skip
            except RegistryError as exc:
                raise ActionFailed(f"{self.kind} on {self._target.describe()}: {exc}") from None
            return
        if kind is CommandKind.SET:
            result = await self._commands.set(self._device, output, wait=None, origin=origin)
        else:
            result = await self._commands.call(
                self._device, self._service, output, wait=None, origin=origin
            )
        if result.outcome not in _DONE:
            raise ActionFailed(
                f"{self._service} on {_named(self._device)}: {result.outcome}"
                + (f" ({result.message})" if result.message else "")
            )


class SetProperties(_Command):
    """Set the output (or the action's fixed ``values``) as property values on the action's
    device or devices."""

    kind = "set"

    def __init__(
        self, spec: SetAction, commands: DeviceCommands, fan_out: FanOut, tenant: str
    ) -> None:
        super().__init__(spec, "set", spec.values, commands, fan_out, tenant)


class InvokeService(_Command):
    """Call a service of the action's device or devices with the output (or the action's
    fixed ``params``) as its input."""

    kind = "invoke"

    def __init__(
        self, spec: InvokeAction, commands: DeviceCommands, fan_out: FanOut, tenant: str
    ) -> None:
        super().__init__(spec, spec.service, spec.params, commands, fan_out, tenant)


class AlarmDesk(Protocol):
    """What an alarm action asks of the alarms (``services.alarms.AlarmService``)."""

    async def raise_alarm(
        self,
        device: DeviceRef,
        type: str,
        severity: Severity,
        details: dict[str, Any],
        originator: Originator,
        *,
        escalation: Escalation | None = None,
        depth: int = 0,
    ) -> Alarm: ...

    async def clear_alarm(
        self, device: DeviceRef, type: str, *, by: str, depth: int = 0
    ) -> Alarm | None: ...


class RaiseAlarm:
    """Raise an alarm of a type on a device (the one the message speaks for, unless the action
    names one) with the output as its details — a repeat when one is open — or, with
    ``clear``, clear the open one. A message that speaks for no device fails the action."""

    kind = "alarm"

    def __init__(self, spec: AlarmAction, alarms: AlarmDesk) -> None:
        self._spec = spec
        self._alarms = alarms
        named = spec.product_key is not None and spec.device_name is not None
        self._device = DeviceRef(spec.product_key, spec.device_name) if named else None  # type: ignore[arg-type]

    def start(self, output: dict[str, Any], fired: Fired) -> Pending:
        device = self._device or fired.device
        if device is None:
            raise ActionFailed(
                f"alarm {self._spec.alarm_type!r}: {fired.topic} speaks for no device "
                "(name one: productKey and deviceName)"
            )
        return self._do(device, output, fired)

    async def _do(self, device: DeviceRef, output: dict[str, Any], fired: Fired) -> None:
        spec = self._spec
        by = fired.origin
        if spec.clear:
            await self._alarms.clear_alarm(device, spec.alarm_type, by=by, depth=fired.depth + 1)
            return
        await self._alarms.raise_alarm(
            device,
            spec.alarm_type,
            spec.severity,
            output,
            Originator(kind=fired.by, id=str(fired.rule_id)),
            escalation=spec.escalation,
            depth=fired.depth + 1,
        )


def _named(device: DeviceRef) -> str:
    return f"{device.product}/{device.device}"
