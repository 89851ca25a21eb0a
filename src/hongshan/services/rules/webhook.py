"""The webhook action: a rule's output POSTed as JSON to a URL, signed, retried with back-off."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

import httpx
import msgspec

from hongshan.rules.definition import WebhookAction
from hongshan.services.rules.actions import ActionFailed, Fired, Pending

SIGNATURE = "X-Hongshan-Signature"
"""``sha256=`` and the hex HMAC-SHA256 of the body with the rule's secret (GitHub's form)."""
RULE = "X-Hongshan-Rule"  # the rule's id
SCENE = "X-Hongshan-Scene"  # or the scene's, for a scene's step
TOPIC = "X-Hongshan-Topic"  # the topic of the message that fired it

# answers worth another try: the server was busy or down, not refusing the request as such
_AGAIN = frozenset({408, 425, 429, 500, 502, 503, 504})


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hongshan-Signature`` of ``body``: what a receiver computes to check it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """POST the output as JSON to ``url``: a 2xx within ``timeout`` seconds is done. A
    connection failure, a timeout or an answer of a busy server (408, 429, 5xx) is tried
    again ``retries`` times, ``backoff`` seconds later and twice as long each next time; any
    other answer (a 4xx) fails at once. The failure names the last answer."""

    kind = "webhook"

    def __init__(self, spec: WebhookAction, http: httpx.AsyncClient, secret: str) -> None:
        self._spec = spec
        self._http = http
        self._secret = secret

    def start(self, output: dict[str, Any], fired: Fired) -> Pending:
        return self._post(msgspec.json.encode(output), fired)

    async def _post(self, body: bytes, fired: Fired) -> None:
        spec = self._spec
        headers = {RULE if fired.by == "rule" else SCENE: str(fired.rule_id), TOPIC: fired.topic}
        problem = await post_signed(
            self._http,
            spec.url,
            body,
            self._secret,
            headers,
            per_try=spec.timeout,
            retries=spec.retries,
            backoff=spec.backoff,
        )
        if problem is not None:
            raise ActionFailed(problem)


async def post_signed(
    http: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: str,
    headers: dict[str, str],
    *,
    per_try: float,
    retries: int,
    backoff: float,
) -> str | None:
    """POST ``body`` (JSON) to ``url`` signed with ``secret``, with ``headers`` besides:
    None when a 2xx came within ``per_try`` seconds (each try's limit), else what went wrong
    the last time. A connection failure, a timeout or an answer of a busy server (408, 429,
    5xx) is tried again ``retries`` times, ``backoff`` seconds later and twice as long each
    next time; any other answer (a 4xx) fails at once. The rules' webhooks and the alarms'
    notifications both send this way."""
    headers = {
        "Content-Type": "application/json",
        SIGNATURE: signature(secret, body),
        **headers,
    }
    wait = backoff
    problem = ""
    for attempt in range(retries + 1):
        if attempt:
            await asyncio.sleep(wait)
            wait *= 2
        try:
            response = await http.post(url, content=body, headers=headers, timeout=per_try)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            continue
        if response.is_success:
            return None
        problem = f"HTTP {response.status_code}"
        if response.status_code not in _AGAIN:
            break
    tries = f"{attempt + 1} {'try' if attempt == 0 else 'tries'}"
    return f"webhook {url}: {problem} after {tries}"
