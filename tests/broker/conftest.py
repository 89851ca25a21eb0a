"""Fixtures for the broker's integration tests: factories for real clients that are closed when
the test ends, whatever it did to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker_peers import V5, MosquittoSub, RawClient


@pytest.fixture
def raw() -> Iterator[Callable[..., RawClient]]:
    """``raw(port, version=4|5, rcvbuf=...)``: an open TCP connection, nothing sent yet."""
    made: list[RawClient] = []

    def make(port: int, version: int = V5, **kwargs: Any) -> RawClient:
        client = RawClient(port, version=version, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def mosquitto_sub() -> Iterator[Callable[..., MosquittoSub]]:
    made: list[MosquittoSub] = []

    def make(port: int, topic: str, *args: str, version: str = "mqttv5") -> MosquittoSub:
        sub = MosquittoSub(port, topic, *args, version=version)
        made.append(sub)
        sub.wait_subscribed()
        return sub

    yield make
    for sub in made:
        sub.stop()
