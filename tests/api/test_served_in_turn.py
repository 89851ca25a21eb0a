"""A request begins behind what already waits on the loop (``http_server.served_in_turn``)."""

from __future__ import annotations

import asyncio
from typing import Any

from hongshan.http_server import served_in_turn


async def test_a_request_begins_after_the_steps_already_waiting() -> None:
    order: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        order.append("request")

    asyncio.get_running_loop().call_soon(order.append, "waiting")
    await served_in_turn(app)({"type": "http"}, None, None)
    assert order == ["waiting", "request"]
