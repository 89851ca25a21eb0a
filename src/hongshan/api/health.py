"""The health probes, open (no token): ``GET /api/health`` (the whole picture: listeners, the
broker's figures, each store's writes; 503 while starting or while a store cannot write),
and the two an orchestrator asks apart (Kubernetes' liveness and readiness probes):
``/api/health/live`` (the process answers: 200 while its event loop runs, whatever else is
wrong: restarting it would not make a full disk any emptier) and ``/api/health/ready``
(whether to send it traffic: 503 while starting or stopping, and while any store cannot
write, as problem+json naming which store and why)."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.openapi import ResponseSpec
from litestar.response import Response

from hongshan.api.dependencies import Health, Provided
from hongshan.api.problems import Problem, problem


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
    problems = _store_problems(health)
    for name, problem_of in problems.items():
        body[name] = {"status": "ok" if problem_of is None else "failing", "problem": problem_of}
    failing = [name for name, problem_of in problems.items() if problem_of is not None]
    if failing:
        body["status"] = "degraded"
        body["failing"] = failing
    return Response(body, status_code=503 if failing else 200)


@get("/api/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    """Answered by the event loop itself: if this comes back, the process is alive."""
    return {"status": "alive"}


NOT_READY = ResponseSpec(
    Problem,
    description="starting or stopping (``phase``), or a store cannot write (``failing``)",
    media_type="application/problem+json",
    generate_examples=False,
)


@get("/api/health/ready", sync_to_thread=False, responses={503: NOT_READY})
def ready(health: Provided[Health]) -> Response[dict[str, Any]]:
    if not health.ready():
        phase = "stopping" if health.stopping() else "starting"
        return problem(503, f"the platform is {phase}", phase=phase)
    problems = _store_problems(health)
    failing = {name: why for name, why in problems.items() if why is not None}
    if failing:
        said = "; ".join(f"{name}: {why}" for name, why in failing.items())
        return problem(503, f"a store cannot write: {said}", failing=failing)
    return Response({"status": "ready", "stores": list(problems)})


def _store_problems(health: Health) -> dict[str, str | None]:
    """Each store's writes, by name: why its last write failed (None: it writes)."""
    return {name: store.problem for name, store in health.stores.items()}


ROUTES = (health, live, ready)
