"""The pipeline stage that keeps every accepted uplink in the history store."""

from __future__ import annotations

from hongshan.pipeline.uplink import Uplink, UplinkKind
from hongshan.store.history.model import HistoryStore, LogKind

_LOGGED = {UplinkKind.EVENT_POST: LogKind.EVENT, UplinkKind.SERVICE_REPLY: LogKind.SERVICE_REPLY}


class HistoryStage:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    def on_uplink(self, uplink: Uplink) -> None:
        device = (uplink.product_key, uplink.device_name)
        if uplink.kind is UplinkKind.PROPERTY_POST:
            ts, times = uplink.ts, uplink.times
            if times:
                points = [(k, times.get(k, ts), v) for k, v in uplink.params.items()]
                self.store.add_points(device, points)
            else:  # no device time: ts is when the post arrived
                points = [(k, ts, v) for k, v in uplink.params.items()]
                self.store.add_points(device, points, arrival=True)
        else:
            kind = _LOGGED[uplink.kind]
            self.store.add_log(device, kind, uplink.identifier, uplink.ts, uplink.params)
