"""The log's lines, for a person (``log_format = "text"``) or for a collector (``"json"``: one
JSON object a line), and what they are about: the device whose message was being handled
(``DEVICE``, set by a dialect around a device's message) and the HTTP request being answered
(``REQUEST_ID``, set by ``api.request_ids``). Both are ``contextvars``: each asyncio task (a
connection, a request) sees its own, and a line logged anywhere below — the pipeline, a
store, a rule — says which device or request it came from without being handed it.

A JSON line has ``ts`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``,
``exception`` (the traceback) when there is one, and ``device`` ("productKey/deviceName") and
``request_id`` when known. Only the standard library's ``logging``: no dependency."""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys
from typing import Any

DEVICE: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "hongshan_device", default=None
)
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hongshan_request_id", default=None
)
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class AboutWhat(logging.Filter):
    """Puts the device and request of the context that logs on its record (``device``,
    ``request_id``), as the record is made: a handler that formats later, or in another
    thread, still says them."""

    def filter(self, record: logging.LogRecord) -> bool:
        device = DEVICE.get()
        record.device = f"{device[0]}/{device[1]}" if device is not None else None
        record.request_id = REQUEST_ID.get()
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line (a message with newlines, or a traceback, stays on its line)."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
        entry: dict[str, Any] = {
            "ts": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name in ("device", "request_id"):
            said = getattr(record, name, None)
            if said is not None:
                entry[name] = said
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str) -> None:
    """The process's log: to stderr, at ``level``, as ``log_format`` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(AboutWhat())
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
