"""The device shadow as pure functions: a document, and what an update makes of it.

Alibaba's shadow ("Device shadow" pages): a JSON document per device with ``state.reported``
(what the device last said), ``state.desired`` (what the platform wants), ``metadata`` (when each
attribute was last set, in seconds) and ``version``. The device writes ``reported`` and may
clear ``desired``; the platform writes ``desired``. An update carries a ``version`` that must be
greater than the document's (else error 409) and becomes the document's version. An attribute
set to the string ``"null"`` is deleted; ``"reported": "null"`` (or ``"desired": "null"``)
deletes the whole section. ``delta`` — the desired attributes that differ from the reported
ones — is what the device still has to do.

Error codes and their words are Alibaba's (the device shadow's "error codes" table).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from hongshan.errors import HongshanError
from hongshan.things.nesting import MAX_DEPTH, nests_deeper

MAX_ATTRIBUTES = 128
# Alibaba's version is a long; ours is stored as a BIGINT. Beyond it a version could be answered
# "success" and never saved (the database refuses it in the background).
MAX_VERSION = 2**63 - 1
Section = Literal["reported", "desired"]

ERRORS = {
    400: "incorrect JSON format",
    401: "shadow JSON is missing the method field",
    402: "shadow JSON is missing the state field",
    403: "version in shadow JSON is not a number",
    404: "shadow JSON is missing the reported field",
    405: "the reported field in shadow JSON is empty",
    406: "method in shadow JSON is an invalid method",
    407: "shadow content is empty",
    408: "the number of reported attributes exceeds 128",
    409: "shadow version conflict",
}


class ShadowError(HongshanError):
    """A refused request: ``protocol_code`` and its words are Alibaba's; ``why`` says what was
    wrong. The API answers a stale version (409) 409, the rest 400."""

    protocol_code: int

    def __init__(self, code: int, why: str = "") -> None:
        super().__init__(f"{ERRORS[code]}: {why}" if why else ERRORS[code])
        self.protocol_code = code
        self.http_status = 409 if code == 409 else 400

    @property
    def detail(self) -> str:
        return f"shadow: {self} ({self.protocol_code})"


class Shadow(msgspec.Struct, frozen=True, kw_only=True):
    reported: dict[str, Any] = {}
    desired: dict[str, Any] = {}
    reported_times: dict[str, int] = {}  # attribute -> seconds since the epoch
    desired_times: dict[str, int] = {}
    version: int = 0

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.reported:
            state["reported"] = dict(self.reported)
        if self.desired:
            state["desired"] = dict(self.desired)
        return state

    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        for name, times in (("reported", self.reported_times), ("desired", self.desired_times)):
            if times:
                metadata[name] = {key: {"timestamp": at} for key, at in times.items()}
        return metadata


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0``, but ``true`` is not ``1`` (Python's ``==`` says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def delta(shadow: Shadow) -> dict[str, Any]:
    """The desired attributes whose value the device has not reported yet."""
    return {
        key: value
        for key, value in shadow.desired.items()
        if key not in shadow.reported or not same(shadow.reported[key], value)
    }


def merge(
    current: dict[str, Any], times: dict[str, int], change: Any, now: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """One section after ``change``: attributes replaced or added, ``"null"`` ones removed,
    the whole section removed by ``"null"``."""
    if change == "null":
        return {}, {}
    merged = dict(current)
    stamps = dict(times)
    for key, value in change.items():
        if value == "null":
            merged.pop(key, None)
            stamps.pop(key, None)
        else:
            merged[key] = value
            stamps[key] = now
    return merged, stamps


def _change(state: dict[str, Any], name: Section, method: str) -> Any:
    change = state[name]
    if change != "null" and not isinstance(change, dict):
        raise ShadowError(400)
    if method == "delete" and change != "null":
        return dict.fromkeys(change, "null")
    return change


def update(shadow: Shadow, request: Any, now: int, *, by: Section) -> Shadow:
    """Apply an ``update`` (or ``delete``) request written by the device (``by="reported"``:
    it may write ``reported`` and clear ``desired``) or the platform (``by="desired"``)."""
    if not isinstance(request, dict):
        raise ShadowError(400)
    method = request.get("method")
    if method is None:
        raise ShadowError(401)
    if method not in ("update", "delete"):
        raise ShadowError(406)
    state = request.get("state")
    if state is None:
        raise ShadowError(402)
    if not isinstance(state, dict):
        raise ShadowError(400)
    version = request.get("version")
    if type(version) is not int:
        raise ShadowError(403)
    if version > MAX_VERSION:
        raise ShadowError(403, f"{version} is beyond a 64-bit integer ({MAX_VERSION})")
    # ours, not Alibaba's (the bound of every device's value): each attribute's value, within
    # its section, nests at most MAX_DEPTH levels
    if any(nests_deeper(section, MAX_DEPTH + 1) for section in state.values()):
        raise ShadowError(400, f"attribute values nest deeper than {MAX_DEPTH} levels")
    if version <= shadow.version:
        raise ShadowError(409)
    if by == "reported" and "reported" not in state and "desired" not in state:
        raise ShadowError(404)
    reported, reported_times = shadow.reported, shadow.reported_times
    desired, desired_times = shadow.desired, shadow.desired_times
    if "reported" in state:
        change = _change(state, "reported", method)
        if by != "reported":
            raise ShadowError(400)
        if change != "null" and not change:
            raise ShadowError(405)
        reported, reported_times = merge(reported, reported_times, change, now)
    if "desired" in state:
        change = _change(state, "desired", method)
        if by == "reported" and change != "null" and any(v != "null" for v in change.values()):
            raise ShadowError(400)  # a device may only clear what it was asked to do
        desired, desired_times = merge(desired, desired_times, change, now)
    if len(reported) > MAX_ATTRIBUTES or len(desired) > MAX_ATTRIBUTES:
        raise ShadowError(408)
    return Shadow(
        reported=reported,
        desired=desired,
        reported_times=reported_times,
        desired_times=desired_times,
        version=version,
    )


def reply(version: int, now: int) -> dict[str, Any]:
    return {
        "method": "reply",
        "payload": {"status": "success", "version": version},
        "timestamp": now,
    }


def error_reply(error: ShadowError, now: int) -> dict[str, Any]:
    return {
        "method": "reply",
        "payload": {
            "status": "error",
            "content": {"errorcode": str(error.protocol_code), "errormessage": str(error)},
        },
        "timestamp": now,
    }


def document(shadow: Shadow, now: int, *, method: Literal["reply", "control"]) -> dict[str, Any]:
    """The whole shadow as sent to the device: ``reply`` to its ``get``, ``control`` when the
    platform changed ``desired``."""
    return {
        "method": method,
        "payload": {"status": "success", "state": shadow.state(), "metadata": shadow.metadata()},
        "version": shadow.version,
        "timestamp": now,
    }
