"""A real Hongshan ``Platform`` in a thread of its own, for tests whose clients block (paho,
mosquitto_pub); the fixtures that make them are in conftest.py."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from hongshan.app import Platform
from hongshan.config import Settings
from hongshan.identity.password_hash import hash_password

T = TypeVar("T")


class ServerThread:
    """A started ``Platform`` in a thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.platform = Platform(settings)
        self.loop = asyncio.new_event_loop()
        self._started: Future[None] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="hongshan-test-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.platform.start()
        except BaseException as exc:
            self._started.set_exception(exc)
            return
        self._started.set_result(None)
        await self._stop.wait()
        await self.platform.stop()

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.result(timeout=30)
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    @property
    def port(self) -> int:
        return self.platform.ports["mqtt"]

    @property
    def ports(self) -> dict[str, int]:
        return self.platform.ports

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` on the server's loop (registry calls and the like)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result (to inspect broker state)."""
        result: Future[Any] = Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:  # handed back to the test
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result.result(timeout=10)


TEST_ADMIN_PASSWORD = "the test servers' admin"


@functools.cache
def admin_hash() -> str:
    """The hash of ``TEST_ADMIN_PASSWORD``, made once a run."""
    return hash_password(TEST_ADMIN_PASSWORD)


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A server's settings in ``tmp_path``, on ports 0. Its first start makes the user
    ``admin`` from ``admin_hash()`` (``admin_password_hash``) unless the test gives
    ``admin_password`` or ``admin_password_hash`` (None: a password generated and logged):
    an argon2 hash once a run, not once a server."""
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "host": "127.0.0.1",
        "mqtt_port": 0,
        "http_port": 0,
        "allow_anonymous": True,
        "sys_interval": 0,
    }
    if "admin_password" not in overrides:
        values["admin_password_hash"] = admin_hash()
    values.update(overrides)
    return Settings(**values)
