"""Alibaba's own Python device SDK (``aliyun-iot-linkkit`` from PyPI), unchanged, in a device
process of its own (``linkkit_runner.py`` under ``.venv-linkkit``), pointed at a Hongshan server
the way its documentation points it at any endpoint: ``config_mqtt(endpoint=…, port=…,
secure="")``. What its callbacks saw is queued per kind, so a test waits on what the device saw.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
LINKKIT_PYTHON = HERE.parent.parent / ".venv-linkkit" / "bin" / "python"
TIMEOUT = 10.0


class LinkkitDevice:
    def __init__(
        self,
        port: int,
        product_key: str,
        device_name: str,
        device_secret: str,
        tsl: Path | None = None,
        *,
        service_answers: dict[str, tuple[int, dict[str, Any]]] | None = None,
        login: dict[str, str] | None = None,
    ) -> None:
        """``login``: the SDK's other ways in (``product_secret`` + ``auth_type``, or
        ``client_id`` + ``username`` + ``password``), with ``device_secret`` empty."""
        self.args = [
            str(LINKKIT_PYTHON),
            str(HERE / "linkkit_runner.py"),
            str(port),
            product_key,
            device_name,
            device_secret,
            str(tsl or ""),
            json.dumps(service_answers or {}),
            json.dumps(login or {}),
        ]
        self.events: dict[str, queue.Queue[list[Any]]] = {}
        self.stderr: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.refused = False  # never connected: the SDK's destroy() would wait on its loop

    def _queue(self, kind: str) -> queue.Queue[list[Any]]:
        return self.events.setdefault(kind, queue.Queue())

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            self._queue(message["event"]).put(message["args"])

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def start_refused(self, refusals: Callable[[], int]) -> None:
        """Start a device the server must refuse. The SDK tells its user nothing of a refused
        CONNACK (it calls ``on_connect`` for an accepted one only, and ``on_disconnect`` only
        once connected), so the server's count of refused CONNECTs (``refusals``) says when."""
        before = refusals()
        self._spawn()
        deadline = time.monotonic() + TIMEOUT
        while refusals() == before:
            assert time.monotonic() < deadline, "the server never refused the device"
            time.sleep(0.02)
        assert self.nothing("connect"), "the server accepted the device"
        self.refused = True

    def start(self, *, expect_rc: int = 0) -> LinkkitDevice:
        """Start the device process and wait for the SDK's ``on_connect``."""
        self._spawn()
        (rc,) = self.next("connect")
        assert rc == expect_rc, f"linkkit connect rc {rc}: {''.join(self.stderr)[-2000:]}"
        return self

    def _spawn(self) -> None:
        assert LINKKIT_PYTHON.exists(), "no .venv-linkkit: run `make install`"
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def next(self, kind: str, timeout: float = TIMEOUT) -> list[Any]:
        try:
            return self._queue(kind).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"the device saw no {kind}; its stderr:\n{''.join(self.stderr)[-2000:]}"
            ) from None

    def nothing(self, kind: str) -> bool:
        return self._queue(kind).empty()

    def call(self, name: str, *args: Any) -> Any:
        """Call the SDK in the device process; returns what it returned."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"call": name, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        result, error = self.next("result")
        assert error is None, error
        return result

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.refused:
            self.proc.kill()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"call": "exit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
