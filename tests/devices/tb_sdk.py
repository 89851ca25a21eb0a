"""ThingsBoard's own Python device SDK (``tb-mqtt-client`` from PyPI), unchanged, in a device
process of its own (``tb_device.py`` under ``.venv-tb``), pointed at a server the way its
documentation points it at any ThingsBoard: ``TBDeviceMqttClient(host, port, username=token)``.
What its callbacks saw is queued per kind, so a test waits on what the device saw.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
TB_PYTHON = HERE.parent.parent / ".venv-tb" / "bin" / "python"
TIMEOUT = 10.0


class TbSdkDevice:
    def __init__(
        self,
        port: int,
        token: str | None = None,
        *,
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        gateway: bool = False,
        rpc_answers: dict[str, Any] | None = None,
        qos: int = 1,
    ) -> None:
        """A device that logs in with ``token``, or with basic MQTT credentials
        (``client_id``/``username``/``password``); ``rpc_answers`` is what it replies to a
        server-side RPC, by method."""
        options: dict[str, Any] = {"client_id": client_id, "gateway": gateway, "qos": qos}
        options["rpc_answers"] = rpc_answers or {}
        if token is not None:
            options["token"] = token
        else:
            options.update(username=username, password=password)
        self.args = [str(TB_PYTHON), str(HERE / "tb_device.py"), "127.0.0.1", str(port)]
        self.args.append(json.dumps(options))
        self.events: dict[str, queue.Queue[list[Any]]] = {}
        self.stderr: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

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

    def start(self, *, expect_rc: int = 0) -> TbSdkDevice:
        """Start the device process and wait for its CONNACK's reason code (the SDK reports
        a refusal too, then tries again by itself)."""
        assert TB_PYTHON.exists(), "no .venv-tb: run `make install`"
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        rc, name = self.next("connect")
        assert rc == expect_rc, f"connect: {rc} ({name}); {''.join(self.stderr)[-2000:]}"
        return self

    def next(self, kind: str, timeout: float = TIMEOUT) -> list[Any]:
        try:
            return self._queue(kind).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"the device saw no {kind}; its stderr:\n{''.join(self.stderr)[-2000:]}"
            ) from None

    def nothing(self, kind: str) -> bool:
        return self._queue(kind).empty()

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK in the device process; returns what it returned (a publish as
        ``{"rc": …, "published": PUBACK received}``)."""
        assert self.proc is not None and self.proc.stdin is not None
        request = {"call": name, "args": list(args), "kwargs": kwargs}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        result, error = self.next("result")
        assert error is None, error
        return result

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
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
