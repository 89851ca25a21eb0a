"""The device shadow over MQTT: ``/shadow/update/{pk}/{dn}`` in, ``/shadow/get/{pk}/{dn}`` out.

A device reports (``{"method": "update", "state": {"reported": …}, "version": n}``), deletes
attributes (``"method": "delete"``) or asks for the document (``{"method": "get"}``); each gets
a ``reply`` on ``/shadow/get/…``. When the platform changes ``desired`` (the API), an online
device is sent the whole document as ``control``; an offline one finds it with its next
``get``. The arithmetic is ``twin.shadow``; the documents are kept in memory and saved through
``save`` (the registry) after every change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from hongshan.dialects.alink.messages import MalformedMessage
from hongshan.twin.shadow import Shadow, ShadowError, document, error_reply, reply, update

log = logging.getLogger("hongshan.shadow")

TAPS = ("/shadow/update/+/+",)

Publish = Callable[[str, bytes, int], None]
Save = Callable[[str, str, Shadow], None]


class ShadowService:
    def __init__(
        self,
        shadows: dict[tuple[str, str], Shadow],
        *,
        save: Save,
        publish: Publish,
        online: Callable[[str, str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._shadows = shadows
        self._save = save
        self._publish = publish
        self._online = online
        self._clock = clock

    def get(self, pk: str, dn: str) -> Shadow:
        return self._shadows.get((pk, dn), Shadow())

    def forget(self, pk: str, dn: str) -> None:
        self._shadows.pop((pk, dn), None)

    def _send(self, pk: str, dn: str, body: dict[str, Any]) -> None:
        self._publish(f"/shadow/get/{pk}/{dn}", msgspec.json.encode(body), 1)

    def on_message(self, topic: str, payload: bytes) -> MalformedMessage | None:
        """A device's shadow request, answered on ``/shadow/get/…``; one that is not JSON is
        answered Alibaba's 400 and returned, for its tap to refuse as every Alink tap does."""
        levels = topic.split("/")
        if len(levels) != 5:
            return None
        pk, dn = levels[3], levels[4]
        now = int(self._clock())
        try:
            request = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError) as exc:  # (past the decoder's own guard)
            refused = ShadowError(400, str(exc))
            self._send(pk, dn, error_reply(refused, now))
            return MalformedMessage(str(refused), refused.protocol_code, None)
        if isinstance(request, dict) and request.get("method") == "get":
            self._send(pk, dn, document(self.get(pk, dn), now, method="reply"))
            return None
        try:
            shadow = update(self.get(pk, dn), request, now, by="reported")
        except ShadowError as exc:
            log.info("%s&%s: shadow update refused: %s %s", dn, pk, exc.protocol_code, exc)
            self._send(pk, dn, error_reply(exc, now))
            return None
        self._shadows[pk, dn] = shadow
        self._save(pk, dn, shadow)
        self._send(pk, dn, reply(shadow.version, now))
        return None

    def set_desired(
        self, pk: str, dn: str, desired: dict[str, Any] | str, version: int | None = None
    ) -> Shadow:
        """The platform's side (Alibaba's UpdateDeviceShadow): change ``desired`` (``"null"``
        values clear attributes); ``version`` defaults to the next one. Raises ``ShadowError``."""
        current = self.get(pk, dn)
        request = {
            "method": "update",
            "state": {"desired": desired},
            "version": current.version + 1 if version is None else version,
        }
        now = int(self._clock())
        shadow = update(current, request, now, by="desired")
        self._shadows[pk, dn] = shadow
        self._save(pk, dn, shadow)
        if self._online(pk, dn):
            self._send(pk, dn, document(shadow, now, method="control"))
        return shadow
