"""The one error tree of Hongshan.

Every error says how it is answered at each edge. ``http_status`` is the API's status: 500, the
root's, is no answer for a caller but a fault of ours (logged with its traceback, answered as an
internal error). ``protocol_code`` is the device protocol's code: an MQTT reason code, an Alink
or shadow code (None: no device is answered). A class that covers several answers sets them
per instance (``RegistryError``'s kinds, ``ShadowError``'s codes). The API's problem body takes
``detail`` (the message, unless the error says more), ``extensions`` (RFC 9457 members
besides the standard ones, as ``InvalidCall``'s ``problems``) and ``headers`` (of the answer,
as ``LoginLocked``'s Retry-After).

::

    class                       what                                HTTP  protocol code
    HongshanError                                                   500   None
    ├── ProtocolError           an MQTT exchange broke the spec     500   its MQTT reason
    │   │                                                                 code (reason_code)
    │   ├── RemoteProtocolError theirs: a peer sent malformed or          CONNACK/DISCONNECT
    │   │                       forbidden input                           0x81, 0x82, 0x95…
    │   └── LocalProtocolError  ours: we were asked to encode
    │                           something invalid
    ├── ConfigError             a configuration file, variable or   500   None
    │                           flag is wrong
    ├── AccessFileError         a users or ACL file cannot be read  500   None
    ├── StoreUnavailable        a store could not make a write      503   None
    │                           durable
    ├── ShuttingDown            the platform is stopping: a call    503   None
    │                           waiting for a device was given up
    ├── SecretUnreadable        a sealed secret this key cannot     500   None
    │                           open (identity.secret_box)
    ├── SignatureFormatError    a CONNECT that claims Alibaba's     500   None (refused
    │                           scheme and breaks it                      CONNACK 0x86)
    │                           (identity.alibaba)
    ├── RegistryError           a registry request that cannot be   404   None
    │                           done (things.model); its kind:      409
    │                           not_found, conflict, invalid        400
    ├── InvalidName             a name that breaks Alibaba's rules  400   None
    │                           (things.naming)
    ├── TslError                a thing model that is not valid     400   None
    │                           TSL (things.tsl_types)
    ├── RuleSyntaxError         a rule's text that is no rule: its  400   None
    │                           line, column and what was expected
    │                           (rules.sql)
    ├── RuleRefused             a rule that names a property its    400   None
    │                           product's thing model lacks
    │                           (rules.references)
    ├── ScheduleError           a cron schedule, sun trigger or     400   None
    │                           time window that is wrong: the
    │                           field and what (rules.cron)
    ├── ActionFailed            a rule's action that could not be   500   None
    │                           done: counted and traced, handed
    │                           to its error action, never answered
    │                           (services.rules.actions)
    ├── RuleFileError           a rule file that cannot be read as  400   None
    │                           one: its file and line
    │                           (services.rules.files)
    ├── AlarmStateError         an acknowledgement or clearing the  409   None
    │                           alarm's status does not allow
    │                           (alarms.model)
    ├── LoginRefused            a login or refresh with a wrong     401   None
    │                           name, password or refresh token
    │                           (services.people)
    ├── LoginLocked             too many failed logins for the      429   None
    │                           name or from the address; its       (Retry-After)
    │                           ``retry_after`` (identity.lockout)
    ├── TriggerRefused          a scene's trigger sent without the  401   None
    │                           admin token or the scene's own
    │                           (services.scenes.book)
    ├── HistoryProblem          a history query that cannot be      400   None
    │                           answered as asked
    │                           (store.history.model)
    ├── InvalidCall             a call to a device that does not    400   None
    │                           fit its thing model, or that its
    │                           dialect refuses; ``problems`` in
    │                           the body (services.commands)
    ├── NoDialect               a command for a device whose        404   None
    │                           protocol no dialect serves
    │                           (bus.local)
    ├── MalformedMessage        a device's payload on an Alink      500   Alink 6207 or 460
    │                           topic that is no Alink message            (PUBACK 0x99)
    │                           (dialects.alink.messages)
    ├── MalformedPayload        a device's payload on a ThingsBoard 500   PUBACK 0x99
    │                           topic that is not the API's JSON
    │                           (dialects.thingsboard.payloads)
    ├── ShadowError             a refused shadow request            409   Alibaba's shadow
    │                           (twin.shadow): a stale version,     400   code, 400 to 409
    │                           or anything else
    ├── VersionConflict         a desired value set against a       409   None
    │                           version no longer current
    │                           (twin.desired)
    ├── KeyRefused              an API key sent that was revoked    401   None
    │                           or has expired: which
    │                           (services.people.keys)
    ├── BeyondOwnRights         an API key asked for with more      403   None
    │                           than its maker may do (a role,
    │                           groups, a tenant)
    │                           (services.people.keys)
    ├── gateway._Refused        a gateway's topology or sub-device  500   its Alink code
    │                           request refused                           (460, 6100, 6401…)
    │                           (dialects.alink.gateway)
    └── uplinks._Refused        one part of a history or pack post  500   its Alink code
                                refused, and the post with it             (460, 6304…)
                                (dialects.alink.uplinks)

Errors are translated at each edge, once: the broker turns a ``RemoteProtocolError`` into a
CONNACK or DISCONNECT with its reason code and closes that one connection; the Alink taps
answer a ``MalformedMessage``, a ``ShadowError`` or a refusal with its ``protocol_code``, the
ThingsBoard taps a ``MalformedPayload`` with its; the API (``api.problems``) answers any of
them as problem+json with its ``http_status``.
"""

from __future__ import annotations

import math
from typing import Any


class HongshanError(Exception):
    """Root of every error Hongshan raises on purpose."""

    http_status: int = 500
    """The API's answer; 500 is none of the caller's doing (logged, answered as an internal
    error)."""
    protocol_code: int | None = None
    """The device protocol's answer: an MQTT reason code, an Alink or shadow code."""

    @property
    def detail(self) -> str:
        """The API's ``detail`` (RFC 9457): the message, unless the error says more."""
        return str(self)

    @property
    def extensions(self) -> dict[str, Any]:
        """Members of the API's problem body besides the standard ones (RFC 9457 section 3.2)."""
        return {}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers of the API's answer besides the problem's own (``Retry-After``)."""
        return {}


class ProtocolError(HongshanError):
    """An MQTT exchange broke the specification."""

    protocol_code: int

    def __init__(self, message: str, reason_code: int = 0x81) -> None:
        super().__init__(message)
        self.protocol_code = reason_code

    @property
    def reason_code(self) -> int:
        """MQTT's word for ``protocol_code``: the reason code to answer with."""
        return self.protocol_code


class RemoteProtocolError(ProtocolError):
    """A peer sent malformed or forbidden input. ``reason_code`` is the MQTT 5.0 reason code to
    answer with (0x81 Malformed Packet, 0x82 Protocol Error, 0x95 Packet Too Large, ...)."""


class LocalProtocolError(ProtocolError):
    """We were asked to encode a packet that is not valid MQTT."""


class ConfigError(HongshanError):
    """A configuration file, environment variable or flag is wrong."""


class AccessFileError(HongshanError):
    """A users or ACL file cannot be read or parsed."""


class StoreUnavailable(HongshanError):
    """A store could not make a write durable; whatever waited for it must not be acknowledged.
    Answered as HTTP 503."""

    http_status = 503


class ShuttingDown(HongshanError):
    """The platform is stopping: a call that waited for a device's answer was given up, and no
    new one is sent. Answered as HTTP 503 (the caller may try again once it is back)."""

    http_status = 503


class LoginRefused(HongshanError):
    """A login with a wrong name or password (the same words for either: which names are users
    is nobody's business), or a refresh token that is not, or no longer, a session's."""

    http_status = 401


class LoginLocked(HongshanError):
    """Too many failed logins for a name or from an address: refused until ``retry_after``
    seconds have passed, with the same words whether or not the name is a user's."""

    http_status = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed logins; try again in {self.retry_after} seconds")

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
