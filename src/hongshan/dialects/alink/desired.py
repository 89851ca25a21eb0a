"""Desired property values over MQTT: ``/sys/{pk}/{dn}/thing/property/desired/get`` and
``…/desired/delete``, answered on their ``_reply`` topics; and the platform's side, which sets
them (the API) and sends them as a property set when the device is online — at once, or when
it comes back (``device_online``). The arithmetic is ``twin.desired``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hongshan.dialects.alink import messages
from hongshan.dialects.alink.messages import REQUEST_INVALID, SUCCESS, MalformedMessage
from hongshan.twin.desired import Desired, delete, read, set_values

log = logging.getLogger("hongshan.alink")

TAPS = ("/sys/+/+/thing/property/desired/+",)

Save = Callable[[str, str, Desired], None]
PushSet = Callable[[str, str, dict[str, Any]], None]  # (pk, dn, params): a property set


class DesiredService:
    def __init__(
        self,
        desired: dict[tuple[str, str], Desired],
        *,
        save: Save,
        publish: Callable[[str, bytes, int], None],
        push: PushSet,
        online: Callable[[str, str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._desired = desired
        self._save = save
        self._publish = publish
        self._push = push
        self._online = online
        self._clock = clock

    def get(self, pk: str, dn: str) -> Desired:
        return dict(self._desired.get((pk, dn), {}))

    def forget(self, pk: str, dn: str) -> None:
        self._desired.pop((pk, dn), None)

    def set(
        self, pk: str, dn: str, items: dict[str, Any], versions: dict[str, int] | None = None
    ) -> Desired:
        """Set desired values (the caller has checked them against the thing model); raises
        ``VersionConflict``. An online device is sent them as a property set at once."""
        changed = set_values(self.get(pk, dn), items, versions or {}, int(self._clock() * 1000))
        self._store(pk, dn, changed)
        if self._online(pk, dn):
            self._push(pk, dn, dict(items))
        return changed

    def device_online(self, pk: str, dn: str) -> None:
        """A device is back: send it what it should be (if anything)."""
        desired = self._desired.get((pk, dn))
        if desired:
            self._push(pk, dn, {identifier: value.value for identifier, value in desired.items()})

    def _store(self, pk: str, dn: str, desired: Desired) -> None:
        if desired:
            self._desired[pk, dn] = desired
        else:
            self._desired.pop((pk, dn), None)
        self._save(pk, dn, desired)

    def on_message(self, topic: str, payload: bytes) -> MalformedMessage | None:
        """A device's desired get or delete, answered; one that is no Alink request is
        answered where it can be and returned, for its tap to refuse."""
        levels = topic.split("/")
        if len(levels) != 8 or levels[7] not in ("get", "delete"):
            return None
        pk, dn, action = levels[2], levels[3], levels[7]
        method = f"thing.property.desired.{action}"
        try:
            request = messages.decode_request(payload)
        except MalformedMessage as exc:
            log.info("%s: not an Alink request: %s", topic, exc)
            return messages.refuse(exc, topic, method, self._publish)
        params = request.params
        code, message, data = SUCCESS, "success", {}
        if action == "get":
            if params is not None and not (
                isinstance(params, list) and all(isinstance(p, str) for p in params)
            ):
                code, message = REQUEST_INVALID, "params must be a list of property identifiers"
            else:
                data = read(self.get(pk, dn), params or [])
        elif not isinstance(params, dict):
            code, message = REQUEST_INVALID, "params must be an object"
        else:
            self._store(pk, dn, delete(self.get(pk, dn), params))
        if request.wants_reply:
            reply = messages.reply_bytes(request.id, code, method, message, data)
            self._publish(topic + "_reply", reply, 0)
        return None
