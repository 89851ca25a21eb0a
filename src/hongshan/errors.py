"""The one error tree of Hongshan.

::

    HongshanError
    ├── ProtocolError               an MQTT exchange broke the specification
    │   ├── RemoteProtocolError     theirs: a peer sent malformed or forbidden input;
    │   │                           carries the MQTT reason code to answer with
    │   └── LocalProtocolError      ours: we were asked to encode something invalid
    ├── ConfigError                 a configuration file, variable or flag is wrong
    ├── AccessFileError             a users or ACL file cannot be read or parsed
    ├── StoreUnavailable            a store could not make a write durable
    ├── ShuttingDown                the platform is stopping: a call waiting for a device
    │                               was given up, or none is sent now (HTTP 503)
    ├── HistoryProblem              a history query that cannot be answered as asked
    │                               (``store.history.model``; HTTP 400)
    └── MalformedMessage            a device's payload on an Alink topic that is no Alink
                                    message (``dialects.alink.messages``; PUBACK 0x99 and
                                    Alink 6207 or 460)

Errors are translated at the boundary, once: the broker turns a ``RemoteProtocolError`` into a
CONNACK or DISCONNECT with its reason code and closes that one connection.
"""

from __future__ import annotations


class HongshanError(Exception):
    """Root of every error Hongshan raises on purpose."""


class ProtocolError(HongshanError):
    """An MQTT exchange broke the specification."""

    def __init__(self, message: str, reason_code: int = 0x81) -> None:
        super().__init__(message)
        self.reason_code = reason_code


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
    """A store could not make a write durable; whatever waited for it must not be acknowledged."""


class ShuttingDown(HongshanError):
    """The platform is stopping: a call that waited for a device's answer was given up, and no
    new one is sent. Answered as HTTP 503 (the caller may try again once it is back)."""
