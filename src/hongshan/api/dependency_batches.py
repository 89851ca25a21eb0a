"""Handlers' dependencies resolved in turn, in the request's own task, when nothing is gained
by resolving them side by side.

Litestar resolves the dependencies of one level of a handler's graph concurrently: an anyio
task group and a task for each, on every request (``KwargsModel.resolve_dependencies``). Ours
are plain functions that return at once — a service, the principal the guard found, its
``Scope``, the list's paging — so the tasks only cost: a handler given three of them (the device
list) spent about a third of its time in the API's stack spawning and joining them (in process,
296 -> 205 µs a request; Litestar's issue 4563 measures the same cliff from one dependency to
two). ``resolve_in_turn`` makes a handler whose providers are all synchronous and called in
place (``sync_to_thread`` off) resolve them one after the other; a handler with one that awaits
beside another is left to Litestar's task groups, as before. The values, the order of the
levels and the errors raised are the same.

It replaces the method on Litestar's class (once per process): the price of reading one of its
private modules, kept honest by a test that fails if a request's dependencies leave its task.
"""

from __future__ import annotations

from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import DependencyContainer, resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection

_concurrently = KwargsModel.resolve_dependencies


def _in_place(dependency: DependencyContainer) -> bool:
    provide = dependency.provide
    return bool(provide.has_sync_callable and not provide.sync_to_thread)


async def _resolve(
    model: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    batches = model.dependency_batches
    if not all(_in_place(d) for batch in batches if len(batch) > 1 for d in batch):
        return await _concurrently(model, connection, kwargs)
    cleanup = DependencyCleanupGroup()
    for batch in batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup)
    return cleanup


def resolve_in_turn() -> None:
    """From now on, a level of synchronous dependencies is resolved in turn (idempotent)."""
    KwargsModel.resolve_dependencies = _resolve  # type: ignore[method-assign,assignment]
