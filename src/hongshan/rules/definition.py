"""What a rule is as it is kept, shown and changed: its name, its text, whether it runs, its
limit, and its actions' settings — data only; ``services.rules`` runs it.

An action's ``type`` says what it does with the object the rule SELECTed (its *output*):

- ``republish``: publish it, as JSON, on ``topic`` (``${field}`` in the topic is the output's
  field, ``${a.b}`` a nested one);
- ``set``: set it as property values on one device (``productKey``/``deviceName``), or on
  the devices of a ``group``, a product (``productKey`` alone), a ``tag`` (``key:value``) or
  a ``district``, as a batch sent paced; or set ``values`` when given (a scene's fixed
  values: ``{"LightSwitch": 1}``);
- ``invoke``: call ``service`` with it as the input, or with ``params`` when given, on one
  device or many alike;
- ``webhook``: POST it, as JSON, to ``url``, signed with the rule's secret (HMAC-SHA256 of
  the body, hex, in the ``X-Hongshan-Signature`` header as ``sha256=<hex>``), waiting
  ``timeout`` seconds for a 2xx, tried ``retries`` more times after a failure, ``backoff``
  seconds after the first and twice as long after each next one.

- ``alarm``: raise an alarm of type ``alarmType`` and ``severity`` (default ``major``) on
  the device the message speaks for (or ``productKey``/``deviceName``), the output as its
  details, with an optional ``escalation`` policy (``after`` seconds unacknowledged raise it
  ``to`` a severity; ``remindEvery`` seconds until acknowledged); with ``clear`` true, clear
  that device's open alarm of that type instead.
- ``rule``: hand it to the rule named ``rule`` as that rule's input (ThingsBoard's rule chain
  node, AWS IoT's ``$aws/rules/<name>``): only that rule runs on it — its WHERE and SELECT
  on the output as the payload, ``topic()`` ``$rules/<name>`` (``RULE_INPUT``), the device
  the message spoke for still its device (``deviceName()``, ``latest()``) — one step deeper,
  and nothing is published. A rule is named rather than numbered so that a rule file says
  what it means and an export imported into another town (where ids differ) still holds.

A rule's ``errorAction`` (at most one) is any of them, given every action that failed: the
rule, the action, the error, and the message that fired it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from hongshan.alarms.model import Escalation, Severity, escalation_problem
from hongshan.identity.principals import DEFAULT_TENANT
from hongshan.messages.commands import Target


class RepublishAction(
    msgspec.Struct, frozen=True, kw_only=True, tag="republish", tag_field="type", rename="camel"
):
    topic: str
    qos: int = 0
    kind: ClassVar[str] = "republish"


class _Targeted(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """The devices a set or an invoke goes to: one (``productKey`` and ``deviceName``), or
    many — a ``group``, a product's (``productKey`` alone), a ``tag`` (``key:value``), a
    ``district`` — as a batch, sent paced (``messages.commands.Target``)."""

    product_key: str | None = None
    device_name: str | None = None
    group: str | None = None
    tag: str | None = None
    district: str | None = None

    def target(self) -> Target:
        return Target(
            product_key=self.product_key,
            device_name=self.device_name,
            group=self.group,
            tag=self.tag,
            district=self.district,
        )


class SetAction(_Targeted, frozen=True, kw_only=True, tag="set", tag_field="type"):
    values: dict[str, Any] | None = None  # set these rather than the rule's output

    kind: ClassVar[str] = "set"


class InvokeAction(_Targeted, frozen=True, kw_only=True, tag="invoke", tag_field="type"):
    service: str
    params: dict[str, Any] | None = None  # its input rather than the rule's output

    kind: ClassVar[str] = "invoke"


class WebhookAction(
    msgspec.Struct, frozen=True, kw_only=True, tag="webhook", tag_field="type", rename="camel"
):
    url: str
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 1.0
    kind: ClassVar[str] = "webhook"


class AlarmAction(
    msgspec.Struct, frozen=True, kw_only=True, tag="alarm", tag_field="type", rename="camel"
):
    alarm_type: str
    severity: Severity = "major"
    clear: bool = False
    product_key: str | None = None
    device_name: str | None = None
    escalation: Escalation | None = None
    kind: ClassVar[str] = "alarm"


class ForwardAction(
    msgspec.Struct, frozen=True, kw_only=True, tag="rule", tag_field="type", rename="camel"
):
    rule: str  # the name of the rule whose input it is
    kind: ClassVar[str] = "rule"


ActionSpec = (
    RepublishAction | SetAction | InvokeAction | WebhookAction | AlarmAction | ForwardAction
)

RULE_INPUT = "$rules/"
"""The topic a forwarded output is on, before the target rule's name: what its ``topic()``
answers (its FROM is not matched: only the named rule hears it)."""
MAX_NAME = 64

MAX_ALARM_TYPE = 128

MAX_RETRIES = 10
MAX_TIMEOUT = 60.0
MAX_BACKOFF = 300.0
MAX_ACTIONS = 20
DEFAULT_RATE = 100.0  # fires a second a rule may make unless it says otherwise


class RuleSpec(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A rule as its author writes it."""

    name: str
    sql: str
    actions: Annotated[list[ActionSpec], msgspec.Meta(max_length=MAX_ACTIONS)] = []
    error_action: ActionSpec | None = None
    enabled: bool = True
    max_per_second: float = DEFAULT_RATE
    """Fires a second, with a burst of as many: a message past it is not run (``limited``)."""
    shadow: bool = False
    """Runs live but does nothing: its trace says what it would have done (``wouldFire``)."""


class StoredRule(msgspec.Struct, kw_only=True, rename="camel"):
    """A rule as the registry keeps it: its spec, its id and times, and its secret (the key of
    its webhooks' signatures)."""

    id: int
    name: str
    sql: str
    actions: list[ActionSpec]
    error_action: ActionSpec | None
    enabled: bool
    max_per_second: float
    secret: str
    created_at: int
    updated_at: int
    shadow: bool = False
    tenant: str = DEFAULT_TENANT  # it hears and acts on its tenant's devices only


def action_problem(action: ActionSpec) -> str | None:
    """What is wrong with an action's settings, in words, or None."""
    match action:
        case SetAction() | InvokeAction():
            problem = action.target().problem()
            if problem is not None:
                return f"{action.kind}: {problem}"
        case RepublishAction(topic=topic, qos=qos):
            if not topic or "+" in topic or "#" in topic:
                return f"republish: {topic!r} is no topic to publish on"
            if qos not in (0, 1):
                return f"republish: qos {qos} (0 or 1)"
        case WebhookAction(url=url, timeout=timeout, retries=retries, backoff=backoff):
            if not url.startswith(("http://", "https://")):
                return f"webhook: {url!r} is no http:// or https:// URL"
            if not 0 < timeout <= MAX_TIMEOUT:
                return f"webhook: timeout {timeout} s (more than 0, at most {MAX_TIMEOUT:g})"
            if not 0 <= retries <= MAX_RETRIES:
                return f"webhook: retries {retries} (0 to {MAX_RETRIES})"
            if not 0 <= backoff <= MAX_BACKOFF:
                return f"webhook: backoff {backoff} s (0 to {MAX_BACKOFF:g})"
        case AlarmAction(alarm_type=alarm_type, escalation=escalation):
            if not alarm_type.strip() or len(alarm_type) > MAX_ALARM_TYPE:
                return f"alarm: alarmType is 1 to {MAX_ALARM_TYPE} characters"
            if (action.product_key is None) != (action.device_name is None):
                return "alarm: give both productKey and deviceName, or neither (the message's)"
            if escalation is not None:
                problem = escalation_problem(escalation)
                if problem is not None:
                    return f"alarm: {problem}"
        case ForwardAction(rule=name):
            if not name.strip() or len(name) > MAX_NAME:
                return f"rule: {name!r} is no rule's name (1 to {MAX_NAME} characters)"
    return None
