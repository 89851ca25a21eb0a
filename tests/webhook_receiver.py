"""A real HTTP server for webhooks in tests: on 127.0.0.1, port 0, in a thread of its own."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # (many notifications at once: the default 5 drops connections)


class WebhookReceiver:
    """Keeps every POST (its headers and body) and answers each with the next of ``statuses``,
    then 200."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.requests: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.count = 0
        answers = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.count += 1
                receiver.requests.put((dict(self.headers.items()), body))
                status = answers.pop(0) if answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # (not the test's output)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def get(self, timeout: float = 10) -> tuple[dict[str, str], bytes]:
        try:
            return self.requests.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no request within {timeout} s") from None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
