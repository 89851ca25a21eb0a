"""The pipeline stage that keeps every uplink in the history store: values as points, the
rest as lines of the device's log."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from hongshan import messages as m
from hongshan.store.history.model import HistoryStore, LogKind


class HistoryStage:
    """Values as points and the rest as log lines, in the history store; what a keyed
    uplink's acknowledgement waits for is their commit."""

    # (firmware reports and registrations are the registry's, not the log's)
    kinds = (
        m.PropertyValues,
        m.EventRaised,
        m.ServiceReplied,
        m.StatusChanged,
        m.CommandSent,
        m.CommandGivenUp,
    )

    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    def on_uplink(self, uplink: m.Uplink) -> Awaitable[None] | None:
        store = self.store
        device = (uplink.device.product, uplink.device.device)
        if type(uplink) is m.PropertyValues:
            ts, times = uplink.ts, uplink.device_time
            if times:
                store.add_points(
                    device, [(k, times.get(k, ts), v) for k, v in uplink.values.items()]
                )
            else:  # no device time: ts is when the post arrived
                store.add_points(
                    device, [(k, ts, v) for k, v in uplink.values.items()], arrival=True
                )
        else:
            line = _line(uplink)
            if line is None:
                return None
            kind, identifier, ts, body = line
            store.add_log(device, kind, identifier, ts, body)
        # an at-least-once message is acknowledged once what it said is durable
        return store.committed() if uplink.key else None


def _line(uplink: m.Uplink) -> tuple[LogKind, str, int, Any] | None:
    """The log line an uplink other than values makes: (kind, identifier, time, body)."""
    match uplink:
        case m.EventRaised():
            return LogKind.EVENT, uplink.event, uplink.ts, uplink.params
        case m.ServiceReplied():
            body = {
                "id": uplink.call_id,
                "code": uplink.code,
                "data": uplink.output,
                "message": uplink.message,
            }
            return LogKind.SERVICE_REPLY, uplink.service, uplink.received, body
        case m.StatusChanged():
            status: dict[str, str] = (
                {"address": uplink.address} if uplink.online else {"reason": uplink.reason}
            )
            if uplink.gateway is not None:
                status["gateway"] = f"{uplink.gateway.product}&{uplink.gateway.device}"
            state = "online" if uplink.online else "offline"
            return LogKind.STATUS, state, uplink.received, status
        case m.CommandSent():
            kind = LogKind.PROPERTY_SET if uplink.sets_properties else LogKind.SERVICE_CALL
            body = {"id": uplink.call_id, "params": uplink.params}
            return kind, uplink.service, uplink.received, body
        case m.CommandGivenUp():
            kind = LogKind.PROPERTY_SET if uplink.sets_properties else LogKind.SERVICE_CALL
            return (
                kind,
                uplink.service,
                uplink.received,
                {"id": uplink.call_id, "outcome": uplink.why},
            )
    return None
