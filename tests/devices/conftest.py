"""Fixtures for device tests: paho clients that are stopped when the test ends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker_peers import Paho


@pytest.fixture
def paho_client() -> Iterator[Callable[..., Paho]]:
    made: list[Paho] = []

    def make(port: int, **kwargs: Any) -> Paho:
        client = Paho(port, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()
