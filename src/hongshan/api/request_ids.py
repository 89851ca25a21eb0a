"""Each HTTP request's id: the caller's ``X-Request-Id`` when it sends a sensible one (a proxy
or a client that traces its calls), else one made here; set in ``log_lines.REQUEST_ID`` while
the request is answered, so every log line it causes carries it, and returned in the
response's ``X-Request-Id`` so that a caller can quote it. Each request is also logged at
debug level (method, path, status, milliseconds): the access log, off unless asked for."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from hongshan.log_lines import REQUEST_ID

log = logging.getLogger("hongshan.http")

HEADER = b"x-request-id"
# what a caller's id may be: short, and nothing that could break a log line or a header
_SENSIBLE = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")


class RequestIds:
    """ASGI middleware around the whole app (every route, the open ones too)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        request_id = _given(scope) or uuid.uuid4().hex
        said = request_id.encode()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (HEADER, said)]
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_ID.set(request_id)
        started = time.monotonic()
        try:
            await self._app(scope, receive, send_with_id)
        finally:
            took = (time.monotonic() - started) * 1000
            method = scope.get("method", "")
            log.debug("%s %s %d %.1f ms", method, scope["path"], status, took)
            REQUEST_ID.reset(token)


def _given(scope: Any) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            return value.decode() if _SENSIBLE.fullmatch(value) else None
    return None
