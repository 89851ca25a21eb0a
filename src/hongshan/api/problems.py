"""Every error answered as ``application/problem+json`` (RFC 9457), translated here, once."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from hongshan.errors import HongshanError
from hongshan.failure_log import FailureLog
from hongshan.store.faults import store_failure

log = logging.getLogger("hongshan.api")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    503: "Service Unavailable",
    500: "Internal Server Error",
}


def problem(
    status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    body.update(extra)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="hongshan"'
    return Response(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _hongshan(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """Any of our errors, answered as it says (``hongshan.errors``); one that says 500 is no
    answer for a caller but a fault of ours."""
    assert isinstance(exc, HongshanError)
    if exc.http_status == 500:
        return _unexpected(request, exc)
    return problem(exc.http_status, exc.detail, exc.headers, **exc.extensions)


def _store_failures(request: Request[Any, Any, Any]) -> FailureLog:
    """The app's log of store failures. A full disk fails every write request alike (100
    device creates were 6,400 lines of tracebacks in the review): each kind is said once per
    interval, without a traceback — it is the store's state, not a fault in our code. One per
    app (in its state), so that one server's failures do not silence another's."""
    state = request.app.state
    failures = state.get("store_failures")
    if not isinstance(failures, FailureLog):
        failures = state["store_failures"] = FailureLog(log, "api: the store cannot serve")
    return failures


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """An exception nobody translated: a store that cannot serve now (a full disk, a lost
    connection: ``store.faults``) is a 503, said once per kind per interval (``FailureLog``);
    anything else is a fault of ours and a 500, logged with its traceback (the answer does not
    carry it). Either is answered problem+json, never Litestar's bare default."""
    failure = store_failure(exc)
    if failure is not None:
        _store_failures(request).failed(failure)
        return problem(503, f"the store cannot serve this now: {failure}")
    log.error(
        "%s %s: unhandled %s", request.method, request.url.path, type(exc).__name__, exc_info=exc
    )
    return problem(500, f"internal error ({type(exc).__name__}); the server's log has the details")


def _http(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, HTTPException)
    extra: dict[str, Any] = {}
    detail = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        extra["errors"] = exc.extra
        # the detail names each field and what was wrong with it ("rawDays: Expected `float`
        # <= 36500"), not only that something was
        named = [
            f"{e.get('key', '')}: {e.get('message', '')}".lstrip(": ")
            for e in (exc.extra if isinstance(exc.extra, list) else [])
            if isinstance(e, dict)
        ]
        if named:
            detail = f"{detail}: {'; '.join(named)}"
    return problem(exc.status_code, detail, **extra)


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    HongshanError: _hongshan,
    HTTPException: _http,
    Exception: _unexpected,
}


class Problem(msgspec.Struct, kw_only=True):
    """An error's body (RFC 9457); a validation problem adds ``errors``, a call that breaks
    the thing model ``problems``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


_MEANINGS = {
    400: "the request is malformed or out of bounds; the detail names the field and the limit",
    401: "no credentials (the admin token, a user's access token), or wrong or expired ones",
    403: "the caller's role is below the route's, or a cookie's change lacks X-Requested-With",
    404: "no such product, device, group, rule, alarm or route",
    409: (
        "it conflicts with what exists (a name taken, a stale version, a product in use, an "
        "alarm's status)"
    ),
    503: "the store cannot serve now (the disk is full, the database is unreachable)",
}
PROBLEM_RESPONSES = {
    status: ResponseSpec(
        Problem, description=meaning, media_type="application/problem+json", generate_examples=False
    )
    for status, meaning in _MEANINGS.items()
}
"""What any admin route may answer besides its success, for the OpenAPI document."""
