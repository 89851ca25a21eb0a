"""``GET /api/health``: open (no token); 503 while the platform starts, and while a store cannot
write (the history, the registry or the broker's state), with why."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.response import Response

from hongshan.api.dependencies import Health, Provided


@get("/api/health", sync_to_thread=False)
def health(health: Provided[Health]) -> Response[dict[str, Any]]:
    if not health.ready():
        return Response({"status": "starting", "listeners": health.listeners}, status_code=503)
    body: dict[str, Any] = {
        "status": "ok",
        "listeners": health.listeners,
        "broker": health.broker.sys_values(),
    }
    # each store's writes: a history that cannot write acknowledges no QoS 1 post until it
    # can again; the broker's state keeps sessions and retained messages, the registry
    # devices' presence, latest values and shadows. Each says why its last write failed until
    # one succeeds (a full disk fails them all; each recovers by itself)
    problems = {name: store.problem for name, store in health.stores.items()}
    for name, problem in problems.items():
        body[name] = {"status": "ok" if problem is None else "failing", "problem": problem}
    failing = [name for name, problem in problems.items() if problem is not None]
    if failing:
        body["status"] = "degraded"
        body["failing"] = failing
    return Response(body, status_code=503 if failing else 200)
