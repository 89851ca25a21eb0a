"""One server for the tenancy tests (building two towns over the API takes a while): the towns
``north`` (A, whose things B tries to reach) and ``south`` (B), built once per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from towns import Town, build, post_value

from server_thread import ServerThread, test_settings


@pytest.fixture(scope="module")
def town_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    server = ServerThread(test_settings(tmp_path_factory.mktemp("towns"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def towns(town_server: ServerThread) -> Iterator[tuple[Town, Town]]:
    north, south = build(town_server, "north"), build(town_server, "south")
    lamps = [post_value(town_server, town, town.lamp, 40) for town in (north, south)]
    yield north, south
    for lamp in lamps:
        lamp.stop()


@pytest.fixture
def north(towns: tuple[Town, Town]) -> Town:
    return towns[0]


@pytest.fixture
def south(towns: tuple[Town, Town]) -> Town:
    return towns[1]


@pytest.fixture
def server(town_server: ServerThread) -> Any:
    return town_server
