"""Handlers' synchronous dependencies are resolved in the request's own task
(``api.dependency_batches``); one that awaits beside another still gets Litestar's tasks."""

from __future__ import annotations

import asyncio

from litestar import Litestar, get
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from hongshan.api.dependencies import Provided
from hongshan.api.dependency_batches import resolve_in_turn


def _task_name() -> str:
    task = asyncio.current_task()
    assert task is not None
    return task.get_name()


async def _awaiting_task_name() -> str:
    await asyncio.sleep(0)
    return _task_name()


@get("/plain", sync_to_thread=False)
def plain(first: Provided[str], second: Provided[str], third: Provided[str]) -> list[bool]:
    """Whether each dependency was made in the handler's own task."""
    here = _task_name()
    return [first == here, second == here, third == here]


@get("/mixed", sync_to_thread=False)
def mixed(first: Provided[str], awaited: Provided[str]) -> list[bool]:
    here = _task_name()
    return [first == here, awaited == here]


def _app() -> Litestar:
    return Litestar(
        route_handlers=[plain, mixed],
        dependencies={
            "first": Provide(_task_name, sync_to_thread=False),
            "second": Provide(lambda: _task_name(), sync_to_thread=False),
            "third": Provide(lambda: _task_name(), sync_to_thread=False),
            "awaited": Provide(_awaiting_task_name),
        },
    )


async def test_synchronous_dependencies_are_made_in_the_requests_own_task() -> None:
    resolve_in_turn()
    resolve_in_turn()  # (twice is once)
    async with AsyncTestClient(app=_app()) as client:
        assert (await client.get("/plain")).json() == [True, True, True]
        # beside one that awaits, each is made in a task of its own, as Litestar does
        assert (await client.get("/mixed")).json() == [False, False]
